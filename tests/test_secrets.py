"""Secrets given on the command line never reach the store, a report, an export or the
terminal: refused by name or by look before anything runs, and blanked by the store
should a path forget to refuse them."""

import dataclasses
import hashlib
import socket

import pytest

from bench.backends.base import GenerationSpec
from bench.backends.openai import OpenAIBackend, ServerUnavailableError
from bench.records import RunSettings
from bench.secrets import find_secrets, redact, redact_values
from bench.store.bundle import write_bundle
from bench.store.export import export_table
from bench.store.store import open_store, write_run
from tests.conftest import BASICS, run_bench
from tests.test_leaderboard import record

# Built at run time, so that no scanner mistakes this file for a leak.
OPENAI_KEY = "sk-" + "proj-" + "T3stK3yN0tR34l" * 3
HF_TOKEN = "hf" + "_" + "AbCdEfGh1234" * 3
PASSWORD = "hunter2" + "secret"
RANDOM_KEY = "q8Zr" + "Xw4TbN7mK2pLc9VdYe3HsJ6fGa1UoRi5"
CREDENTIALED_URL = f"http://user:{PASSWORD}@127.0.0.1:9/v1"
SECRETS = [OPENAI_KEY, HF_TOKEN, PASSWORD, RANDOM_KEY]


