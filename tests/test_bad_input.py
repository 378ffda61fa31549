"""Bad input exits 2 with one line `error: ...` and no traceback, before any model loads;
`bench tasks validate` refuses what `bench run` refuses, in the same words.

Each input the CLI must refuse goes through the real `bench run` once; the neighbouring
cases go through the same functions in this process, which costs milliseconds."""

import json
import socket
import sqlite3
from pathlib import Path

import pytest

from bench.catalog.scaffold import new_pack
from bench.errors import BadInput
from tests.conftest import REPO, run_bench

MODEL = "smollm2-135m-instruct"


def refused(result, *needles: str) -> str:
    """The one line a refusal prints; it says every needle."""
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-3000:]
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture()
def bench_run(tmp_path, monkeypatch, smollm2_dir):
    """`bench run` on the SmolLM2 pack (materialized, so its model process starts), of
    basics_facts unless --tasks is given, traced: returns the result and the phases the
    run and its model process reached."""
    trace = tmp_path / "trace.jsonl"
    monkeypatch.setenv("BENCH_TRACE", str(trace))
    return _traced_run(tmp_path, trace)


@pytest.fixture()
def bench_run_here(tmp_path, monkeypatch, smollm2_dir):
    """bench_run with the model loading in bench's own process: were a check to come
    after the model's load, the trace would always show the load (in a model process, it
    races the checks), and no model process takes CPU from the checks."""
    trace = tmp_path / "trace.jsonl"
    monkeypatch.setenv("BENCH_TRACE", str(trace))
    monkeypatch.setenv("BENCH_MODEL_PROCESS", "0")
    return _traced_run(tmp_path, trace)


def _traced_run(tmp_path: Path, trace: Path):
    """A `bench run` that returns its result and the events of BENCH_TRACE=trace."""

    def run(*args: str, store: str | None = None, cwd: Path = REPO):
        trace.unlink(missing_ok=True)
        tasks = () if "--tasks" in args else ("--tasks", "basics_facts")
        store = store or f"sqlite:///{tmp_path / 'store.db'}"
        result = run_bench("run", "--model", MODEL, *tasks, *args, "--store", store, cwd=cwd)
        lines = trace.read_text().splitlines() if trace.exists() else []
        return result, {json.loads(line)["event"] for line in lines}

    return run


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--limit", "0"], ["--limit 0", "fraction"]),
        (["--limit", "-1"], ["--limit -1"]),
        (["--num-fewshot", "-1"], ["--num-fewshot -1"]),
        # basics_facts draws its shots from a train split of 5 documents
        (["--num-fewshot", "6"], ["--num-fewshot 6", "basics_facts", "only 5 few-shot"]),
        (["--model-args", "dtype=float99"], ["dtype=float99", "bfloat16"]),
        (["--model-args", "foo=bar"], ["--model-args foo", "hf backend takes no such argument"]),
        (["--suite", "default", "--tasks", "basics_facts"], ["--suite", "--tasks"]),
    ],
    ids=[
        "limit-0",
        "limit-negative",
        "fewshot-negative",
        "fewshot-beyond-split",
        "dtype",
        "unknown-model-arg",
        "suite-and-tasks",
    ],
)
def test_bad_settings_are_refused_before_the_model_or_store(bench_run, tmp_path, args, needles):
    result, events = bench_run(*args)
    refused(result, *needles)
    assert "model_load_start" not in events
    assert not (tmp_path / "store.db").exists()


@pytest.mark.parametrize(
    ("settings", "needles"),
    [
        ({"limit": 2.5}, ["--limit 2.5"]),
        ({"model_args": {"dtyp": "float32"}}, ["dtyp", "did you mean dtype"]),
        ({"model_args": {"batch_size": 4}}, ["batch_size is set by bench", "--batch-size"]),
        ({"model_args": {"pretrained": "x"}}, ["pretrained is set by bench", "--model"]),
        ({"backend": "vllm", "model_args": {"dtype": "float64"}}, ["vllm backend", "float64"]),
        ({"backend": "openai", "model_args": {"timeout": 3}}, ["timeout", "timeout_s"]),
        ({"backend": "llamacpp", "model_args": {"logits_all": False}}, ["logits_all"]),
        ({"backend": "llamacpp", "model_args": {"n_gpu_layer": 9}}, ["n_gpu_layers"]),
        ({"backend": "nonesuch"}, ["unknown backend 'nonesuch'"]),
    ],
)
def test_settings_checks_refuse(settings, needles):
    from bench.api import check_run_settings
    from bench.records import RunSettings

    with pytest.raises(BadInput) as info:
        check_run_settings(RunSettings(**settings))
    for needle in needles:
        assert needle in str(info.value)


