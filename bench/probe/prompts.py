"""The prompts a latency probe replays: the tasks' own requests, built by lm-eval's Task
objects exactly as a run builds them (few-shot, chat template, --limit)."""

from __future__ import annotations

from dataclasses import dataclass

from bench.catalog.loader import LoadedTask
from bench.errors import BadInput
from bench.records import RunSettings

FEWSHOT_SEED = 1234  # lm-eval's default fewshot_random_seed, so prompts match a run's


@dataclass(frozen=True)
class ProbePrompt:
    task: str
    doc_id: int
    prompt: str
    gen_kwargs: dict | None  # the task's generation settings; None for a loglikelihood context


def task_prompts(tasks: list[LoadedTask], backend, settings: RunSettings) -> list[ProbePrompt]:
    """Generation prompts of the tasks; where no task generates, one context per document of
    the loglikelihood tasks (those need a fixed --output-len)."""
    from lm_eval.evaluator_utils import get_sample_size

    generation, contexts = [], []
    chat = settings.apply_chat_template
    for loaded in tasks:
        task = loaded.task
        # As lm-eval's simple_evaluate does: --num-fewshot overrides unless a task pins 0.
        if settings.num_fewshot is not None and task.get_config("num_fewshot") != 0:
            task.set_config(key="num_fewshot", value=settings.num_fewshot)
        elif task.get_config("num_fewshot") is None:
            task.set_config(key="num_fewshot", value=0)
        task.set_fewshot_seed(seed=FEWSHOT_SEED)
        task.build_all_requests(
            limit=get_sample_size(task, settings.limit),
            rank=0,
            world_size=1,
            apply_chat_template=chat,
            fewshot_as_multiturn=chat,
            chat_template=backend.apply_chat_template if chat else None,
            tokenizer_name=getattr(backend, "tokenizer_name", "") if chat else "",
        )
        seen = set()
        for instance in task.instances:
            doc = int(instance.doc_id)
            if instance.request_type == "generate_until":
                context, gen_kwargs = instance.args
                generation.append(ProbePrompt(loaded.name, doc, context, dict(gen_kwargs)))
            elif doc not in seen:
                seen.add(doc)
                contexts.append(ProbePrompt(loaded.name, doc, instance.args[0], None))
    if not generation and not contexts:
        raise BadInput("the tasks have no documents to replay (check --limit)")
    return generation or contexts
