"""Matplotlib figures for the site: a model x task heatmap, accuracy against latency,
and per-request latency distributions."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from bench.report.leaderboard import Board  # noqa: E402


def _label(row) -> str:
    return f"{row.model} ({row.backend})"


def heatmap(board: Board, path: Path) -> None:
    values = np.array(
        [
            [row.cells[c.task].value if c.task in row.cells else np.nan for c in board.columns]
            for row in board.rows
        ]
    )
    fig, ax = plt.subplots(figsize=(1.8 + 1.6 * len(board.columns), 1.2 + 0.5 * len(board.rows)))
    # Colour each column on its own scale, since tasks use different metrics.
    shown = np.full_like(values, np.nan)
    for j, column in enumerate(board.columns):
        col = values[:, j]
        span = np.nanmax(col) - np.nanmin(col) if np.isfinite(col).any() else 0
        scaled = (col - np.nanmin(col)) / span if span else np.full_like(col, 0.5)
        shown[:, j] = scaled if column.higher_is_better is not False else 1 - scaled
    ax.imshow(shown, cmap="viridis", aspect="auto", vmin=0, vmax=1)
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            if not math.isnan(values[i, j]):
                ax.text(j, i, f"{values[i, j]:.3g}", ha="center", va="center", color="w")
    ax.set_xticks(
        range(len(board.columns)), [c.header for c in board.columns], rotation=20, ha="right"
    )
    ax.set_yticks(range(len(board.rows)), [_label(r) for r in board.rows])
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def accuracy_vs_latency(board: Board, latency: dict[tuple[str, str], float], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    for row in board.rows:
        seconds = latency.get((row.model, row.backend))
        if seconds is None or math.isnan(row.average):
            continue
        low, high = row.average_ci
        ax.errorbar(
            seconds,
            row.average,
            yerr=[[row.average - low], [high - row.average]],
            fmt="o",
            capsize=3,
        )
        ax.annotate(
            _label(row),
            (seconds, row.average),
            textcoords="offset points",
            xytext=(5, 5),
            fontsize=8,
        )
    ax.set_xlabel("median time to first token, or end-to-end latency where not streamed (s)")
    ax.set_ylabel("average score (95% CI)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def latency_distributions(samples: dict[tuple[str, str], list[float]], path: Path) -> None:
    labels = [f"{m} ({b})" for m, b in samples]
    fig, ax = plt.subplots(figsize=(6, 1.5 + 0.5 * len(samples)))
    ax.boxplot(list(samples.values()), vert=False)
    ax.set_yticks(range(1, len(labels) + 1), labels)
    ax.set_xlabel("per-request wall time of generation requests (s)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both axes (x: lower is better,
    y: higher is better), in order of x."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], -math.inf
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def accuracy_vs_cost(
    board: Board, cost: dict[tuple[str, str], float], label: str, path: Path
) -> None:
    """Average score against a cost per row (lower is better), Pareto frontier marked."""
    rows = [r for r in board.rows if (r.model, r.backend) in cost and not math.isnan(r.average)]
    points = [(cost[(r.model, r.backend)], r.average) for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    for row, (x, y) in zip(rows, points, strict=True):
        ax.plot(x, y, "o", color="tab:blue")
        ax.annotate(_label(row), (x, y), textcoords="offset points", xytext=(5, 5), fontsize=8)
    front = pareto_front(points)
    xs, ys = [points[i][0] for i in front], [points[i][1] for i in front]
    ax.step(xs, ys, where="post", color="tab:red")
    ax.plot(
        xs, ys, "o", markersize=12, markerfacecolor="none", color="tab:red", label="Pareto frontier"
    )
    ax.set_xlabel(label)
    ax.set_ylabel("average score")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
