"""lm-eval's `simple_evaluate` for tasks bench has already built, without its extras.

simple_evaluate seeds the random generators, applies num_fewshot and the few-shot seed
to each task, then calls `lm_eval.evaluator.evaluate`. After that it gathers what bench
records its own way (torch's collect_env, which starts subprocesses: 1.8 s on a busy
2-core machine; git hashes; tokenizer info). This does the first part exactly as
lm-eval 0.4.13 does, so prompts, few-shot picks and scores stay the same, and skips the
rest.
"""

from __future__ import annotations

import random
from typing import Any


def run_lm_eval(
    lm: Any,
    tasks: list[Any],
    num_fewshot: int | None,
    limit: float | None,
    samples: dict[str, list[int]] | None,
    apply_chat_template: bool,
    fewshot_as_multiturn: bool,
    bootstrap_iters: int,
) -> dict:
    import numpy as np
    from lm_eval.defaults import DEFAULT_OTHER_SEED, DEFAULT_RANDOM_SEED
    from lm_eval.evaluator import evaluate
    from lm_eval.tasks import TaskManager
    from lm_eval.utils import set_torch_seed

    # simple_evaluate's default seeds, set in its order.
    random.seed(DEFAULT_RANDOM_SEED)
    np.random.seed(DEFAULT_OTHER_SEED)
    # A model in a child process (bench/backends/process.py) is seeded there.
    getattr(lm, "seed_torch", set_torch_seed)(DEFAULT_OTHER_SEED)

    # The tasks come built; a manager without lm-eval's index of ~14,700 task files
    # passes them through (simple_evaluate would build that index for nothing).
    loaded = TaskManager(include_defaults=False).load(tasks)
    for task in loaded["tasks"].values():
        if num_fewshot is not None:
            # A task whose config says 0 shots keeps 0, as in simple_evaluate.
            if task.get_config("num_fewshot") != 0:
                task.set_config(key="num_fewshot", value=num_fewshot)
        elif task.get_config("num_fewshot") is None:
            task.set_config(key="num_fewshot", value=0)
        task.set_fewshot_seed(seed=DEFAULT_OTHER_SEED)

    return evaluate(
        lm=lm,
        task_dict=loaded,
        limit=limit,
        samples=samples,
        bootstrap_iters=bootstrap_iters,
        log_samples=True,
        apply_chat_template=apply_chat_template,
        fewshot_as_multiturn=fewshot_as_multiturn,
    )
