"""``repainter dar``: diffusion-augmented interactive retrieval, Hits@K per dialogue turn with
and without generated images."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from repainter.cli.common import fail, make_console
from repainter.spec import SpecError


def dar_command(
    spec: Annotated[Path | None, typer.Option(
        "--spec", "-s", help="DAR spec (YAML or TOML). Default: the built-in world.")] = None,
    sets: Annotated[list[str] | None, typer.Option(
        "--set", help="Override a DAR spec value, e.g. --set alpha=0.3 or --set "
        "dialogues.limit=5 (repeatable).")] = None,
    manifest: Annotated[Path | None, typer.Option(
        "--manifest", help="JSONL dialogues {id, target, caption, dialog}; default: built-in "
        "world dialogues.")] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="First N dialogues.")] = None,
    alpha: Annotated[float | None, typer.Option(
        "--alpha", min=0.0, max=1.0, help="Weight of the text score in the fusion.")] = None,
    images_per_turn: Annotated[int | None, typer.Option(
        "--images-per-turn", min=1, help="Renders per turn.")] = None,
    t2i: Annotated[str | None, typer.Option(
        "--t2i", help="T2I model: a registry name or a YAML mapping.")] = None,
    text_scorer: Annotated[str | None, typer.Option(
        "--text-scorer", help="concepts | scene | clip, or a YAML mapping {name, params}.")] = None,
    embedding: Annotated[str | None, typer.Option(
        "--embedding", help="scene_layout | colour_layout | clip_i | dinov2, or a YAML mapping."
    )] = None,
    output_dir: Annotated[str | None, typer.Option("--output-dir", "-o", help="Run folder.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Diffusion-augmented interactive retrieval: Hits@K per dialogue turn, with and without
    generated images (offline world by default)."""
    from repainter.dar import DialogueError, load_dar_spec, run_dar_spec
    from repainter.store import RunFolderError

    overrides = list(sets or [])
    flags = {"dialogues.manifest": str(manifest) if manifest else None, "dialogues.limit": limit,
             "alpha": alpha, "images_per_turn": images_per_turn, "t2i": t2i,
             "text_scorer": text_scorer, "embedding": embedding, "output_dir": output_dir}
    overrides += [f"{key}={value}" for key, value in flags.items() if value is not None]
    try:
        checked = load_dar_spec(spec, overrides)
        result = run_dar_spec(checked)
    except (DialogueError, SpecError, ValueError, RunFolderError) as exc:
        fail(str(exc), exc)
    summary = result.summary()
    if as_json:
        typer.echo(json.dumps(summary, indent=2, default=str))
        return
    table = Table(title=f"DAR Hits@10, cumulative as ChatIR (alpha={checked.alpha}, gallery={summary['gallery_size']}, "
                  f"{summary['cases']} dialogues)", title_justify="left")
    for column in ("turn", "dialogues", "text only", "with images"):
        table.add_column(column)
    for t in summary["turns"]:
        table.add_row(str(t["turn"]), str(t["cases"]), f"{t['text']['hits@10']:.3f}",
                      f"{t['fused']['hits@10']:.3f}")
    out = make_console()
    out.print(table)
    for failure in result.failures:
        out.print(f"[yellow]failed[/yellow] {escape(str(failure.case))} (turn {failure.turn}): "
                  f"{escape(str(failure.error))}")
    out.print(f"run folder: {checked.run_dir}  (report: {checked.run_dir / 'report' / 'dar.html'})")