def test_settings_at_the_edges_pass():
    """What lies just inside each refusal above is accepted, and a dry run (the same
    checks, with the tasks) plans it."""
    from bench.api import check_run_settings, plan_units
    from bench.records import RunPlan, RunSettings

    for settings in (
        RunSettings(limit=0.5, num_fewshot=0),
        RunSettings(limit=1, model_args={"dtype": "bfloat16", "attn_implementation": "sdpa"}),
        RunSettings(model_args={"torch_dtype": "float32", "device_map": "auto", "revision": "x"}),
        RunSettings(backend="vllm", model_args={"dtype": "half", "tensor_parallel_size": 2}),
        RunSettings(backend="llamacpp", model_args={"n_ctx": 4096, "n_gpu_layers": -1}),
        RunSettings(backend="openai", model_args={"timeout_s": 3, "api_key_env": "K"}),
    ):
        check_run_settings(settings)
    plan = RunPlan([MODEL], ["basics_facts"], RunSettings(num_fewshot=5))
    assert plan_units(plan)


def dead_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed again: nothing listens there


def readonly_store(tmp_path: Path) -> str:
    """A store that exists, at the newest schema, opened read-only by SQLite itself."""
    from bench.store.store import open_store

    db = tmp_path / "readonly.db"
    open_store(f"sqlite:///{db}").dispose()
    return f"sqlite:///file:{db}?mode=ro&uri=true"


def not_a_database(tmp_path: Path) -> str:
    notes = tmp_path / "notes.db"
    notes.write_text("these are my notes, not a database\n" * 100)
    return f"sqlite:///{notes}"


def unreachable(_) -> str:
    return f"postgresql://bench@127.0.0.1:{dead_port()}/bench"


STORES = {
    "sqlite-in-memory": (lambda _: "sqlite:///", ["sqlite:///", "names no file"]),
    "unknown-driver": (lambda _: "garbage://x", ["garbage", "no database driver"]),
    "unreachable": (unreachable, ["cannot use the store", "Connection refused"]),
    "read-only": (readonly_store, ["cannot use the store", "readonly"]),
    "not-a-database": (not_a_database, ["cannot use the store", "not a database"]),
}


@pytest.mark.parametrize("case", STORES)
def test_unusable_store_is_refused_before_the_model_loads(bench_run_here, tmp_path, case):
    store, needles = STORES[case]
    url = store(tmp_path)
    # In tmp_path: for SQLite's read-only URI (file:...) open_store makes a folder file:.
    result, events = bench_run_here("--limit", "1", store=url, cwd=tmp_path)
    refused(result, *needles)
    assert "model_load_start" not in events
    if case == "read-only":
        with sqlite3.connect(tmp_path / "readonly.db") as db:
            assert db.execute("select count(*) from runs").fetchone() == (0,)


@pytest.mark.parametrize(
    ("url", "needles"),
    [
        ("sqlite://", ["names no file"]),
        ("sqlite:///:memory:", ["names no file"]),
        ("not a url", ["not a database URL"]),
        ("postgresql://me:hunter2@127.0.0.1:{port}/db", ["me:***@127.0.0.1"]),
    ],
)
def test_store_checks_refuse(url, needles):
    from bench.api import open_checked_store

    with pytest.raises(BadInput) as info:
        open_checked_store(url.format(port=dead_port()))
    assert "hunter2" not in str(info.value)
    for needle in needles:
        assert needle in str(info.value)


# -- task packs: `bench tasks validate` and `bench run` refuse the same things ----------


@pytest.fixture()
def pack(tmp_path) -> Path:
    """The scaffolded example pack (`bench tasks new`), to break in different ways."""
    return new_pack("demo_pack", tmp_path / "packs")


def edit_yaml(pack: Path, old: str, new: str) -> None:
    path = pack / "demo_pack.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def edit_row(pack: Path, row: int, **changes) -> None:
    path = pack / "data" / "test.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[row].update(changes)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def latin1_yaml(pack: Path) -> None:
    path = pack / "demo_pack.yaml"
    path.write_bytes(path.read_bytes() + 'description: "Qualit\xe9"\n'.encode("latin-1"))


def latin1_data(pack: Path) -> None:
    path = pack / "data" / "test.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    lines[1] = lines[1].replace(b"square", "carr\xe9".encode("latin-1"))
    path.write_bytes(b"".join(lines))


def include_missing(pack: Path) -> None:
    path = pack / "demo_pack.yaml"
    path.write_text("include: _common.yaml\n" + path.read_text())


