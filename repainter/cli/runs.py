"""Commands on finished run folders: ``repainter report``, ``rescore``, ``track`` and
``export-preferences``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from repainter.cli.common import console, fail, make_console, print_rows
from repainter.cli.run import summary_table

RunArgument = Annotated[Path, typer.Argument(help="A run folder.")]


def report(run_dir: RunArgument) -> None:
    """Write RUN/report/index.html: leaderboard, plots, every case's rounds (static, offline)."""
    from repainter.report.html import write_report
    from repainter.store import SPEC_FILE

    if not (run_dir / SPEC_FILE).exists() and not (run_dir / "cases").is_dir():
        fail(f"{run_dir} is not a run folder")
    typer.echo(str(write_report(run_dir)))


def rescore(
    run_dir: RunArgument,
    metrics: Annotated[
        list[str] | None,
        typer.Option("--metrics", "-m", help="A metric to add: a registry name, or a YAML mapping "
                     "such as '{name: psnr, params: {size: 128}}'. Repeat."),
    ] = None,
    selection: Annotated[
        list[str] | None,
        typer.Option("--selection", help="With --reselect: a selection weight, metric=weight "
                     "(repeat; replaces the spec's weights)."),
    ] = None,
    reselect: Annotated[bool, typer.Option(
        "--reselect", help="Recompute selection scores and the best candidates post hoc.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print a machine-readable summary.")] = False,
) -> None:
    """Score a run's stored images with more metrics (no T2I model or MLLM runs); rebuild
    results, leaderboard and report. spec.yaml gains the new metrics."""
    from repainter.rescore import RescoreError
    from repainter.rescore import rescore as rescore_run

    weights = _selection_weights(selection) if selection else None
    try:
        result = rescore_run(run_dir, metrics or [], selection=weights, reselect=reselect)
    except RescoreError as exc:
        fail(str(exc), exc)
    if as_json:
        typer.echo(json.dumps(result.summary(), indent=2))
        return
    out = make_console()
    out.print(summary_table(result))
    out.print(f"rescored: {', '.join(result.info.rescored[-1]['metrics']) or '(reselect only)'}"
              f" · report: {result.run_dir / 'report' / 'index.html'}")


def _selection_weights(items: list[str]) -> dict[str, float]:
    """``--selection metric=weight`` values as a mapping."""
    weights = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            weights[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            fail(f"--selection {item!r} must look like metric=weight")
    return weights


def track(
    run_dir: Annotated[Path, typer.Argument(help="A finished run folder.")],
    trackers: Annotated[list[str], typer.Option(
        "--tracker", "-t", help="mlflow, wandb or tensorboard, or a YAML mapping such as "
        "'{name: mlflow, params: {tracking_uri: http://localhost:5000}}'. Repeat.")],
) -> None:
    """Send a finished run to experiment trackers (params, metrics with CIs, per-round curves,
    the leaderboard, image grids)."""
    import yaml

    from repainter.store import SPEC_FILE
    from repainter.trackers import track_run

    if not (run_dir / SPEC_FILE).exists():
        fail(f"{run_dir} is not a run folder (no {SPEC_FILE})")
    rows = track_run(run_dir, [yaml.safe_load(t) for t in trackers])
    print_rows(rows, as_json=False, title="trackers", columns=["tracker", "status", "where", "error"],
               failed=any(row["status"] == "failed" for row in rows))


def export_preferences(
    run_dir: RunArgument,
    out_dir: Annotated[Path, typer.Argument(help="Folder to write the preference dataset to.")],
    min_margin: Annotated[float, typer.Option(
        "--min-margin", help="Keep pairs whose score margin is at least this.")] = 0.0,
    pairs: Annotated[str, typer.Option(
        "--pairs", help="best_vs_rest (each group's best vs the others) or all.")] = "best_vs_rest",
    metric: Annotated[str, typer.Option(
        "--metric", help="Score that decides preference: selection or a metric label.")] = "selection",
    group: Annotated[str, typer.Option(
        "--group", help="Pair within each round, or across all rounds of a case.")] = "round",
    caption: Annotated[str, typer.Option(
        "--caption", help="Caption column: chosen, round or initial prompt.")] = "chosen",
    force: Annotated[bool, typer.Option(
        "--force", help="Export a run of the offline world's models on other data anyway.")] = False,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Write into an out folder that holds other files (they may be "
        "replaced); without it only a new, empty or earlier export folder of this run is "
        "used.")] = False,
) -> None:
    """Write (preferred, rejected) render pairs of a run as a dataset for preference training
    (Diffusion-DPO / Pick-a-Pic columns caption, jpg_0, jpg_1, label_0); prints data.jsonl."""
    from repainter.export import ExportError
    from repainter.export import export_preferences as export

    try:
        data = export(run_dir, out_dir, min_margin=min_margin, pairs=pairs,
                      metric=metric, group=group, caption=caption, force=force,
                      overwrite=overwrite)
    except ExportError as exc:
        fail(str(exc), exc)
    rows = sum(1 for line in data.read_text(encoding="utf-8").splitlines() if line.strip())
    console.print(f"{rows} preference pair(s)")
    typer.echo(str(data))
