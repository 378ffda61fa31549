"""Decode steps' attention on the caller's thread count, for generation side by side.

Every operator of a SmolLM2 forward pass gives a row the same bits on one torch thread as
on two, except one: torch's CPU attention kernel for a one-token query (a decode step),
whose sums are split by thread count. Generation batches that run side by side on one
thread each (bench/backends/side_by_side.py) therefore run just that operator on the
thread count a plain run uses, and get a plain run's bits (tests/test_speedups.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from transformers.modeling_utils import AttentionInterface


@contextmanager
def decode_attention_threads(threads: int) -> Iterator[None]:
    """While active, transformers' "sdpa" attention runs one-token queries on `threads`
    torch threads, whatever the calling thread's own count."""
    plain = AttentionInterface._global_mapping["sdpa"]

    def attention(module, query, key, value, *args, **kwargs):
        own = torch.get_num_threads()
        if query.shape[-2] != 1 or own == threads:
            return plain(module, query, key, value, *args, **kwargs)
        torch.set_num_threads(threads)  # this thread's own setting, as in side_by_side
        try:
            return plain(module, query, key, value, *args, **kwargs)
        finally:
            torch.set_num_threads(own)

    AttentionInterface.register("sdpa", attention)
    try:
        yield
    finally:
        AttentionInterface.register("sdpa", plain)
