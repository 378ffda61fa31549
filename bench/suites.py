"""Named suites: which models and tasks `bench run --suite NAME` means.

A suite's models are a default: `--model` replaces them (the `leaderboard` suite is meant
for the user's own models on a machine with hub access)."""

from __future__ import annotations

from dataclasses import dataclass

PACKS = ("smollm2-135m-instruct", "gemma-3-270m")


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    models: tuple[str, ...]
    tasks: tuple[str, ...]


SUITES: dict[str, Suite] = {
    suite.name: suite
    for suite in (
        Suite(
            "default",
            "Both offline model packs on the shipped `basics` task pack.",
            PACKS,
            ("basics_facts", "basics_arith", "basics_prose"),
        ),
        Suite(
            "quick",
            "A fast check across skills: facts plus the generated reasoning tasks.",
            PACKS,
            ("basics_facts", "reasoning_arith", "reasoning_order", "reasoning_dates"),
        ),
        Suite(
            "reasoning",
            "Seeded reasoning tasks: multi-step arithmetic, ordering, date arithmetic.",
            PACKS,
            ("reasoning_arith", "reasoning_order", "reasoning_dates"),
        ),
        Suite(
            "de",
            "German: general knowledge and reading comprehension (tasks/de).",
            PACKS,
            ("de_wissen", "de_lesen"),
        ),
        Suite(
            "bias",
            "Paired prompts that differ only in a demographic term, with disparity.",
            PACKS,
            ("bias_pairs",),
        ),
        Suite(
            "code",
            "HumanEval (pass@1); the completions run in bench's sandbox.",
            PACKS,
            ("humaneval",),
        ),
        Suite(
            "leaderboard",
            "The Open LLM Leaderboard (v2) tasks from lm-eval; their data needs hub access.",
            PACKS,
            (
                "leaderboard_ifeval",
                "leaderboard_bbh",
                "leaderboard_gpqa",
                "leaderboard_math_hard",
                "leaderboard_musr",
                "leaderboard_mmlu_pro",
            ),
        ),
    )
}