METRICS = "metric_list:\n  - metric: acc\n    aggregation: mean\n    higher_is_better: true\n"
BREAKAGES = {
    "yaml-not-utf8": (latin1_yaml, ["demo_pack.yaml:17:", "not UTF-8"]),
    "data-not-utf8": (latin1_data, ["test.jsonl:2:", "not UTF-8"]),
    "metric-list-not-a-list": (
        lambda p: edit_yaml(p, METRICS, "metric_list: 5\n"),
        ["demo_pack.yaml:11:", "metric_list"],
    ),
    "empty-data-file": (
        lambda p: (p / "data" / "test.jsonl").write_text(""),
        ["test.jsonl:1:", "no rows"],
    ),
    "negative-label": (  # lm-eval would score it as the last choice
        lambda p: edit_row(p, 1, answer=-1),
        ["test.jsonl:2:", "label -1 is out of range for 4 choices", "answer"],
    ),
    "label-not-a-choice": (
        lambda p: edit_row(p, 2, answer="beer"),
        ["test.jsonl:3:", "label 'beer' is not one of the choices", "answer"],
    ),
    "include-missing": (
        include_missing,
        ["demo_pack.yaml:1:", "_common.yaml is missing", "include"],
    ),
    "data-outside-folder": (
        lambda p: edit_yaml(p, "test: data/test.jsonl", "test: /etc/passwd"),
        ["demo_pack.yaml:3:", "/etc/passwd is outside the task's folder"],
    ),
    "data-escapes-folder": (
        lambda p: edit_yaml(p, "test: data/test.jsonl", "test: ../../../../../../etc/hostname"),
        ["demo_pack.yaml:3:", "is outside the task's folder"],
    ),
}


@pytest.mark.parametrize("breakage", BREAKAGES)
def test_validate_and_run_refuse_the_same_broken_task(pack, breakage):
    """validate's path (task_problems) and run's (load_tasks) say the same one thing."""
    from bench.catalog.loader import load_tasks, task_problems
    from bench.catalog.validate import TaskYamlError

    breaks, needles = BREAKAGES[breakage]
    breaks(pack)
    [said] = task_problems([pack / "demo_pack.yaml"])
    with pytest.raises(TaskYamlError) as info:
        load_tasks(["demo_pack"], [pack])
    assert str(info.value) == said
    for needle in needles:
        assert needle in said, said


@pytest.mark.parametrize("breakage", ["yaml-not-utf8", "data-not-utf8", "data-outside-folder"])
def test_cli_refuses_a_broken_task_in_one_line(bench_run_here, pack, tmp_path, breakage):
    breaks, needles = BREAKAGES[breakage]
    breaks(pack)
    said = refused(run_bench("tasks", "validate", str(pack)), *needles)
    result, events = bench_run_here("--tasks", "demo_pack", "--include-path", str(pack))
    assert refused(result, *needles) == said
    assert "model_load_start" not in events
    assert not (tmp_path / "store.db").exists()


def test_a_task_lm_eval_cannot_build_fails_validation(pack):
    """validate builds each task as run does: what only lm-eval finds is refused too."""
    from bench.catalog.loader import task_problems

    assert task_problems([pack / "demo_pack.yaml"]) == []
    edit_yaml(pack, "test_split: test", "test_split: nonesuch")  # the data has no such split
    [said] = task_problems([pack / "demo_pack.yaml"])
    assert "task 'demo_pack'" in said and "could not be built" in said


# -- the plain lists of model-args names, held against the installed libraries ----------


def test_model_arg_names_are_the_installed_signatures():
    from lm_eval.models.huggingface import HFLM
    from transformers import PreTrainedModel

    from bench.backends import FROM_PRETRAINED_KWARGS, HF_DTYPES, MODEL_ARGS, keyword_names
    from bench.backends.hf import HFBackend
    from bench.backends.openai import OpenAIBackend
    from bench.backends.vllm import VLLMBackend

    assert keyword_names(HFBackend) <= MODEL_ARGS["hf"].takes  # it passes the rest to HFLM
    assert MODEL_ARGS["hf"].takes == (
        keyword_names(HFLM)
        | keyword_names(PreTrainedModel.from_pretrained)
        | FROM_PRETRAINED_KWARGS
    )
    assert MODEL_ARGS["openai"].takes == keyword_names(OpenAIBackend)
    assert MODEL_ARGS["vllm"].takes == keyword_names(VLLMBackend)
    llama_cpp = pytest.importorskip("llama_cpp")
    from bench.backends.llamacpp import LlamaCppBackend

    assert MODEL_ARGS["llamacpp"].takes == (
        keyword_names(LlamaCppBackend) | keyword_names(llama_cpp.Llama)
    )
    import torch

    for name in HF_DTYPES[1:]:  # after "auto"
        assert isinstance(getattr(torch, name), torch.dtype), name
