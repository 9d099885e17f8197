"""(e) The ladders again on a second renderer that nothing was tuned on.

The default selection, the describer and their thresholds were fitted on the world's flat
renderer. A metric that only ranks models because it learnt that renderer's look would lose its
order on another look, so meta-eval re-runs the same ladders, seeds and scenes with the sim
models and references drawn by ``painterly`` (soft shading, outlines of varying width, textures,
uneven light, overlaps, perspective, its own shapes: ``repainter.bench.world.painterly``) and
reports each metric's tau on both renderers side by side. Nothing is re-tuned on the result.

Only the simulated models and the world's references can change renderer; ladders given as
data with other models are reported as skipped, with the reason, never silently drawn flat.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from repainter.report.markdown import markdown_table
from repainter.report.validity import fmt_value


def renderer_blocker(config, ladders: dict) -> str | None:
    """Why the ladders cannot be drawn by the second renderer (None: they can)."""
    if config.dataset is not None and config.dataset.name != "world":
        return f"the references come from dataset {config.dataset.name!r}, not the world"
    for name, ladder in ladders.items():
        others = sorted({m.get("name") for m in ladder.models if m.get("name") != "sim"})
        if others:
            return (f"ladder {name!r} has models that are not the sim model ({', '.join(others)}); "
                    "only sim draws with the world's renderers")
    return None


def run_second_renderer(config, ladders: dict, run_ladders) -> dict[str, Any]:
    """The required and stress ladders on ``config.second_renderer`` (same scenes and seeds),
    in ``output_dir/second-renderer``; ``{"skipped": reason}`` where the ladders cannot change
    renderer."""
    renderer = config.second_renderer
    blocker = renderer_blocker(config, ladders)
    if blocker is not None:
        return {"renderer": renderer, "skipped": blocker}
    other = config.model_copy(update={
        "renderer": renderer, "output_dir": str(Path(config.output_dir) / "second-renderer")})
    return {"renderer": renderer, "first_renderer": config.renderer,
            "ladders": run_ladders(other, ladders)}


def _tau(ladder: dict[str, Any] | None, metric: str) -> float | None:
    result = ((ladder or {}).get("metrics") or {}).get(metric)
    return None if result is None else result.get("tau_seed_mean")


def second_renderer_headline(data: dict[str, Any]) -> list[str]:
    """One headline line: the default selection's tau per required ladder on both renderers."""
    second = data.get("second_renderer")
    if not second:
        return []
    if second.get("skipped"):
        return [f"- Second renderer ({second['renderer']}): skipped: {second['skipped']}."]
    first, other = data.get("ladders") or {}, second["ladders"]
    required = [n for n, lad in other.items() if lad.get("required", True)]
    cells = ", ".join(f"{n} {fmt_value(_tau(other[n], 'selection'), 2)} "
                      f"(flat {fmt_value(_tau(first.get(n), 'selection'), 2)})" for n in required)
    return [f"- Second renderer `{second['renderer']}` (nothing was tuned on it; the selection "
            f"was not re-tuned): default selection tau per required ladder: {cells}."]


def second_renderer_section(data: dict[str, Any], truth: str | None) -> list[str]:
    """(e): per metric and ladder, tau (mean over seeds) on the first and the second renderer."""
    second = data.get("second_renderer")
    if not second:
        return []
    lines = ["", "## (e) The second renderer", ""]
    if second.get("skipped"):
        return lines + [f"Skipped: {second['skipped']}."]
    first, other = data.get("ladders") or {}, second["ladders"]
    names = list(other)
    metrics = list(dict.fromkeys(m for lad in other.values() for m in lad["metrics"]))
    lines += [f"The same ladders, scenes and seeds with the sim models and the references drawn "
              f"by `{second['renderer']}` (repainter.bench.world.painterly: soft shading, "
              "outlines of varying width, textures, uneven light, overlaps, perspective, its own "
              "shapes). Neither the describer, the selection metrics nor their thresholds were "
              "fitted on it, and nothing was re-tuned after this run. Kendall tau against the "
              f"true order (mean over seeds): {second['renderer']} / "
              f"{second.get('first_renderer', 'flat')}.", ""]
    rows = []
    for metric in metrics:
        cells = [metric + (" (truth)" if metric == truth else "")]
        for name in names:
            cells.append(f"{fmt_value(_tau(other[name], metric), 2)} / "
                         f"{fmt_value(_tau(first.get(name), metric), 2)}")
        rows.append(cells)
    stress = [n for n in names if not other[n].get("required", True)]
    header = [n + (" (stress)" if n in stress else "") for n in names]
    return lines + markdown_table(["metric", *header], rows)
