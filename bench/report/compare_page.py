"""The site's compare pages: two leaderboard rows task by task, with exactly the figures
`bench compare` prints (both come from `leaderboard.compare_pair` and `delta_cells`),
and links into the sample explorer filtered to the documents where the two differ."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

from jinja2 import Environment

from bench.report.leaderboard import (
    COMPARE_HEADERS,
    Board,
    Row,
    compare_pair,
    delta_cells,
    row_label,
)
from bench.report.samples import address
from bench.report.slugs import slug
from bench.report.stats import ALPHA

# Up to this many rows every pair gets a page; beyond, the pages would grow as n^2, so
# only neighbours in board order and each row against the top one do.
ALL_PAIRS_UP_TO = 8


def pairs(rows: list[Row]) -> list[tuple[Row, Row]]:
    """The pairs of rows (better-ranked first) that get a compare page."""
    if len(rows) <= ALL_PAIRS_UP_TO:
        return list(combinations(rows, 2))
    chosen = [(rows[i], rows[i + 1]) for i in range(len(rows) - 1)]
    return chosen + [(rows[0], rows[i]) for i in range(2, len(rows))]


@dataclass(frozen=True)
class ComparePage:
    a: str  # row labels, as `bench compare` takes them
    b: str
    file: str  # under compare/


def samples_link(task: str, a: str, b: str) -> str:
    """The sample explorer's page of the task, showing the samples where a and b differ."""
    return "../" + address(task, "disagree", (a, b))


def write_compare_pages(
    result: Board, site: Path, env: Environment, nav: list[dict]
) -> list[ComparePage]:
    """compare/<slug(A)>--<slug(B)>.html for the pairs `pairs` picks, and compare/index.html
    listing them."""

    folder = site / "compare"
    folder.mkdir(parents=True, exist_ok=True)
    template = env.get_template("compare.html.j2")
    pages: list[ComparePage] = []
    used: set[str] = set()
    for a, b in pairs(result.rows):
        first, second = row_label(a, result.rows), row_label(b, result.rows)
        name = f"{slug(first)}--{slug(second)}"
        file, n = f"{name}.html", 1
        while file in used:  # two labels may slug alike ("a/b", "a-b")
            n += 1
            file = f"{name}-{n}.html"
        used.add(file)
        tasks = []
        for delta in compare_pair(result, a, b):
            paired = delta.paired
            differ = None if paired is None else paired.wins + paired.losses
            tasks.append(
                {
                    "task": delta.task,
                    "slug": slug(delta.task),
                    "metric": delta.metric,
                    "cells": delta_cells(delta),
                    "significant": paired is not None and paired.p_value < ALPHA,
                    "differ": differ,
                    "n": None if paired is None else paired.n,
                    "link": samples_link(delta.task, first, second) if differ else None,
                }
            )
        (folder / file).write_text(
            template.render(
                title=f"{first} vs {second}",
                root="../",
                tasks_nav=nav,
                a=first,
                b=second,
                headers=COMPARE_HEADERS,
                tasks=tasks,
            ),
            encoding="utf-8",
        )
        pages.append(ComparePage(first, second, file))
    (folder / "index.html").write_text(
        env.get_template("compare_index.html.j2").render(
            title="Compare two models",
            root="../",
            tasks_nav=nav,
            pages=pages,
            rows=len(result.rows),
            all_pairs=len(result.rows) <= ALL_PAIRS_UP_TO,
            limit=ALL_PAIRS_UP_TO,
        ),
        encoding="utf-8",
    )
    return pages