def dead_port() -> int:
    """A local port that refuses connections (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def assert_no_secret(*texts: str | bytes) -> None:
    for text in texts:
        raw = text if isinstance(text, bytes) else text.encode()
        for secret in SECRETS:
            assert secret.encode() not in raw, f"{secret} leaked"


def store_bytes(db) -> list[bytes]:
    """The SQLite file and its write-ahead log, as they lie on disk."""
    return [p.read_bytes() for p in db.parent.glob(db.name + "*")]


@pytest.mark.parametrize(
    "value",
    [
        OPENAI_KEY,
        "sk-ant-api03-" + "Zz9" * 12,
        HF_TOKEN,
        "ghp_" + "Ab12" * 9,
        "github_pat_11" + "Ab12" * 8,
        "xoxb-" + "1234-5678-AbCdEfGh",
        "AKIA" + "IOSFODNN7EXAMPLE",
        "Bearer " + "abcdef123456",
        "eyJhbGciOiJIUzI1NiJ9" + ".eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9P",
        RANDOM_KEY,
        CREDENTIALED_URL,
        "https://api.example.com/v1?api_key=abc123",
    ],
)
def test_secrets_are_known_by_their_look_and_blanked(value):
    assert find_secrets(value) and find_secrets({"foo": value}) == ["foo"]
    shown = redact(f"could not reach {value}: refused")
    assert shown.startswith("could not reach ") and shown.endswith(": refused")
    assert "***" in shown and value not in shown
    assert redact_values({"model_args": {"foo": value}})["model_args"]["foo"] != value


@pytest.mark.parametrize(
    "value",
    [
        "HuggingFaceTB/SmolLM2-135M-Instruct",
        "models--HuggingFaceTB--SmolLM2-135M-Instruct",
        "unsloth/DeepSeek-R1-Distill-Qwen-32B-GGUF",
        "/home/user/.cache/bench/packs/smollm2-135m-instruct",
        "/data/Models/Llama2/Checkpoints/FinalVersion2024",
        hashlib.sha256(b"weights").hexdigest(),
        "http://127.0.0.1:8000/v1",
        "bfloat16",
        "OPENAI_API_KEY",
    ],
)
def test_ordinary_values_are_not_secrets(value):
    assert find_secrets(value) == [] and redact(value) == value


def test_names_that_hold_secrets_and_names_that_do_not():
    args = {
        "apikey": "abc",
        "api_key": "abc",
        "hf_token": "abc",
        "db_password": "abc",
        "api_key_env": "OPENAI_API_KEY",  # names a variable; the key stays there
        "add_bos_token": True,  # a flag
        "max_tokens": "5",
        "tokenizer": "/models/x",
    }
    assert find_secrets(args) == ["apikey", "api_key", "hf_token", "db_password"]
    assert redact("api_key=abc add_bos_token=True api_key_env=K") == (
        "api_key=*** add_bos_token=True api_key_env=K"
    )


def test_model_args_with_secret_values_are_refused_before_anything_runs(tmp_path):
    db = tmp_path / "store.db"
    result = run_bench(
        "run",
        "--model",
        "smollm2-135m-instruct",
        "--tasks",
        "basics_facts",
        "--include-path",
        str(BASICS),
        "--limit",
        "2",
        "--model-args",
        f"foo={OPENAI_KEY},apikey={PASSWORD},bar={HF_TOKEN},baz={RANDOM_KEY},dtype=float32",
        "--store",
        f"sqlite:///{db}",
    )
    assert result.returncode == 2, result.stderr
    assert "error:" in result.stderr and "Traceback" not in result.stderr
    assert "foo, apikey, bar, baz looks like a secret" in " ".join(result.stderr.split())
    assert_no_secret(result.stdout, result.stderr, *store_bytes(db))


@pytest.mark.parametrize("command", ["run", "probe"])
def test_credentialed_base_url_is_refused_and_shown_redacted(command, tmp_path):
    db = tmp_path / "store.db"
    result = run_bench(
        command,
        "--backend",
        "openai",
        "--base-url",
        CREDENTIALED_URL,
        "--model",
        "served-model",
        "--tasks",
        "basics_facts",
        "--include-path",
        str(BASICS),
        "--limit",
        "2",
        "--model-args",
        "retry_for_s=0,timeout_s=1",  # were it not refused: fail at once, do not hang
        "--store",
        f"sqlite:///{db}",
    )
    assert result.returncode == 2, result.stderr
    assert "http://***@127.0.0.1:9/v1" in result.stderr and "Traceback" not in result.stderr
    assert_no_secret(result.stdout, result.stderr, *store_bytes(db))


def test_server_errors_never_print_the_urls_credentials():
    url = f"http://user:{PASSWORD}@127.0.0.1:{dead_port()}/v1"
    backend = OpenAIBackend(url, model="m", retry_for_s=0, timeout_s=1)
    try:
        with pytest.raises(ServerUnavailableError) as failed:
            backend.stream("Hello", GenerationSpec([], 4, {}))
    finally:
        backend.close()
    assert "did not answer" in str(failed.value) and "http://***@127.0.0.1" in str(failed.value)
    assert_no_secret(str(failed.value))


def test_store_blanks_secrets_a_path_forgot_to_refuse(tmp_path):
    db = tmp_path / "store.db"
    url = f"sqlite:///{db}"
    leaky = RunSettings(
        backend="openai",
        model_args={"foo": OPENAI_KEY, "apikey": PASSWORD, "bar": HF_TOKEN, "baz": RANDOM_KEY},
        base_url=f"http://user:{PASSWORD}@127.0.0.1:9/v1?key={RANDOM_KEY}",
    )
    run = record("leaky", "model-a", 0.5, 10.0, minutes=0)
    engine = open_store(url)
    write_run(
        engine, dataclasses.replace(run, manifest=dataclasses.replace(run.manifest, settings=leaky))
    )
    assert_no_secret(*store_bytes(db))
    bundle = tmp_path / "runs.bundle"
    assert write_bundle(engine, bundle) == 1
    exported = export_table(engine, "runs", "json")
    assert b"leaky" in exported
    shown = run_bench("results", "show", "leaky", "--store", url)
    assert shown.returncode == 0 and '"foo": "***"' in shown.stdout, shown.stderr
    out = tmp_path / "report"
    reported = run_bench(
        "report",
        "--include-limited",
        "--out",
        str(out),
        "--format",
        "md,html,csv,json",
        "--store",
        url,
    )
    assert reported.returncode == 0, reported.stderr
    written = [p.read_bytes() for p in out.rglob("*") if p.is_file()]
    assert written
    assert_no_secret(
        shown.stdout + shown.stderr,
        reported.stdout + reported.stderr,
        bundle.read_bytes(),
        exported,
        *written,
    )
