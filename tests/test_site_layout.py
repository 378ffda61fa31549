"""The site's layout in a real headless Chromium, at a desktop window (1280 px) and a phone
(390 px): the page never scrolls sideways, wide tables scroll inside their own wrapper
with the model column kept in view, and a screenshot of each page is kept under the
test's tmp dir."""

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

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
from bench.report.leaderboard import READING_GUIDE
from bench.report.slugs import slug
from bench.store.store import open_store, write_run

# Twelve tasks and four models: without a scroller the table is far wider than 1280 px.
TASKS = [f"reading_comprehension_{i:02d}" for i in range(12)]
LONG_MODEL = "example-org/a-model-name-that-goes-on-and-on-without-any-spaces-1b-instruct"
MODELS = ["smollm2-135m-instruct", "gemma-3-270m-it", "model-c", LONG_MODEL]
SIZES = {"desktop": (1280, 900), "phone": (390, 844)}
DOCS = 25

# Every element that reaches past the viewport's right edge, except what lies inside a
# sideways scroller (the scroller itself must fit). Closed <details> are opened first.
OVERFLOWING = """
document.querySelectorAll("details").forEach(d => { d.open = true; });
const width = window.innerWidth, found = [];
for (const el of document.body.querySelectorAll("*")) {
  const scroller = el.closest(".scroll-x");
  if (scroller && scroller !== el) continue;
  const box = el.getBoundingClientRect();
  if (box.width > 0 && box.right > width + 0.5) {
    found.push(`${el.tagName}.${el.className} right=${box.right}: ${el.textContent.slice(0, 60)}`);
  }
}
return found;
"""


def a_run(run_id: str, model: str, skill: float, minutes: int, rng) -> RunRecord:
    manifest = RunManifest(
        run_id=run_id,
        model=ModelRef(
            model, Path("/models") / model, hashlib.sha256(model.encode()).hexdigest(), "pack"
        ),
        tasks=[
            TaskVersion(
                t,
                hashlib.sha256(t.encode()).hexdigest(),
                f"tasks/{t}.yaml",
                "multiple_choice",
                DOCS,
            )
            for t in TASKS
        ],
        settings=RunSettings(),
        versions={"lm_eval": "0.4.13", "bench": "0.1.0", "determinism": {"threads": 2}},
        hardware={"cpu": "AMD EPYC", "cpu_count": 2, "memory_gib": 23.5},
        started_at=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=minutes),
        load_s=1.5,
        wall_s=30.0,
        prompt_tokens=12 * DOCS * 40,
        completion_tokens=12 * DOCS,
    )
    metrics, samples = [], []
    for task in TASKS:
        scores = (rng.random(DOCS) < skill).astype(float)
        metrics.append(
            MetricRecord(task, "acc", "none", float(scores.mean()), 0.09, True, DOCS, True)
        )
        samples += [mc_sample(task, doc, score) for doc, score in enumerate(scores)]
    return RunRecord(manifest, metrics, samples)


