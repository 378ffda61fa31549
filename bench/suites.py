"""Named suites: which models and tasks `bench run --suite NAME` means."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    models: tuple[str, ...]
    tasks: tuple[str, ...]


SUITES: dict[str, Suite] = {
    "default": Suite(
        name="default",
        description="Both offline model packs on the shipped `basics` task pack.",
        models=("smollm2-135m-instruct", "gemma-3-270m"),
        tasks=("basics_facts", "basics_arith", "basics_prose"),
    ),
    "code": Suite(
        name="code",
        description="Both offline model packs on HumanEval (pass@1, completions run sandboxed).",
        models=("smollm2-135m-instruct", "gemma-3-270m"),
        tasks=("humaneval",),
    ),
}
