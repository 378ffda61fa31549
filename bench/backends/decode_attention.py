"""Decode steps' attention on torch's own thread count, whatever the caller's.

In a SmolLM2 forward pass every operator gives a row the same bits on one torch thread as
on two, except one: torch's CPU attention for a one-token query (a decode step) sums in
another order on one thread (seen with 8 rows and ~70-token caches; with fewer it did
not show). lm-eval runs on torch's default thread count. So where bench runs on fewer,
a generation batch side by side on one thread (side_by_side.py) or a whole run on a busy
machine (threads.py), that one operator runs on the default count, and the scores stay
lm-eval's bit for bit (tests/test_speedups.py).
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
