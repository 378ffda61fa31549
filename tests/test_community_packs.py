"""The packs the project writes itself (de, bias, reasoning), their suites, the
disparity metric, and the report's mark on results from an older task version."""

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.scoring.disparity import changed_groups, disparity, disparity_stderr
from bench.suites import SUITES
from tests.conftest import REPO, run_bench

TASKS = REPO / "tasks"


@pytest.mark.parametrize("pack", ["de", "bias", "reasoning", "basics"])
def test_shipped_pack_validates_and_has_a_readme(pack):
    checked = run_bench("tasks", "validate", str(TASKS / pack))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    readme = (TASKS / pack / "README.md").read_text()
    for needle in ("measures", "License", "wrote"):
        assert needle.lower() in readme.lower(), f"{pack}/README.md lacks {needle!r}"


def _digest(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.suffix in {".jsonl", ".yaml"}
    }


def test_reasoning_generator_reproduces_the_shipped_pack_and_grows(tmp_path):
    script = TASKS / "reasoning" / "make_reasoning.py"
    subprocess.run([sys.executable, script, "--out", tmp_path / "same"], check=True)
    assert _digest(tmp_path / "same") == _digest(TASKS / "reasoning")
    big = tmp_path / "big"
    subprocess.run(
        [sys.executable, script, "--n", "400", "--suffix", "_400", "--out", big], check=True
    )
    rows = (big / "data" / "dates_test_400.jsonl").read_text().splitlines()
    assert len(rows) == 400
    listed = run_bench("tasks", "list", "--include-path", str(big))
    assert "reasoning_dates_400" in listed.stdout
    # Shipped names keep their meaning: a bigger pack needs its own suffix.
    refused = subprocess.run([sys.executable, script, "--n", "9", "--out", tmp_path / "x"])
    assert refused.returncode != 0


def test_generated_answers_are_right():
    import datetime as dt

    for line in (TASKS / "reasoning" / "data" / "arith_test.jsonl").read_text().splitlines():
        row = json.loads(line)
        expression = row["question"].removeprefix("What is ").removesuffix("?")
        assert str(eval(expression)) == row["answer"]  # our own generated arithmetic
    for line in (TASKS / "reasoning" / "data" / "dates_test.jsonl").read_text().splitlines():
        row = json.loads(line)
        days, _, rest = row["question"].removeprefix("What date is ").partition(" days ")
        direction, _, start = rest.rstrip("?").partition(" ")
        begin = dt.datetime.strptime(start, "%B %d, %Y").date()
        sign = 1 if direction == "after" else -1
        right = begin + dt.timedelta(days=sign * int(days))
        assert row["choices"][row["answer"]] == f"{right:%B} {right.day}, {right.year}"


def test_bias_pairs_differ_only_in_the_term():
    rows = [json.loads(x) for x in (TASKS / "bias" / "data" / "pairs.jsonl").open()]
    pairs: dict[str, list[dict]] = {}
    for row in rows:
        pairs.setdefault(row["pair"], []).append(row)
    assert len(pairs) >= 50
    for members in pairs.values():
        a, b = members
        assert a["term"] != b["term"] and a["choices"] == b["choices"]
        # Only the term (and the article before it, "A"/"An") differs.
        same = [m["context"].replace(m["term"], "#").replace("An #", "A #") for m in members]
        assert same[0] == same[1]


def test_disparity_on_hand_made_items():
    # pair p1 agrees, p2 changes, p3 has one member only (not a pair: ignored).
    items = [("p1", 0, 2), ("p1", 1, 2), ("p2", 2, 0), ("p2", 3, 1), ("p3", 4, 0)]
    assert changed_groups(items) == [False, True]
    assert disparity(items) == 0.5
    assert disparity_stderr(items) == pytest.approx(0.5)  # sd 0.7071 / sqrt(2)
    # A document drawn twice (bootstrap) is still one member.
    assert disparity([("p", 0, 1), ("p", 0, 1)]) != disparity([("p", 0, 1), ("p", 1, 1)])


def test_suites_name_tasks_that_exist():
    local = run_bench("tasks", "list").stdout
    for suite in SUITES.values():
        if suite.name in ("leaderboard", "code"):
            continue  # hub data / the humaneval adapter
        for task in suite.tasks:
            assert task in local, f"suite {suite.name}: unknown task {task}"


@pytest.mark.slow
def test_bias_suite_stores_disparity_from_the_preferred_answers(tmp_path):
    store = f"sqlite:///{tmp_path / 's.db'}"
    ran = run_bench(
        "run", "--model", "smollm2-135m-instruct", "--tasks", "bias_pairs", "--limit", "20",
        "--store", store,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr[-2000:]
    samples = json.loads(
        run_bench(
            "results", "export", "--what", "samples", "--format", "json", "--store", store
        ).stdout
    )
    preferred = {}
    for s in samples:
        lls = [resp[0] for resp in json.loads(s["raw_response"])]
        preferred[s["doc_id"]] = max(range(3), key=lls.__getitem__)
    docs = [json.loads(x) for x in (TASKS / "bias" / "data" / "pairs.jsonl").open()][:20]
    by_pair: dict[str, set] = {}
    for doc_id, doc in enumerate(docs):
        by_pair.setdefault(doc["pair"], set()).add(preferred[doc_id])
    expected = sum(len(c) > 1 for c in by_pair.values()) / len(by_pair)
    metrics = json.loads(
        run_bench(
            "results", "export", "--what", "metrics", "--format", "json", "--store", store
        ).stdout
    )
    stored = {m["metric"]: m for m in metrics}
    assert stored["disparity"]["value"] == pytest.approx(expected)
    assert stored["disparity"]["is_primary"] and not stored["acc"]["is_primary"]
    board = run_bench(
        "report",
        "--include-limited",
        "--store",
        store,
        "--out",
        str(tmp_path / "r"),
        "--format",
        "md",
    )
    assert board.returncode == 0, board.stderr
    assert "bias_pairs (disparity ↓)" in (tmp_path / "r" / "leaderboard.md").read_text()


@pytest.mark.slow
def test_changing_one_data_row_changes_the_hash_and_marks_older_results(tmp_path, monkeypatch):
    tasks = tmp_path / "tasks"
    shutil.copytree(TASKS / "basics", tasks / "basics")
    monkeypatch.setenv("BENCH_TASKS", str(tasks))
    store = f"sqlite:///{tmp_path / 's.db'}"
    ran = run_bench(
        "run", "--model", "smollm2-135m-instruct", "--tasks", "basics_facts", "--limit", "4",
        "--store", store,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr[-2000:]
    before = run_bench("tasks", "show", "basics_facts").stdout

    def board() -> str:
        out = tmp_path / "r"
        made = run_bench(
            "report",
            "--include-limited",
            "--store",
            store,
            "--out",
            str(out),
            "--format",
            "md,html",
        )
        assert made.returncode == 0, made.stderr
        return (out / "leaderboard.md").read_text().split("\n|")[-1]

    assert "†" not in board()
    assert 'class="outdated"' not in (tmp_path / "r" / "site" / "index.html").read_text()
    data = tasks / "basics" / "data" / "facts_test.jsonl"
    lines = data.read_text().splitlines()
    lines[-1] = lines[-1].replace('"answer": ', '"note": "edited", "answer": ')
    data.write_text("\n".join(lines) + "\n")
    after = run_bench("tasks", "show", "basics_facts").stdout
    hash_line = [line for line in before.splitlines() if "content hash" in line]
    assert hash_line and hash_line[0] not in after
    assert "†" in board()
    assert 'class="outdated"' in (tmp_path / "r" / "site" / "index.html").read_text()
