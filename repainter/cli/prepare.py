"""Before a run: ``repainter ls`` (what is registered), ``doctor`` (what a spec needs and what
is missing, offline), ``prefetch`` (download its weights) and ``fetch`` (a manifest's images)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from repainter.cli.common import (
    SetOption,
    SpecOption,
    console,
    fail,
    make_console,
    print_rows,
    spec_from_options,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def list_components(as_json: JsonOption = False) -> None:
    """List the registered T2I backends, MLLM backends, metrics, datasets and presets."""
    from repainter.presets import DESCRIPTIONS, PRESETS
    from repainter.registry import DATASETS, METRICS, MLLM, T2I

    sections = {r.kind: r.describe() for r in (T2I, MLLM, METRICS, DATASETS)}
    sections["presets"] = [(name, DESCRIPTIONS.get(name, "")) for name in sorted(PRESETS)]
    if as_json:
        typer.echo(json.dumps({k: [n for n, _ in v] for k, v in sections.items()}, indent=2))
        return
    out = make_console()
    for kind, rows in sections.items():
        table = Table(title=kind, show_header=False, title_justify="left")
        table.add_column("name", style="bold")
        table.add_column("summary")
        for name, summary in rows:
            table.add_row(escape(name), escape(summary))  # "[bench]" is text, not markup
        out.print(table)


def doctor(spec: SpecOption = None, sets: SetOption = None, as_json: JsonOption = False) -> None:
    """Report, offline, which packages, weights and keys a spec needs and which are missing."""
    from repainter.preflight import needs_rows

    rows = needs_rows(spec_from_options(spec, sets))
    missing = [row for row in rows if not row["present"]]
    print_rows(rows, as_json=as_json, title="what this spec needs",
               columns=["role", "label", "kind", "model", "present"], failed=bool(missing),
               notes=[f"[yellow]missing[/yellow] {escape(row['label'])} ({escape(row['model'])}): "
                      f"{escape(row['how_to_fix'])}" for row in missing])


def prefetch(spec: SpecOption = None, sets: SetOption = None, as_json: JsonOption = False) -> None:
    """Download every weight a spec needs (needs network; run `doctor` to check offline)."""
    from repainter.prefetch import prefetch_spec

    rows = prefetch_spec(spec_from_options(spec, sets))
    print_rows(rows, as_json=as_json, title="prefetch",
               columns=["role", "label", "kind", "model", "status", "location", "error"],
               failed=any(row["status"] == "failed" for row in rows))


def fetch(
    dataset: Annotated[str, typer.Argument(help="A manifest dataset (evalref-100) or a manifest file.")],
    cache_dir: Annotated[Path | None, typer.Option("--cache-dir", help="Download folder "
                         "(default: $REPAINTER_CACHE or ~/.cache/repainter/datasets/<name>).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Download again; still verified against "
                                        "the lock.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds per download.")] = 60.0,
    as_json: JsonOption = False,
) -> None:
    """Download a manifest's images into the cache and verify them against its checksum lock."""
    from repainter.datasets import DatasetError, fetch_dataset
    from repainter.fetch import DownloadError

    failures: list[str] = []

    def show(item) -> None:
        # one line for all failures (offline, every item fails the same way), not one per item
        if item.status == "failed":
            failures.append(item.error if item.error.startswith(f"{item.id}: ")
                            else f"{item.id}: {item.error}")

    try:
        report = fetch_dataset(dataset, cache_dir, force=force, timeout=timeout, on_item=show)
    except (DatasetError, DownloadError) as exc:
        fail(str(exc), exc)
    if failures and not as_json:
        more = f" (and {len(failures) - 1} more; every reason: --json)" if len(failures) > 1 else ""
        console.print(f"[yellow]failed[/yellow] {escape(failures[0])}{more}", soft_wrap=True)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        counts = report.to_dict()["counts"]
        typer.echo(", ".join(f"{n} {k}" for k, n in counts.items() if n) + f" · {report.cache_dir}")
    if not report.ok:
        raise typer.Exit(1)
