"""What a run tells a tracker, assembled once from the run folder."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from repainter.records import CaseRecord, finite_or_none

#: Image grids sent to trackers: the first N references.
GRID_CASES = 4
GRID_TILE = 160


@dataclass
class Payload:
    run_name: str
    run_dir: Path
    #: The spec flattened to dotted keys (``loop.rounds``), values as text.
    params: dict[str, str]
    #: ``model/metric`` -> value; intervals as ``model/metric_ci_low`` / ``_ci_high``.
    metrics: dict[str, float]
    #: Per-round curves: round number -> {``model/best_ever_selection``: mean over cases}.
    curves: dict[int, dict[str, float]]
    #: The leaderboard: one row per model (numbers rounded to 4 places).
    table_columns: list[str]
    table_rows: list[list[Any]]
    #: (caption, PNG path) of the image grids.
    images: list[tuple[str, Path]] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)


def flatten(data: Any, prefix: str = "") -> dict[str, str]:
    """Nested spec data -> ``{"loop.rounds": "3", ...}``.

        >>> flatten({"loop": {"rounds": 3}, "t2i": [{"name": "procedural"}]})
        {'loop.rounds': '3', 't2i.0.name': 'procedural'}
    """
    if isinstance(data, dict):
        items = data.items()
    elif isinstance(data, list) and data:
        items = ((str(i), v) for i, v in enumerate(data))
    else:
        return {prefix: str(data)} if prefix else {}
    flat: dict[str, str] = {}
    for key, value in items:
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return finite_or_none(value)


def _grid(run_dir: Path, case_id: str, records: list[CaseRecord], models: list[str],
          out: Path) -> Path | None:
    """Reference | each model's best render, one row, labelled."""
    from repainter.store import RunStore

    reference = run_dir / RunStore(run_dir).reference_relpath(case_id)
    tiles = [("reference", reference)]
    for model in models:
        record = next((r for r in records if r.model == model and r.case_id == case_id), None)
        image = record.best.image if record is not None and record.best is not None else None
        tiles.append((model, run_dir / image if image else None))
    if not reference.exists():
        return None
    label_h = 18
    sheet = Image.new("RGB", (GRID_TILE * len(tiles), GRID_TILE + label_h), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (label, path) in enumerate(tiles):
        if path is not None and path.exists():
            with Image.open(path) as img:
                sheet.paste(img.convert("RGB").resize((GRID_TILE, GRID_TILE)), (i * GRID_TILE, label_h))
        draw.text((i * GRID_TILE + 4, 3), label[:24], fill="black")
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return out


def build_payload(run_dir: str | Path) -> Payload:
    """Read a run folder into a :class:`Payload` (image grids are written to RUN/trackers/)."""
    from repainter.report.plots import progress_series
    from repainter.result import RunResult
    from repainter.store import slug

    result = RunResult.load(run_dir)
    models = [t.display_name for t in result.spec.t2i]
    metrics: dict[str, float] = {}
    columns: list[str] = []
    flat = [row.flat() for row in result.leaderboard]  # the CSV's columns, as trackers show them
    for row in flat:
        for key, value in row.items():
            number = _number(value)
            if number is not None and key != "rank":
                metrics[f"{row['model']}/{key}"] = number
            if key not in columns:
                columns.append(key)
    table = [[round(v, 4) if isinstance(v, float) else v for v in (row.get(c) for c in columns)]
             for row in flat]
    curves: dict[int, dict[str, float]] = {}
    for model, series in progress_series(result.records, models).items():
        for step, mean in zip(series["round"], series["mean"]):
            curves.setdefault(step, {})[f"{model}/best_ever_selection"] = float(mean)
    cases = list(dict.fromkeys(r.case_id for r in result.records))[:GRID_CASES]
    images = []
    for case_id in cases:
        grid = _grid(result.run_dir, case_id, result.records, models,
                     result.run_dir / "trackers" / f"grid_{slug(case_id)}.png")
        if grid is not None:
            images.append((case_id, grid))
    info = result.info
    tags = {"dataset": result.spec.dataset.name, "status": str(info.status),
            "spec_fingerprint": result.spec.fingerprint(), "run_dir": str(result.run_dir)}
    commit = ((info.environment or {}).get("git") or {}).get("commit")
    if commit:
        tags["git_commit"] = commit
    return Payload(run_name=result.run_dir.name, run_dir=result.run_dir,
                   params=flatten(result.spec.model_dump(mode="json")), metrics=metrics,
                   curves=curves, table_columns=columns, table_rows=table, images=images, tags=tags)
