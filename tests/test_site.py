"""The static site in a real headless Chromium, and escaping of hostile names."""

from pathlib import Path

import pytest

from bench import api
from bench.store.store import open_store, write_run
from tests.conftest import REPO
from tests.test_leaderboard import record

HOSTILE = "<script>alert(1)</script>"
ARTIFACTS = REPO / "test-artifacts"


@pytest.fixture()
def site(tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    engine = open_store(url)
    write_run(engine, record("run-1", "alpha", 0.30, 50.0, 0, correct=[1.0] * 3 + [0.0] * 7))
    write_run(engine, record("run-2", HOSTILE, 0.90, 30.0, 1, correct=[1.0] * 9 + [0.0]))
    write_run(engine, record("run-3", "zeta", 0.60, 40.0, 2, correct=[1.0] * 6 + [0.0] * 4))
    api.report(url, tmp_path / "reports", ("md", "html", "csv", "json"))
    return tmp_path / "reports"


def test_hostile_names_are_escaped_everywhere(site):
    files = [p for p in site.rglob("*") if p.suffix in (".html", ".md", ".js")]
    assert len(files) >= 6
    for path in files:
        assert HOSTILE not in path.read_text(), path
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in (site / "site" / "index.html").read_text()


def first_column(driver, index: int) -> list[str]:
    rows = driver.find_elements("css selector", "#leaderboard tbody tr")
    return [row.find_elements("css selector", "td")[index].text for row in rows]


def test_site_sorts_in_a_real_browser(site, browser):
    browser.get((site / "site" / "index.html").as_uri())
    headers = browser.find_elements("css selector", "#leaderboard thead th")
    names = [h.text for h in headers]
    model_col = names.index("model")
    before = first_column(browser, model_col)
    assert before == [HOSTILE, "zeta", "alpha"]  # by average, shown as text

    headers[model_col].click()
    assert first_column(browser, model_col) == sorted(before, key=str.lower)
    headers[model_col].click()
    assert first_column(browser, model_col) == sorted(before, key=str.lower, reverse=True)

    score_col = next(i for i, n in enumerate(names) if n.startswith("mc ("))
    headers[score_col].click()
    assert first_column(browser, model_col) == ["alpha", "zeta", HOSTILE]

    browser.find_element("id", "filter").send_keys("zet")
    visible = [
        r
        for r in browser.find_elements("css selector", "#leaderboard tbody tr")
        if r.is_displayed()
    ]
    assert len(visible) == 1

    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []
    scripts = "return [...document.scripts].filter(s => s.textContent.includes('alert')).length"
    assert browser.execute_script(scripts) == 0  # the hostile name never became a script
    ARTIFACTS.mkdir(exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS / "leaderboard.png"))

    # Task and run pages open from disk and link back.
    browser.find_element("css selector", "nav a[href$='mc.html']").click()
    assert browser.find_element("tag name", "h1").text == "Task mc"
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
    link = browser.find_element("css selector", "tbody a")
    link.click()
    assert browser.find_element("tag name", "h1").text.startswith("Run run-")
    assert Path(browser.current_url.removeprefix("file://")).is_file()
