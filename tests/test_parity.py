"""Scores from `bench run --backend hf` equal those of the `lm_eval --model hf` CLI.

Both run the SmolLM2 pack on every shipped task with the same settings. They agree as two
correct implementations do on any CPU: accuracy-type metrics (acc, acc_norm, filtered
exact_match: means of per-sample 0/1 decisions) and their stderrs exactly; perplexity-type
metrics, sums of float32 log-probabilities whose last bits depend on the BLAS kernels,
within 1e-6 relative.
Covers few-shot (basics_arith is 3-shot by default; a 2-shot chat-template variant too).
"""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.store.export import export_metrics
from bench.store.store import open_store
from tests.conftest import BASICS, BASICS_TASKS, run_bench

pytestmark = pytest.mark.slow

VARIANTS = {
    "defaults": {"tasks": BASICS_TASKS, "lm_eval": [], "bench": []},
    "2shot-chat": {
        "tasks": ["basics_facts", "basics_arith"],
        "lm_eval": ["--num_fewshot", "2", "--apply_chat_template", "--limit", "12"],
        "bench": ["--num-fewshot", "2", "--apply-chat-template", "--limit", "12"],
    },
}


def lm_eval_scores(model_dir: Path, tasks: list[str], extra: list[str], out: Path) -> dict:
    # Run from the pack folder so relative data_files resolve as bench resolves them.
    subprocess.run(
        [
            sys.executable,
            "-m",
            "lm_eval",
            "--model",
            "hf",
            "--model_args",
            f"pretrained={model_dir}",
            "--tasks",
            ",".join(tasks),
            "--include_path",
            ".",
            "--batch_size",
            "8",
            "--output_path",
            str(out),
            *extra,
        ],
        cwd=BASICS,
        check=True,
        capture_output=True,
        text=True,
        env=os.environ.copy(),
    )
    (result_file,) = out.rglob("results_*.json")
    scores = {}
    for task, values in json.loads(result_file.read_text())["results"].items():
        for key, value in values.items():
            if "," in key and "_stderr" not in key:
                metric, filt = key.split(",", 1)
                stderr = values.get(f"{metric}_stderr,{filt}")
                scores[(task, metric, filt)] = (value, stderr if stderr != "N/A" else None)
    return scores


def bench_scores(model_dir: Path, tasks: list[str], extra: list[str], store: Path) -> list[dict]:
    result = run_bench(
        "run",
        "--model",
        str(model_dir),
        "--tasks",
        ",".join(tasks),
        "--batch-size",
        "8",
        "--store",
        f"sqlite:///{store}",
        *extra,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(export_metrics(open_store(f"sqlite:///{store}"), "json"))


PERPLEXITY_TYPE = {"word_perplexity", "byte_perplexity", "bits_per_byte", "perplexity"}


def close(a, b, metric: str) -> bool:
    if a is None or b is None:
        return a is None and b is None
    # "Exactly" up to the last bit of a mean, which is the same sum in the same order.
    rel_tol = 1e-6 if metric in PERPLEXITY_TYPE else 1e-12
    return math.isclose(a, b, rel_tol=rel_tol, abs_tol=0)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_bench_matches_lm_eval(variant, smollm2_dir, tmp_path):
    spec = VARIANTS[variant]
    expected = lm_eval_scores(smollm2_dir, spec["tasks"], spec["lm_eval"], tmp_path / "lm_eval")
    rows = bench_scores(smollm2_dir, spec["tasks"], spec["bench"], tmp_path / "bench.db")
    got = {(r["task"], r["metric"], r["filter"]): (r["value"], r["stderr"]) for r in rows}

    assert set(got) == set(expected)
    assert {task for task, _, _ in got} == set(spec["tasks"])
    for key, (value, stderr) in expected.items():
        assert close(got[key][0], value, key[1]), (key, got[key], value)
        assert close(got[key][1], stderr, key[1]), (key, got[key], stderr)
    # Not a vacuous match: the model scores above zero and below perfect somewhere.
    accuracies = [v for (t, m, _), (v, _) in got.items() if m in ("acc", "exact_match")]
    assert any(0 < v < 1 for v in accuracies)