def mc_sample(task: str, doc: int, score: float) -> SampleRecord:
    """A multiple-choice sample as lm-eval records it: (loglikelihood, is_greedy) per
    choice; choice 0 is the target, and the model picks it where it scored 1."""
    lls = [-1.0, -2.0, -3.0] if score else [-2.0, -1.0, -3.0]
    response = json.dumps([[ll, False] for ll in lls])
    prompt = f"Question {doc} of {task}: which is right?"
    return SampleRecord(
        task, doc, "none", prompt, response, response, "0", {"acc": score}, 0.1, 40, 1
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """A site built by `bench report` from a real SQLite store of four models on 12 tasks."""
    root = tmp_path_factory.mktemp("layout")
    url = f"sqlite:///{root / 'store.db'}"
    engine = open_store(url)
    rng = np.random.default_rng(26)
    for i, model in enumerate(MODELS):
        write_run(engine, a_run(f"run-{i}", model, 0.3 + 0.15 * i, i, rng))
    api.report(url, root / "reports", ("md", "html"))
    return root / "reports"


def show(browser, page: Path, size: str, tmp_path: Path) -> None:
    """Open `page` at a window of `size`, check the page fits it, keep a screenshot."""
    width, height = SIZES[size]
    browser.set_window_size(width, height)
    browser.get(page.as_uri())
    assert browser.execute_script("return window.innerWidth") == width
    assert browser.execute_script(OVERFLOWING) == []
    page_width = browser.execute_script("return document.documentElement.scrollWidth")
    assert page_width <= width
    shot = tmp_path / f"{page.stem}-{size}-{width}px.png"
    assert browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 0
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []


@pytest.mark.parametrize("size", list(SIZES))
def test_leaderboard_fits_the_window_and_scrolls_inside(site, browser, size, tmp_path):
    show(browser, site / "site" / "index.html", size, tmp_path)

    # The table is wider than the window: it scrolls inside its wrapper, not the page.
    scroller = browser.find_element("css selector", "#leaderboard").find_element(
        "xpath", "ancestor::div[contains(@class, 'scroll-x')]"
    )
    assert browser.execute_script(
        "return arguments[0].scrollWidth > arguments[0].clientWidth + 100", scroller
    )
    # Task headers wrap onto several lines rather than widening their columns.
    lines = browser.execute_script(
        """const range = document.createRange();
        range.selectNodeContents(arguments[0]);
        return new Set([...range.getClientRects()].map(r => Math.round(r.top))).size;""",
        browser.find_elements("css selector", "#leaderboard thead th")[3],
    )
    assert lines >= 2

    # Scrolled to its far right, the model column stays at the scroller's left edge and on
    # top, while the rank column has scrolled out of view.
    browser.execute_script(
        "window.scrollTo(0, arguments[0].getBoundingClientRect().top + window.scrollY);"
        " arguments[0].scrollLeft = arguments[0].scrollWidth;",
        scroller,
    )
    row = browser.find_elements("css selector", "#leaderboard tbody tr")[0]
    rank, model = row.find_elements("css selector", "td")[:2]
    left, model_box, rank_box = browser.execute_script(
        "return [arguments[0].getBoundingClientRect().left,"
        " arguments[1].getBoundingClientRect(), arguments[2].getBoundingClientRect()]",
        scroller,
        model,
        rank,
    )
    assert abs(model_box["left"] - left) < 2
    assert rank_box["right"] <= left + 1
    on_top = browser.execute_script(
        "const b = arguments[0].getBoundingClientRect();"
        " const hit = document.elementFromPoint(b.left + 5, b.top + b.height / 2);"
        " return arguments[0].contains(hit);",
        model,
    )
    assert on_top
    shot = tmp_path / f"index-table-scrolled-{size}.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 0

    # "How to read this" says, point by point, what the Markdown leaderboard says.
    guide = browser.find_element("css selector", "details.guide").get_attribute("textContent")
    markdown = (site / "leaderboard.md").read_text()
    for term, text in READING_GUIDE:
        assert f"{term}: {text}" in guide
        assert f"- **{term}**: {text}" in markdown


@pytest.mark.parametrize("size", list(SIZES))
def test_task_and_run_pages_fit_the_window(site, browser, size, tmp_path):
    show(browser, site / "site" / "tasks" / f"{slug(TASKS[0])}.html", size, tmp_path)
    show(browser, site / "site" / "runs" / "run-3.html", size, tmp_path)

    # The run page shows its manifest readably, with each task's version and samples.
    links = [a.get_attribute("href") for a in browser.find_elements("css selector", "a.samples")]
    assert [link.rsplit("/", 2)[-2:] for link in links] == [
        ["samples", f"{slug(t)}.html"] for t in TASKS
    ]
    text = browser.find_element("tag name", "body").text
    assert hashlib.sha256(TASKS[0].encode()).hexdigest() in text  # a task's content hash
    for heading in ("Model", "Settings", "Versions", "Hardware", "Timing and tokens"):
        assert browser.find_element("xpath", f"//h3[text()='{heading}']")
    assert LONG_MODEL in text and "AMD EPYC" in text and "0.4.13" in text
