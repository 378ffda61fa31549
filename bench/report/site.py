"""The static HTML site: leaderboard, a page per task and per run, plots. Works from
file:// (no server, no external scripts). Every value is escaped by Jinja2."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from bench.hardware.profiles import HardwareProfile, load_profiles
from bench.report import manifest, plots
from bench.report.compare_page import write_compare_pages
from bench.report.leaderboard import (
    EVERYTHING,
    PERFORMANCE_HEADERS,
    PROBE_INTRO,
    READING_GUIDE,
    Board,
    Selection,
    arrow,
    board,
    performance_cells,
    probe_table,
)
from bench.report.performance import RunPerformance, run_performance
from bench.report.samples import write_samples
from bench.report.slugs import slug
from bench.store.schema import Metric, RequestTiming, Run

TEMPLATES = Path(__file__).parent / "templates"


def _fmt(value: float | None, digits: int = 4) -> str:
    return "—" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _ci(ci: tuple[float, float]) -> str:
    return "" if math.isnan(ci[0]) else f"({ci[0]:.4f}–{ci[1]:.4f})"


def _latency(engine: Engine, result: Board):
    """Per row: median TTFT of streamed generations (else median end-to-end), and the
    per-request wall times of generation requests."""
    run_ids = {
        cell.run_id: (row.model, row.backend) for row in result.rows for cell in row.cells.values()
    }
    query = select(RequestTiming.run_id, RequestTiming.wall_s, RequestTiming.ttft_s).where(
        RequestTiming.run_id.in_(run_ids), RequestTiming.request_type == "generate_until"
    )
    walls: dict[tuple[str, str], list[float]] = {}
    ttfts: dict[tuple[str, str], list[float]] = {}
    with engine.connect() as connection:
        for run_id, wall, ttft in connection.execute(query):
            key = run_ids[run_id]
            walls.setdefault(key, []).append(wall)
            if ttft is not None:
                ttfts.setdefault(key, []).append(ttft)
    medians = {k: float(np.median(ttfts.get(k) or v)) for k, v in walls.items()}
    return medians, walls


def write_site(
    engine: Engine,
    out_dir: Path,
    selection: Selection = EVERYTHING,
    profiles: dict[str, HardwareProfile] | None = None,
) -> Path:
    profiles = load_profiles() if profiles is None else profiles
    result = board(engine, selection, profiles)
    site = out_dir / "site"
    for sub in ("tasks", "runs", "plots"):
        (site / sub).mkdir(parents=True, exist_ok=True)
    env = Environment(
        loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"])
    )
    (site / "sort.js").write_text((TEMPLATES / "sort.js").read_text())
    nav = [{"name": c.task, "slug": slug(c.task)} for c in result.columns]

    plot_list = []
    if result.rows:
        plots.heatmap(result, site / "plots" / "heatmap.png")
        plot_list.append(
            {
                "file": "heatmap.png",
                "title": "Model × task",
                "caption": "Primary metric per task; colour scaled per column.",
            }
        )
        # Cost from the run's hardware profile, priced as the profiles read now.
        per_token = {
            (r.model, r.backend): r.performance.cost.per_1m_output
            for r in result.rows
            if r.performance and r.performance.cost.per_1m_output is not None
        }
        if per_token:
            plots.accuracy_vs_cost(
                result,
                per_token,
                "$ per 1M output tokens (lower is better)",
                site / "plots" / "accuracy-cost.png",
            )
            plot_list.append(
                {
                    "file": "accuracy-cost.png",
                    "title": "Accuracy against cost",
                    "caption": "$ per 1M output tokens from each run's hardware profile. "
                    "Models on the red line are not beaten on both.",
                }
            )
        latency, walls = _latency(engine, result)
        if latency:
            plots.accuracy_vs_latency(result, latency, site / "plots" / "accuracy-latency.png")
            plots.latency_distributions(walls, site / "plots" / "latency.png")
            plot_list += [
                {
                    "file": "accuracy-latency.png",
                    "title": "Accuracy against latency",
                    "caption": "Average score with its 95% interval against median latency.",
                },
                {
                    "file": "latency.png",
                    "title": "Latency distributions",
                    "caption": "Per-request wall time of generation requests.",
                },
            ]

    rows = []
    for row in result.rows:
        cells = []
        for column in result.columns:
            cell = row.cells.get(column.task)
            cells.append(
                {
                    "run": slug(cell.run_id),
                    "value": _fmt(cell.value),
                    "ci": _ci(cell.ci),
                    "outdated": cell.outdated,
                    "limited": cell.limited,
                    "provenance": cell.provenance,
                    "sort": cell.value,
                }
                if cell
                else {"run": None, "sort": ""}
            )
        rows.append(
            {
                "rank": row.rank,
                "rank_key": row.rank.split("-")[0] if row.rank != "—" else "",
                "model": row.model,
                "backend": row.backend,
                "cells": cells,
                "average": _fmt(row.average),
                "average_ci": _ci(row.average_ci),
                "average_sort": "" if math.isnan(row.average) else row.average,
                "wall": _fmt(row.wall_s, 1),
                "wall_sort": row.wall_s or "",
                "tps": _fmt(row.tokens_per_s, 1),
                "tps_sort": row.tokens_per_s or "",
                "speed_claimed": row.speed_claimed,
                "perf": _perf_cells(row.performance),
            }
        )
    (site / "index.html").write_text(
        env.get_template("index.html.j2").render(
            title="Leaderboard",
            root="",
            tasks_nav=nav,
            guide=READING_GUIDE,
            columns=result.columns,
            rows=rows,
            plots=plot_list,
            perf_headers=PERFORMANCE_HEADERS,
            probe_intro=PROBE_INTRO.split("\n\n", 1)[1].strip(),
            probes=probe_table(engine, selection, profiles, markdown=False).to_dict("records"),
        )
    )

    for column in result.columns:
        task_rows = [
            {
                "model": r.model,
                "backend": r.backend,
                "value": _fmt(r.cells[column.task].value),
                "ci": _ci(r.cells[column.task].ci),
                "sort": r.cells[column.task].value,
                "stderr": _fmt(r.cells[column.task].stderr),
                "run": slug(r.cells[column.task].run_id),
            }
            for r in result.rows
            if column.task in r.cells
        ]
        page = env.get_template("task.html.j2").render(
            title=column.task,
            root="../",
            tasks_nav=nav,
            column=column,
            arrow=arrow(column.higher_is_better),
            rows=task_rows,
        )
        (site / "tasks" / f"{slug(column.task)}.html").write_text(page)

    write_compare_pages(result, site, env, nav)
    write_samples(engine, site, result, env, nav)

    with Session(engine) as session:
        shown = {cell.run_id for row in result.rows for cell in row.cells.values()}
        efficiency = run_performance(engine, list(shown), profiles)
        for run in session.scalars(select(Run).where(Run.run_id.in_(shown))):
            metrics = session.scalars(select(Metric).where(Metric.run_id == run.run_id)).all()
            page = env.get_template("run.html.j2").render(
                title=f"Run {run.run_id}",
                root="../",
                tasks_nav=nav,
                run=run,
                metrics=metrics,
                efficiency=_efficiency_rows(efficiency.get(run.run_id)),
                tasks=[
                    (task, f"../samples/{slug(task.task)}.html")
                    for task in manifest.run_tasks(session, run.run_id)
                ],
                sections=manifest.sections(run),
                manifest=manifest.raw(run),
            )
            (site / "runs" / f"{slug(run.run_id)}.html").write_text(page)
    return site / "index.html"


def _perf_cells(perf: RunPerformance | None) -> list[dict]:
    """Leaderboard speed/cost cells: text as in the Markdown, sorted by number."""
    texts = performance_cells(perf)
    return [
        {"text": text, "sort": text.replace(",", "") if text != "—" else ""}
        for text in texts.values()
    ]


def _efficiency_rows(perf: RunPerformance | None) -> list[tuple[str, str]]:
    """The run page's cost and efficiency table: (what, value) pairs."""
    if perf is None:
        return []

    def usd(x):
        return "—" if x is None else f"${x:.6g}"

    def pct(x):
        return "—" if x is None else f"{x * 100:.3g}%"

    latency = perf.latency
    rows = [
        ("hardware profile", perf.hardware_profile or "none (pass --hardware NAME)"),
        ("wall time (s), model load excluded", f"{perf.wall_s:.2f}"),
        ("cost", usd(perf.cost.total_usd)),
        ("$ per 1M input tokens", usd(perf.cost.per_1m_input)),
        ("$ per 1M output tokens", usd(perf.cost.per_1m_output)),
        ("$ per 1k samples", usd(perf.cost.per_1k_samples)),
        ("$ per correct answer", usd(perf.cost.per_correct)),
        ("MFU (2 x params x computed tokens / time / peak FLOP/s)", pct(perf.mfu)),
        ("tokens counted for MFU", f"{perf.computed_tokens:,.0f}: {perf.tokens_counted}"),
        ("peak FLOP/s", perf.flops_peak.source if perf.flops_peak else "none measured or declared"),
        ("MBU (weights + KV per decode step / TPOT / bandwidth)", pct(perf.mbu)),
        (
            "memory bandwidth",
            perf.bandwidth_peak.source if perf.bandwidth_peak else "none measured or declared",
        ),
        (
            "energy (J)",
            f"{perf.energy_j:.1f}" if perf.energy_j is not None else f"— ({perf.energy_note})",
        ),
        (
            "J per output token",
            "—" if perf.joules_per_output_token is None else f"{perf.joules_per_output_token:.4g}",
        ),
    ]
    if latency:
        for name, dist in (("TTFT", latency.ttft), ("TPOT", latency.tpot), ("ITL", latency.itl)):
            if dist.n:
                rows.append(
                    (
                        f"{name} mean / p50 / p90 / p95 / p99 (ms)",
                        " / ".join(
                            f"{x * 1000:.1f}"
                            for x in (dist.mean, dist.p50, dist.p90, dist.p95, dist.p99)
                        ),
                    )
                )
    return rows
