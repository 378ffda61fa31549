"""The sample explorer (bench/report/samples.py): its filters in a real Chromium against
what the store holds, hostile text kept as text, and files small at any task size."""

import dataclasses
import json
import math
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from jinja2 import Environment, FileSystemLoader, select_autoescape

from bench import api
from bench.records import (
    MetricRecord,
    ModelRef,
    RunManifest,
    RunRecord,
    RunSettings,
    SampleRecord,
    TaskVersion,
)
from bench.report.leaderboard import Board, Cell, Row, TaskColumn
from bench.report.samples import address, write_samples
from bench.report.site import TEMPLATES
from bench.store.store import open_store, write_run
from tests.conftest import read_table

T0 = datetime(2026, 1, 1, tzinfo=UTC)
DOCS = 120  # more than a page (samples.PAGE), so the pager is part of what is checked
HOSTILE_PROMPT = '</script><script>window.pwned=1</script><img src=x onerror="window.pwned=2">'
HOSTILE_ANSWER = "<!-- </script><b onmouseover=alert(1)>x</b>"
HOSTILE_MODEL = "<script>window.pwned=3</script>"


def mc_run(run_id, model, lls, gold, minutes, prompts=None, task="mc") -> RunRecord:
    """A complete run of `model` on one multiple-choice task: lls[doc] holds its
    loglikelihood per choice, scored against gold[doc] as lm-eval's acc does."""
    n = len(lls)
    prompts = prompts or [f"Question {d}: pick one.\nAnswer:" for d in range(n)]
    chosen = np.asarray(lls, dtype=float).argmax(axis=1)
    samples = [
        SampleRecord(
            task,
            d,
            "none",
            prompts[d],
            "[" + ",".join(f"[{x!r},false]" for x in choices) + "]",  # lm-eval's layout
            "[" + ",".join(f"[[{x!r},false]]" for x in choices) + "]",
            str(gold[d]),
            {"acc": float(chosen[d] == gold[d]), "acc_norm": 0.0},
            0.1,
            10,
            1,
        )
        for d, choices in enumerate(np.asarray(lls, dtype=float).tolist())
    ]
    acc = float(np.mean([s.scores["acc"] for s in samples]))
    manifest = RunManifest(
        run_id=run_id,
        model=ModelRef(model, Path("/models/x"), "0" * 64, "local"),
        tasks=[TaskVersion(task, "a" * 64, f"{task}.yaml", "multiple_choice", n)],
        settings=RunSettings(),
        versions={"lm_eval": "0.4.13"},
        hardware={"cpu_count": 2},
        started_at=T0 + timedelta(minutes=minutes),
        load_s=1.0,
        wall_s=10.0,
        prompt_tokens=10 * n,
        completion_tokens=n,
    )
    metrics = [
        MetricRecord(task, "acc", "none", acc, 0.05, True, n, True),
        MetricRecord(task, "acc_norm", "none", 0.0, 0.05, True, n, False),
    ]
    return RunRecord(manifest, metrics, samples)


@pytest.fixture()
def store(tmp_path):
    """Two models on `mc` whose choices differ on a known subset, a third that chooses
    at random; an older run of one of them (which the leaderboard does not show) answers
    everything differently."""
    rng = np.random.default_rng(3)
    gold = rng.integers(0, 4, DOCS)
    alpha = rng.normal(-3, 1, (DOCS, 4))
    beta = alpha.copy()
    flip = rng.random(DOCS) < 0.3
    beta[flip] = rng.normal(-3, 1, (int(flip.sum()), 4))
    url = f"sqlite:///{tmp_path / 'store.db'}"
    engine = open_store(url)
    write_run(engine, mc_run("old-alpha", "alpha", -alpha, gold, minutes=0))
    write_run(engine, mc_run("alpha-1", "alpha", alpha, gold, minutes=1))
    write_run(engine, mc_run("beta-1", "beta", beta, gold, minutes=2))
    gamma = rng.normal(-3, 1, (DOCS, 4))
    write_run(engine, mc_run("gamma-1", "gamma", gamma, gold, minutes=3))
    return url


def chosen_in_store(url: str, run_id: str, task: str = "mc") -> dict[int, int]:
    samples = read_table(url, "samples")
    mine = samples[(samples["run_id"] == run_id) & (samples["task"] == task)]
    return {
        int(r.doc_id): int(np.argmax([c[0] for c in json.loads(r.response)]))
        for r in mine.itertuples()
    }


def wait_ready(driver) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 20).until(
        lambda d: d.find_element("id", "sample-explorer").get_attribute("data-state") == "ready"
    )


