"""Plots for the HTML report: PNG files drawn with matplotlib's Agg canvas, plus tiny inline SVG
sparklines built from numbers only.

No pyplot: figures are made with :class:`matplotlib.figure.Figure` on an Agg canvas, so building
a report never changes the global matplotlib backend of a notebook or script that calls it.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from repainter.images import atomic_write_bytes
from repainter.records import CaseRecord, finite_or_none
from repainter.records.leaderboard import CategoryRow

#: Colours per model (colour-blind friendly: Okabe-Ito), reused by the HTML legend.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]


def model_colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def _finite(values: Sequence[Any]) -> list[float]:
    return [v for v in map(finite_or_none, values) if v is not None]


def best_ever_matrix(records: list[CaseRecord], model: str) -> list[list[float]]:
    """Per finished case of ``model``: best-ever selection after each round (carried forward when
    a case stopped early, since best-ever never decreases)."""
    done = [r for r in records if r.model == model and r.done]
    # None: a round with no selectable candidate yet (records hold no NaN)
    curves = [[v for v in r.best_ever_by_round if v is not None] for r in done]
    curves = [c for c in curves if c]
    if not curves:
        return []
    length = max(len(c) for c in curves)
    return [c + [c[-1]] * (length - len(c)) for c in curves]


def progress_series(records: list[CaseRecord], models: list[str]) -> dict[str, dict[str, list]]:
    """model -> {"round": [...], "mean": [...], "low": [...], "high": [...], "n": n} of the
    best-ever selection score per round, mean over the model's finished cases (band: mean +- 1.96
    standard errors)."""
    series = {}
    for model in models:
        matrix = best_ever_matrix(records, model)
        if not matrix:
            continue
        data = np.asarray(matrix, dtype=np.float64)
        mean = data.mean(axis=0)
        sem = data.std(axis=0, ddof=1) / math.sqrt(len(data)) if len(data) > 1 else np.zeros_like(mean)
        series[model] = {"round": list(range(1, data.shape[1] + 1)), "mean": mean.tolist(),
                         "low": (mean - 1.96 * sem).tolist(), "high": (mean + 1.96 * sem).tolist(),
                         "n": len(data)}
    return series


def save_figure(fig, path: Path) -> None:
    """Write a matplotlib figure as PNG (Agg, no display), atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    atomic_write_bytes(path, buffer.getvalue())


def style_axes(ax) -> None:
    """The report's plot style: no top/right spines, light horizontal grid."""
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="y", color="#e5e7eb", linewidth=0.8)
    ax.set_axisbelow(True)


def plot_progress(records: list[CaseRecord], models: list[str], path: str | Path) -> bool:
    """Best-ever selection score per round, mean over cases per model; False if nothing to plot."""
    from matplotlib.figure import Figure

    series = progress_series(records, models)
    if not series:
        return False
    fig = Figure(figsize=(6.4, 3.4))
    ax = fig.add_subplot()
    for i, model in enumerate(models):
        if model not in series:
            continue
        s = series[model]
        colour = model_colour(i)
        ax.plot(s["round"], s["mean"], marker="o", color=colour, label=f"{model} (n={s['n']})")
        ax.fill_between(s["round"], s["low"], s["high"], color=colour, alpha=0.15, linewidth=0)
    rounds = max(len(s["round"]) for s in series.values())
    ax.set_xticks(range(1, rounds + 1))
    ax.set_xlabel("round")
    ax.set_ylabel("best-ever selection score")
    ax.set_title("Selection score of the best-ever candidate per round", fontsize=10)
    style_axes(ax)
    ax.legend(frameon=False, fontsize=8)
    save_figure(fig, Path(path))
    return True


def plot_categories(categories: list[CategoryRow], models: list[str], path: str | Path) -> bool:
    """Grouped bars: final selection score per category and model, with 95% CI whiskers."""
    from matplotlib.figure import Figure

    names = sorted({c.category for c in categories})
    if not names or not models:
        return False
    fig = Figure(figsize=(max(4.8, 1.1 * len(names) * max(1, len(models)) * 0.55 + 2), 3.2))
    ax = fig.add_subplot()
    width = 0.8 / len(models)
    x = np.arange(len(names))
    lookup = {(c.model, c.category): c for c in categories}
    lows = []
    for i, model in enumerate(models):
        means, err_low, err_high = [], [], []
        for name in names:
            row = lookup.get((model, name))
            mean = row.selection_final if row is not None else None
            means.append(mean if mean is not None else np.nan)
            lo, hi = (row.ci_low, row.ci_high) if row is not None else (None, None)
            err_low.append(mean - lo if mean is not None and lo is not None else 0.0)
            err_high.append(hi - mean if mean is not None and hi is not None else 0.0)
            if mean is not None:
                lows.append(lo if lo is not None else mean)
        ax.bar(x + (i - (len(models) - 1) / 2) * width, means, width * 0.92,
               yerr=[err_low, err_high], capsize=2, color=model_colour(i), label=model,
               error_kw={"linewidth": 0.8})
    if lows:
        ax.set_ylim(max(0.0, min(lows) - 0.05), None)
    ax.set_xticks(x)
    ax.set_xticklabels(names, fontsize=8)
    ax.set_ylabel("final selection score")
    ax.set_title("Final selection score by category (95% CI)", fontsize=10)
    style_axes(ax)
    ax.legend(frameon=False, fontsize=8)
    save_figure(fig, Path(path))
    return True


def sparkline_points(values: Sequence[Any], width: int = 96, height: int = 28,
                     pad: int = 3) -> dict[str, Any] | None:
    """Coordinates of an inline SVG sparkline (numbers only, so safe to put in the page)."""
    data = _finite(values)
    if not data:
        return None
    lo, hi = min(data), max(data)
    span = hi - lo or 1.0
    step = (width - 2 * pad) / max(1, len(data) - 1)
    points = [(pad + i * step, height - pad - (v - lo) / span * (height - 2 * pad))
              for i, v in enumerate(data)]
    if len(points) == 1:
        points = [(pad, points[0][1]), (width - pad, points[0][1])]
    return {"width": width, "height": height,
            "points": " ".join(f"{x:.1f},{y:.1f}" for x, y in points),
            "coords": points, "last": points[-1], "first_value": data[0], "last_value": data[-1]}


_COLOUR = re.compile(r"#[0-9A-Fa-f]{3,8}")


def sparkline_svg(points: dict[str, Any] | None, colour: str) -> str:
    """The inline SVG of :func:`sparkline_points` (empty without points). Made here, not in the
    template, because a 5,000-reference report draws 20,000 of them: it holds numbers formatted
    here and a colour checked to be ``#hex``, nothing from a record, so the template may put it
    in the page as it is (its one ``|safe``)."""
    if not points:
        return ""
    colour = colour if _COLOUR.fullmatch(colour) else "#888"
    width, height, (x, y) = int(points["width"]), int(points["height"]), points["last"]
    line = " ".join(f"{float(a):.1f},{float(b):.1f}" for a, b in points["coords"])
    return (
        f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="best-ever selection per round"><polyline points="{line}" fill="none" '
        f'stroke="{colour}" stroke-width="1.6"/><circle cx="{x:.1f}" cy="{y:.1f}" r="2.4" '
        f'fill="{colour}"/></svg>')
