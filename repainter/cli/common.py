"""What the commands share: the consoles, the one-line user error, the common options and the
tables of rows (doctor, prefetch, track)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from repainter.errors import USER_ERROR_EXIT, UserError, one_line
from repainter.spec import SpecError

#: Wide enough that tables are never cut when the output is a pipe or a file (rich uses 80);
#: tables do not expand, so a narrow one stays narrow.
PIPE_WIDTH = 400


def make_console(stderr: bool = False) -> Console:
    """A console that keeps rich's width in a terminal and prints full tables elsewhere."""
    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, width=None if stream.isatty() else PIPE_WIDTH)


#: Errors, warnings and progress go to stderr; stdout stays the result.
console = make_console(stderr=True)


def fail(message: str, cause: BaseException | None = None):
    """Print ``error: message`` as one line on stderr and exit with code 2."""
    console.print(f"[red]error:[/red] {escape(one_line(message))}", soft_wrap=True)
    raise typer.Exit(USER_ERROR_EXIT) from cause


SpecOption = Annotated[
    Path | None, typer.Option("--spec", "-s", help="Run spec (YAML or TOML). Default: the built-in world.")
]
SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a spec value, e.g. --set loop.rounds=5 (repeatable)."),
]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="Only errors and the result.")]
VerboseOption = Annotated[bool, typer.Option("--verbose", "-v", help="Also INFO log lines on "
                                             "stderr (the run log gets them anyway).")]


def spec_from_options(spec: Path | None, sets: list[str] | None,
                      values: dict[str, Any] | None = None, **common: Any):
    """The spec of ``--spec``, ``--set``, the value flags and the common flags
    (:func:`repainter.spec_flags.spec_from_flags`), with a clear word when the file is a DAR spec."""
    from repainter.spec_flags import spec_from_flags

    try:
        return spec_from_flags(spec, sets or [], values, **common)
    except SpecError as exc:
        hint = dar_spec_hint(spec)
        if hint:
            raise UserError(hint) from exc
        raise


#: Keys only a DAR spec has (repainter/dar/spec.py).
_DAR_KEYS = {"dialogues", "gallery", "text_scorer", "embedding", "alpha", "images_per_turn"}


def dar_spec_hint(path: Path | None) -> str | None:
    """A clear word when a DAR spec is given to a command that takes a regeneration spec."""
    if path is None:
        return None
    from repainter.spec import read_spec_file

    try:
        data = read_spec_file(path)
    except SpecError:
        return None
    if _DAR_KEYS & set(data):
        return (f"{path} is a DAR spec (it has {', '.join(sorted(_DAR_KEYS & set(data)))}); "
                f"run it with `repainter dar --spec {path}` (run / validate / doctor take "
                "regeneration specs)")
    return None


def print_settings(out: Console, settings: dict[str, Any], warnings: list[str]) -> None:
    """Where the metrics and selection came from, and the spec's honesty warnings."""
    preset = settings["preset"] or "none"
    out.print(f"settings: preset {escape(preset)} ({escape(settings['why'])})", highlight=False)
    for warning in warnings:
        out.print(f"[yellow]warning[/yellow] {escape(warning)}", highlight=False)


def rows_table(title: str, rows: list[dict[str, Any]], columns: list[str]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:  # plain text: a hint's "[models]" is not rich markup
        table.add_row(*(Text(str(row.get(c, ""))) for c in columns))
    return table


def print_rows(rows: list[dict[str, Any]], *, as_json: bool, title: str, columns: list[str],
               failed: bool, notes: list[str] = ()) -> None:
    """JSON or a table (then notes), and exit 1 when ``failed``: shared by doctor and prefetch."""
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
    else:
        out = make_console()
        out.print(rows_table(title, rows, columns))
        for note in notes:
            out.print(note)
    if failed:
        raise typer.Exit(1)