def shown_docs(driver) -> list[int]:
    """The doc ids the filters keep, read page by page as a user would."""
    wait_ready(driver)
    docs = []
    while True:
        docs += [
            int(a.get_attribute("id").removeprefix("doc-"))
            for a in driver.find_elements("css selector", "article.sample")
        ]
        following = driver.find_element("id", "sample-next")
        if not following.is_enabled():
            return docs
        following.click()
        wait_ready(driver)


def choose(driver, value: str) -> list[int]:
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element("id", "sample-filter")).select_by_value(value)
    return shown_docs(driver)


def uri(site: Path, link: str) -> str:
    page, _, fragment = link.partition("#")
    return (site / page).as_uri() + (f"#{fragment}" if fragment else "")


def no_errors(driver) -> None:
    assert [e for e in driver.get_log("browser") if e["level"] == "SEVERE"] == []


def test_filters_show_exactly_what_the_store_holds(store, tmp_path, browser):
    api.report(store, tmp_path / "reports", ("html",))
    site = tmp_path / "reports" / "site"

    # Two clicks from the leaderboard: the task, then its samples.
    browser.get((site / "index.html").as_uri())
    browser.find_element("css selector", "nav a[href$='tasks/mc.html']").click()
    browser.find_element("css selector", "a.samples-link").click()
    wait_ready(browser)
    first = browser.find_element("css selector", "article.sample")
    answers = first.find_elements("css selector", "tbody tr")
    names = [r.find_elements("css selector", "td")[0].text for r in answers]
    assert sorted(names) == ["alpha", "beta", "gamma"]
    only = {name: f"only:{names.index(name)}" for name in names}  # the board's row order
    assert all(
        re.fullmatch(r"choice \d", r.find_element("css selector", "pre").text) for r in answers
    )
    # Compare two of the three.
    gamma_box = browser.find_element("xpath", "//label[normalize-space()='gamma']/input")
    gamma_box.click()
    wait_ready(browser)
    assert len(browser.find_elements("css selector", "article.sample")[0]
               .find_elements("css selector", "tbody tr")) == 2  # fmt: skip

    alpha, beta = chosen_in_store(store, "alpha-1"), chosen_in_store(store, "beta-1")
    samples = read_table(store, "samples")
    wrong = {
        run: {int(r.doc_id) for r in samples[samples["run_id"] == run].itertuples()
              if json.loads(r.scores)["acc"] == 0}
        for run in ("alpha-1", "beta-1")
    }  # fmt: skip
    assert shown_docs(browser) == sorted(alpha)
    disagree = choose(browser, "disagree")
    assert disagree == sorted(d for d in alpha if alpha[d] != beta[d])
    assert 0 < len(disagree) < DOCS
    assert choose(browser, "allwrong") == sorted(wrong["alpha-1"] & wrong["beta-1"])
    assert choose(browser, only["alpha"]) == sorted(wrong["alpha-1"] - wrong["beta-1"])
    assert choose(browser, only["beta"]) == sorted(wrong["beta-1"] - wrong["alpha-1"])
    count = browser.find_element("id", "sample-count").text
    assert count == f"{len(wrong['beta-1'] - wrong['alpha-1'])} of {DOCS} samples"

    # Text search over every shard; the filters still apply.
    choose(browser, "all")
    browser.find_element("id", "sample-search").send_keys("Question 77:")
    assert shown_docs(browser) == [77]
    no_errors(browser)

    # A permalink opens the page holding its sample; an address can name a filter and a
    # pair of models, as the compare page links.
    browser.get("about:blank")  # a new load, not a fragment change of the same page
    browser.get(uri(site, address("mc", doc=97)))
    wait_ready(browser)
    assert "linked" in browser.find_element("id", "doc-97").get_attribute("class")
    assert browser.find_element("id", "sample-page").text == "page 2 of 3"
    browser.get("about:blank")
    browser.get(uri(site, address("mc", "disagree", ("alpha", "beta"))))
    assert shown_docs(browser) == disagree
    browser.get("about:blank")
    browser.get(uri(site, address("mc", "disagree")))
    gamma = chosen_in_store(store, "gamma-1")
    assert shown_docs(browser) == sorted(d for d in alpha if len({alpha[d], beta[d], gamma[d]}) > 1)
    no_errors(browser)


