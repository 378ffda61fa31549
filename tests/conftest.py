import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# Hubs are unreachable here; everything runs from the offline packs and local task data.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
BASICS = REPO / "tasks" / "basics"
BASICS_TASKS = ["basics_facts", "basics_arith", "basics_prose"]


def read_table(url: str, table: str):
    """A store table as a DataFrame."""
    import pandas as pd
    from sqlalchemy import text

    from bench.store.store import open_store

    with open_store(url).connect() as connection:
        return pd.read_sql(text(f"select * from {table}"), connection)


def run_records(url: str) -> dict:
    """What a run records that must not depend on how it ran: metrics, samples, tokens."""
    return {
        "metrics": read_table(url, "metrics")[["task", "metric", "filter", "value", "stderr"]],
        "samples": read_table(url, "samples")[
            ["task", "doc_id", "filter", "prompt", "response", "raw_response", "scores"]
        ],
        "timings": read_table(url, "request_timings")[
            ["task", "doc_id", "idx", "request_type", "prompt_tokens", "completion_tokens"]
        ],
    }


def assert_same_records(ours: dict, theirs: dict) -> None:
    import pandas as pd

    for table, frame in ours.items():
        mine = frame.sort_values(list(frame.columns[:3])).reset_index(drop=True)
        other = theirs[table].sort_values(list(frame.columns[:3])).reset_index(drop=True)
        # The same code on the same machine; floats within tolerance all the same.
        pd.testing.assert_frame_equal(mine, other, check_exact=False, rtol=1e-6, obj=table)


def run_bench(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    """The real CLI in a subprocess, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "bench.launch", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=os.environ.copy(),
        timeout=900,
    )


def start_bench(*args: str, env: dict | None = None, **popen) -> subprocess.Popen:
    """The real CLI, started in the background with its output captured."""
    return subprocess.Popen(
        [sys.executable, "-m", "bench.launch", *args],
        cwd=REPO,
        env=env or os.environ.copy(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


def wait_for_cached_answers(store: Path, run: subprocess.Popen, timeout_s: float = 600) -> int:
    """How many answers the run's SQLite store has cached, once it has some (or the run
    ended, or time ran out)."""
    import sqlite3
    import time

    deadline = time.monotonic() + timeout_s
    kept = 0
    while time.monotonic() < deadline and run.poll() is None and not kept:
        try:
            with sqlite3.connect(store) as db:
                kept = db.execute("select count(*) from request_cache").fetchone()[0]
        except sqlite3.OperationalError:
            pass  # the store or its table is not there yet
        time.sleep(0.1)
    return kept


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    from bench.models.packs import materialize

    return materialize("smollm2-135m-instruct")


@pytest.fixture(scope="session")
def postgres():
    from tests.postgres import PostgresServer

    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    """The same store tests on a SQLite file and on a real PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    server = request.getfixturevalue("postgres")
    return server.fresh_database(f"t{abs(hash(request.node.nodeid)) % 10**9}")


@pytest.fixture(scope="module")
def browser():
    """A real headless Chromium (Debian's chromium and chromium-driver)."""
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver_path):
        pytest.fail("Debian's chromium and chromium-driver are needed: run `make services`")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1400,1000",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    yield driver
    driver.quit()
