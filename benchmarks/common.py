"""Helpers the benchmark scripts share: environment, the SmolLM2 pack, runs, figures.

Scripts print figures; none of them asserts a time. Absolute times on a shared 2-core
machine are noisy, so every script compares within one run of itself and prints the
machine's load average next to its figures.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BASICS = REPO / "tasks" / "basics"
DEFAULT_TASKS = ["basics_facts", "basics_arith", "basics_prose"]
PACK = "smollm2-135m-instruct"

# Same as the tests and the Makefile: hubs are unreachable, everything is local.
ENV = {
    **os.environ,
    # The repo first; packages installed beside the interpreter's own (pip --target on a
    # GPU machine) stay reachable.
    "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
}
os.environ.update({k: ENV[k] for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")})
os.environ["TOKENIZERS_PARALLELISM"] = "false"
sys.path.insert(0, str(REPO))


def pack_dir(name: str = PACK) -> Path:
    from bench.models.packs import materialize

    return materialize(name)


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


def timed(cmd: list[str], cwd: Path = REPO, env: dict | None = None) -> float:
    """Wall seconds of a subprocess, from just before it starts to its exit."""
    start = time.perf_counter()
    result = subprocess.run(cmd, cwd=cwd, env=env or ENV, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"{' '.join(cmd[:4])} ... failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return wall


def bench_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "bench.launch", *args]


# As a module, so it runs wherever lm_eval is importable (a venv or PYTHONPATH).
LM_EVAL_CMD = [sys.executable, "-m", "lm_eval"]


def bench_run_cmd(
    tasks: str,
    store: str,
    batch_size: int,
    include: Path | None = None,
    limit: int | None = None,
) -> list[str]:
    """`bench run` on the SmolLM2 pack as the comparisons run it: hf, float32, lm_eval's
    100,000 bootstrap resamples (its CLI has no option for it), no request cache."""
    return bench_cmd(
        "run",
        "--model",
        PACK,
        "--tasks",
        tasks,
        "--backend",
        "hf",
        "--model-args",
        "dtype=float32",
        "--batch-size",
        str(batch_size),
        "--bootstrap-iters",
        "100000",
        "--no-cache",
        "--store",
        store,
        *(["--include-path", str(include)] if include else []),
        *(["--limit", str(limit)] if limit else []),
    )


def lm_eval_run_cmd(
    model_dir: Path,
    tasks: str,
    include: Path,
    out: Path,
    batch_size: int,
    limit: int | None = None,
    log_samples: bool = False,
) -> list[str]:
    """The `lm_eval` CLI on the same work (run it from `include`, so that relative
    data_files resolve as bench resolves them)."""
    return [
        *LM_EVAL_CMD,
        "--model",
        "hf",
        "--model_args",
        f"pretrained={model_dir},dtype=float32",
        "--tasks",
        tasks,
        "--include_path",
        str(include),
        "--batch_size",
        str(batch_size),
        "--output_path",
        str(out),
        *(["--limit", str(limit)] if limit else []),
        *(["--log_samples"] if log_samples else []),
    ]


def bench_scores(store_url: str) -> dict[tuple[str, str, str], tuple[float, float | None]]:
    from bench.store.export import export_metrics
    from bench.store.store import open_store

    rows = json.loads(export_metrics(open_store(store_url), "json"))
    return {(r["task"], r["metric"], r["filter"]): (r["value"], r["stderr"]) for r in rows}


def bench_table(store_url: str, what: str) -> list[dict]:
    """A table of the store as `bench results export --what samples|runs` gives it."""
    from bench.store.export import export_table
    from bench.store.store import open_store

    return json.loads(export_table(open_store(store_url), what, "json"))


def lm_eval_scores(out_dir: Path) -> dict[tuple[str, str, str], tuple[float, float | None]]:
    (result_file,) = out_dir.rglob("results_*.json")
    scores = {}
    for task, values in json.loads(result_file.read_text())["results"].items():
        for key, value in values.items():
            if "," in key and "_stderr" not in key:
                metric, filt = key.split(",", 1)
                stderr = values.get(f"{metric}_stderr,{filt}")
                scores[(task, metric, filt)] = (value, None if stderr == "N/A" else stderr)
    return scores


def print_scores(ours: dict, theirs: dict, same_fn) -> bool:
    """Every (task, metric, filter) of both sides in one table; same_fn(metric, bench's,
    lm_eval's) says whether a row agrees. True when all do and neither lacks one."""
    print(f"\n{'task':14s} {'metric':16s} {'filter':12s} {'bench':>22s} {'lm_eval':>22s}")
    identical = set(ours) == set(theirs)
    for key in sorted(set(ours) | set(theirs)):
        mine, other = ours.get(key), theirs.get(key)
        same = same_fn(key[1], mine, other)
        identical &= same
        show = [f"{v[0]!r} ± {v[1]!r}" if v else "missing" for v in (mine, other)]
        print(
            f"{key[0]:14s} {key[1]:16s} {key[2]:12s} {show[0]:>22s} {show[1]:>22s}"
            f"{'' if same else '  DIFFERENT'}"
        )
    return identical


def matmul_peak(n: int = 2048, repeats: int = 5) -> float:
    """The float32 matrix-multiply rate (FLOP/s) of what the hf backend runs on: on a
    CUDA GPU, the best 8192 x 8192 product (strict float32, as the runs use: no TF32);
    else the best n x n product over a few tries at every CPU thread count (on a busy
    machine fewer threads can be faster)."""
    import torch

    if torch.cuda.is_available():
        return _cuda_matmul_peak(torch, 8192, repeats)
    a, b = torch.randn(n, n), torch.randn(n, n)
    default = torch.get_num_threads()
    best = float("inf")
    try:
        for threads in range(1, (os.cpu_count() or 1) + 1):
            torch.set_num_threads(threads)
            torch.mm(a, b)  # warm-up
            for _ in range(repeats):
                start = time.perf_counter()
                torch.mm(a, b)
                best = min(best, time.perf_counter() - start)
    finally:
        torch.set_num_threads(default)
    return 2 * n**3 / best


def _cuda_matmul_peak(torch, n: int, repeats: int) -> float:
    a, b = (torch.randn(n, n, device="cuda") for _ in range(2))
    torch.mm(a, b)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        torch.cuda.synchronize()
        start = time.perf_counter()
        torch.mm(a, b)
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def parameter_count(model_dir: Path) -> int:
    """Parameters that do arithmetic for every token: those in the folder's safetensors
    files (read from their headers) less the token embeddings, which are looked up, not
    multiplied. The output layer (SmolLM2 ties it to the embeddings) is left out too, as
    in the usual 2N FLOPs-per-token count: the backends compute it only at the positions
    they read, so 2 x this x tokens is a lower bound of the arithmetic done."""
    from safetensors import safe_open

    total = 0
    for path in sorted(model_dir.glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as handle:
            for name in handle.keys():
                if not name.endswith(("embed_tokens.weight", "lm_head.weight", "wte.weight")):
                    total += _numel(handle.get_slice(name).get_shape())
    return total


def _numel(shape: list[int]) -> int:
    count = 1
    for dim in shape:
        count *= dim
    return count


def median(values: list[float]) -> float:
    return statistics.median(values)