def test_hostile_prompts_answers_and_names_stay_text(tmp_path, browser):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    engine = open_store(url)
    lls = [[-1.0, -2.0], [-2.0, -1.0]]
    write_run(engine, mc_run("r1", HOSTILE_MODEL, lls, [0, 0], 0, [HOSTILE_PROMPT, "Q?"]))
    record = mc_run("r2", "plain", lls, [0, 1], 1, [HOSTILE_PROMPT, "Q?"], task="gen")
    gen = [
        SampleRecord("gen", d, "none", s.prompt, json.dumps([HOSTILE_ANSWER]), "[]",
                     HOSTILE_ANSWER, {"exact_match": 1.0}, 0.1, 5, 5)
        for d, s in enumerate(record.samples)
    ]  # fmt: skip
    manifest = record.manifest
    gen_version = TaskVersion("gen", "b" * 64, "gen.yaml", "generate_until", 2)
    write_run(
        engine,
        RunRecord(
            dataclasses.replace(manifest, tasks=[gen_version]),
            [MetricRecord("gen", "exact_match", "none", 1.0, 0.0, True, 2, True)],
            gen,
        ),
    )
    api.report(url, tmp_path / "reports", ("html",))
    samples = tmp_path / "reports" / "site" / "samples"
    files = list(samples.rglob("*.js")) + list(samples.rglob("*.html"))
    assert len(files) >= 6
    for path in files:
        text = path.read_text()
        for hostile in (HOSTILE_PROMPT, HOSTILE_ANSWER, HOSTILE_MODEL):
            assert hostile not in text, path
        if path.parent != samples:  # data shards: no tag can close a script
            assert "</" not in text and "<!--" not in text, path

    for task, shown in (("mc", HOSTILE_PROMPT), ("gen", HOSTILE_ANSWER)):
        browser.get((samples / f"{task}.html").as_uri())
        wait_ready(browser)
        texts = [e.text for e in browser.find_elements("css selector", "#doc-0 pre")]
        assert any(shown in t for t in texts), texts
        assert browser.execute_script("return window.pwned === undefined")
    names = browser.find_elements("css selector", "#sample-models label")
    assert browser.find_element("css selector", "h1").text == "Samples of gen"
    assert [n.text for n in names] == ["plain"]
    browser.get((samples / "mc.html").as_uri())
    wait_ready(browser)
    model_cell = browser.find_element("css selector", "#doc-0 tbody td")
    assert model_cell.text == HOSTILE_MODEL
    assert browser.execute_script("return window.pwned === undefined")
    no_errors(browser)


def test_a_task_of_10000_samples_over_20_models_stays_in_small_files(tmp_path):
    """Written through the store API; the board is built by hand (as site.py's board()
    would give it) so that no bootstrap over 200,000 samples slows the test."""
    docs, models = 10_000, 20
    rng = np.random.default_rng(0)
    gold = rng.integers(0, 4, docs)
    prompts = [f"Passage {d}: lorem ipsum dolor sit amet?\nAnswer:" for d in range(docs)]
    engine = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    rows, stored = [], {}
    for m in range(models):
        lls = rng.normal(-3, 1, (docs, 4)).round(4)
        stored[m] = lls
        write_run(engine, mc_run(f"run-{m}", f"model-{m}", lls, gold, m, prompts, task="big"))
        cell = Cell(0.25, None, (math.nan, math.nan), f"run-{m}")
        rows.append(Row(f"model-{m}", "hf", {"big": cell}, 0.25, (math.nan, math.nan)))
    result = Board([TaskColumn("big", "acc", True)], rows)
    env = Environment(
        loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"])
    )
    nav = [{"name": "big", "slug": "big"}]
    assert write_samples(engine, tmp_path, result, env, nav) == {"big": "samples/big.html"}

    files = [p for p in (tmp_path / "samples").rglob("*") if p.is_file()]
    sizes = {p.name: p.stat().st_size for p in files}
    assert max(sizes.values()) < 2_000_000, sizes
    shards = sorted((tmp_path / "samples" / "big").glob("[0-9]*.js"))
    assert sum(p.stat().st_size for p in shards) > 8_000_000  # the data is large, its files not
    records = {}
    for path in shards:
        body = path.read_text()
        records.update({r["d"]: r for r in json.loads(body[body.index(",") + 1 : -3])})
    assert sorted(records) == list(range(docs))
    index = (tmp_path / "samples" / "big" / "index.js").read_text()
    assert len(json.loads(index.removeprefix("benchSamples.index(")[:-3])["rows"]) == docs
    for d, m in ((0, 0), (4321, 7), (docs - 1, models - 1)):
        assert records[d]["a"][m]["l"] == pytest.approx(list(stored[m][d]))
        assert records[d]["p"] == prompts[d]
