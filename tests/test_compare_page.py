"""The site's compare pages show what `bench compare` prints, link into the sample explorer
where two models differ, and escape model names: real CLI on a real SQLite store."""

import re

import numpy as np
from lxml import html

from bench.report.compare_page import ALL_PAIRS_UP_TO, pairs
from bench.store.store import open_store, write_run
from tests.conftest import run_bench
from tests.test_statistics import stored_run

HOSTILE = "<i>x</i>&b"


def _store(tmp_path) -> tuple[str, dict]:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    engine = open_store(url)
    rng = np.random.default_rng(11)
    ids = [f"p{i // 4}" for i in range(80)]
    scores = {}
    for i, (model, p) in enumerate((("alpha", 0.8), ("beta", 0.55), (HOSTILE, 0.3))):
        reading = np.repeat((rng.random(20) < p).astype(float), 4)  # correlated by passage
        facts = (rng.random(50) < p).astype(float)
        scores[model] = {"reading": reading, "facts": facts}
        tasks = {"reading": (reading, ids), "facts": (facts, None)}
        write_run(engine, stored_run(f"r{i}", model, tasks, minutes=i))
    return url, scores


def _cli_rows(stdout: str) -> dict[str, list[str]]:
    """The body rows of `bench compare`'s table: task -> its cells as printed."""
    rows = {}
    for line in stdout.splitlines():
        if line.startswith(("│", "|")):
            cells = [c.strip() for c in re.split(r"[│|]", line.strip("│| "))]
            rows[cells[0]] = cells
    return rows


def _page_rows(path) -> dict[str, dict]:
    tree = html.fromstring(path.read_text())
    rows = {}
    for tr in tree.xpath("//table[@id='compare']/tbody/tr"):
        cells = tr.xpath("./td")
        keyed = {td.get("data-key"): td.text_content().strip() for td in cells[2:-1]}
        links = cells[-1].xpath(".//a/@href")
        rows[cells[0].text_content().strip()] = {
            "metric": cells[1].text_content().strip(),
            "cells": keyed,
            "link": links[0] if links else None,
            "differ": cells[-1].text_content().strip(),
        }
    return rows


def test_compare_page_shows_what_bench_compare_prints(tmp_path):
    url, scores = _store(tmp_path)
    report = run_bench("report", "--format", "html", "--store", url, "--out", str(tmp_path / "r"))
    assert report.returncode == 0, report.stderr
    compared = run_bench("compare", "alpha", "beta", "--store", url)
    assert compared.returncode == 0, compared.stderr

    page = tmp_path / "r" / "site" / "compare" / "alpha--beta.html"
    shown, printed = _page_rows(page), _cli_rows(compared.stdout)
    assert set(shown) == set(printed) == {"reading", "facts"}
    for task, row in shown.items():
        cells = row["cells"]
        assert [
            row["metric"],
            cells["a"],
            cells["b"],
            cells["delta"],
            cells["95% CI"],
            cells["p"],
            cells["significant"],
            cells["win/tie/loss"],
            cells["MDE"],
            cells["design effect"],
        ] == printed[task][1:]
        # The figures follow from the stored scores.
        a, b = scores["alpha"][task], scores["beta"][task]
        differ = int((a != b).sum())
        assert cells["win/tie/loss"] == f"{int((a > b).sum())}/{len(a) - differ}/{(a < b).sum()}"
        assert cells["delta"] == f"{a.mean() - b.mean():+.4f}"
        assert row["differ"] == f"{differ} of {len(a)} differ"
        assert row["link"] == f"../samples/{task}.html#filter=disagree&m=alpha&m=beta"
    assert shown["reading"]["cells"]["design effect"].endswith("(20 clusters)")
    assert shown["facts"]["cells"]["design effect"] == "—"

    # Every pair of the three rows has a page, listed on the index; names are escaped.
    folder = tmp_path / "r" / "site" / "compare"
    pages = sorted(p.name for p in folder.glob("*--*.html"))
    assert pages == ["alpha--beta.html", "alpha--i-x-i-b.html", "beta--i-x-i-b.html"]
    index = (folder / "index.html").read_text()
    assert all(f'href="{p}"' in index for p in pages)
    hostile = (folder / "beta--i-x-i-b.html").read_text()
    assert HOSTILE not in hostile and "&lt;i&gt;x&lt;/i&gt;&amp;b" in hostile
    links = [r["link"] for r in _page_rows(folder / "beta--i-x-i-b.html").values()]
    assert links and all(
        x.endswith("#filter=disagree&m=beta&m=%3Ci%3Ex%3C%2Fi%3E%26b") for x in links
    )


def test_many_models_get_neighbour_and_top_pairs_only():
    rows = list(range(ALL_PAIRS_UP_TO + 2))
    chosen = pairs(rows)
    assert len(chosen) == (len(rows) - 1) + (len(rows) - 2)
    assert (0, len(rows) - 1) in chosen and (4, 5) in chosen and (3, 7) not in chosen
    assert len(pairs(rows[:ALL_PAIRS_UP_TO])) == ALL_PAIRS_UP_TO * (ALL_PAIRS_UP_TO - 1) // 2
