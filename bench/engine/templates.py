"""Compiled prompt templates, kept by their source text.

lm-eval renders a task's Jinja fields (doc_to_text, doc_to_target, doc_to_choice, ...)
through `lm_eval.utils.apply_template`, which compiles the template anew on every call
(jinja2's `from_string` keeps no cache): about 1 ms each, several times per document
and again for every few-shot example. Compiling each source once renders the very same
text, with lm-eval's own Jinja environment.
"""

from __future__ import annotations

from functools import lru_cache

from lm_eval import utils


@lru_cache(maxsize=4096)
def _compiled(source: str):
    return utils.env.from_string(source)


def render(template: str, doc: dict) -> str:
    return _compiled(template).render(**doc)


def install() -> None:
    """Route lm-eval's template rendering through the cache (idempotent)."""
    utils.apply_template = render
