"""The CLI as a package of thin commands (issue 25 item 4): commands that plugins add through the
``repainter.commands`` entry points, inside the same user-error net; the library functions the
commands call; no core CLI module reaches the bench."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
import yaml
from typer.testing import CliRunner

from repainter.cli import COMMANDS, build_app
from repainter.errors import UserError

runner = CliRunner()
CLI = Path(__file__).resolve().parents[1] / "repainter" / "cli"


@dataclass
class FakeEntryPoint:
    """What the CLI reads of an importlib.metadata.EntryPoint."""

    name: str
    value: str
    function: object = None
    error: Exception | None = None

    def load(self):
        if self.error is not None:
            raise self.error
        return self.function


def hello(name: Annotated[str, typer.Option(help="Who.")] = "world") -> None:
    """Say hello."""
    if name == "nobody":
        raise UserError("nobody is not a name")
    typer.echo(f"hello {name}")


def test_a_plugin_command_runs_with_its_options():
    app = build_app([FakeEntryPoint("hello", "plugin.cli:hello", hello)])
    result = runner.invoke(app, ["hello", "--name", "ada"])
    assert result.exit_code == 0, result.output
    assert result.stdout == "hello ada\n"
    assert "hello" in runner.invoke(app, ["--help"]).stdout


def test_a_plugin_command_runs_inside_the_user_error_net():
    app = build_app([FakeEntryPoint("hello", "plugin.cli:hello", hello)])
    result = runner.invoke(app, ["hello", "--name", "nobody"])
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: nobody is not a name"


def test_a_plugin_that_cannot_load_leaves_the_cli_working_and_says_why_on_use():
    broken = FakeEntryPoint("meta-eval", "gone.cli:command", error=ImportError("No module 'gone'"))
    app = build_app([broken])
    assert runner.invoke(app, ["--version"]).exit_code == 0
    listing = runner.invoke(app, ["--help"])
    assert listing.exit_code == 0 and "meta-eval" in listing.stdout and "run" in listing.stdout
    result = runner.invoke(app, ["meta-eval", "--quick", "--scenes", "3"])
    assert result.exit_code == 2, result.output
    line = result.stderr.strip()
    assert line.startswith("error: the command 'meta-eval' (gone.cli:command")
    assert "ImportError: No module 'gone'" in line and "\n" not in line


def test_a_plugin_typer_cannot_turn_into_a_command_is_reported_the_same_way():
    # the entry point names a constant, not a function
    app = build_app([FakeEntryPoint("odd", "plugin.cli:NAME", "not a function")])
    assert runner.invoke(app, ["--help"]).exit_code == 0
    result = runner.invoke(app, ["odd"])
    assert result.exit_code == 2 and "could not be loaded" in result.stderr


def test_a_plugin_cannot_replace_a_core_command(capsys):
    app = build_app([FakeEntryPoint("validate", "plugin.cli:hello", hello)])
    assert "plugin command validate (plugin.cli:hello) is left out" in capsys.readouterr().err
    result = runner.invoke(app, ["validate", "--help"])
    assert result.exit_code == 0 and "Check a spec" in result.stdout


def test_the_core_cli_does_not_import_the_bench():
    bench = ("repainter.bench", "repainter.meta_eval", "repainter.sim", "repainter.world")
    found = []
    for path in sorted(CLI.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            found += [f"{path.name}: {n}" for n in names if n.startswith(bench)]
    assert found == []
    assert "meta-eval" not in COMMANDS  # the bench adds it through the entry points


def test_spec_from_flags_merges_file_sets_values_and_common_flags(tmp_path):
    from repainter.spec_flags import spec_from_flags

    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump({"loop": {"rounds": 4, "variants": 3}, "dataset": {"limit": 5}}))
    spec = spec_from_flags(path, ["loop.variants=2"], {"loop.rounds": 1, "dataset.limit": None},
                           seed=9)
    assert (spec.loop.rounds, spec.loop.variants, spec.dataset.limit, spec.seed) == (1, 2, 5, 9)


def test_the_run_summary_table_comes_from_the_result(tmp_path):
    from repainter.cli import run as run_command
    from repainter.runner import run
    from repainter.spec import build_spec

    result = run(build_spec({"output_dir": str(tmp_path / "run"), "dataset": {"limit": 2},
                             "loop": {"rounds": 1, "variants": 1}}))
    columns, rows = result.summary_table()
    assert columns[:7] == ["rank", "model", "done", "failed", "selection r1", "selection final",
                           "steer"]
    assert [row[:4] for row in rows] == [[1, row.model, 2, 0] for row in result.leaderboard]
    assert all(len(row) == len(columns) for row in rows)
    table = run_command.summary_table(result)
    assert [c.header for c in table.columns] == columns
