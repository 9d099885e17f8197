"""The ``repainter`` command line.

Run and compare (:mod:`repainter.cli.run`)
    ``run``                 run the regeneration loop on a spec (no --spec: the built-in world)
    ``compare``             several T2I models or MLLMs on the same references, or finished runs
    ``validate``            check a spec without loading anything
Before a run (:mod:`repainter.cli.prepare`)
    ``ls``                  the registered T2I models, MLLMs, metrics, datasets and presets
    ``doctor``              which packages, weights and keys a spec needs, offline
    ``prefetch``            download every weight a spec needs
    ``fetch``               download a manifest's images and verify them
Finished runs (:mod:`repainter.cli.runs`)
    ``report``              write the run's HTML report again
    ``rescore``             score the stored images with more metrics, or reselect
    ``track``               send a run to MLflow, W&B or TensorBoard
    ``export-preferences``  preference pairs for Diffusion-DPO-style training
Metric sanity (:mod:`repainter.cli.sanity`)
    ``sanity``              do the spec's metrics order ladders of known order on its models?
Retrieval (:mod:`repainter.cli.dar`)
    ``dar``                 diffusion-augmented interactive retrieval (Hits@K per turn)
From plugins
    every command of the entry-point group ``repainter.commands`` (``name = "module:function"``,
    a typer command function), e.g. ``meta-eval`` from the simulation bench.

Each command is a thin function over the library. Every command, plugins' included, runs inside
one net (:class:`_UserErrorGroup`): a user mistake ends in one ``error:`` line and exit code 2.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any

import typer
from rich.markup import escape
from typer.core import TyperGroup

from repainter.cli import dar, prepare, run, runs, sanity
from repainter.cli.common import console, fail, rows_table
from repainter.errors import one_line, user_message
from repainter.failures import RunFailedError

#: What typer's parser raises and reports itself. Taken from typer, never from click: recent
#: typer carries its own copy of click (typer._click) and no longer installs click, older typer
#: re-exports click's classes; either way BadParameter derives from ClickException.
_PARSER_EXCEPTIONS = (typer.Exit, typer.Abort, *(
    cls for cls in typer.BadParameter.__mro__ if cls.__name__ == "ClickException"))

#: The entry-point group of commands that other packages add.
PLUGIN_COMMANDS = "repainter.commands"


class _UserErrorGroup(TyperGroup):
    """Every command runs inside this net: a user mistake ends in one ``error:`` line, exit 2.

    ``--debug`` (anywhere on the command line) shows the traceback instead.
    """

    debug = False

    def main(self, args=None, *rest, **kwargs):
        args = list(sys.argv[1:] if args is None else args)
        _UserErrorGroup.debug = "--debug" in args or bool(os.environ.get("REPAINTER_DEBUG"))
        args = [a for a in args if a != "--debug"]
        return super().main(args, *rest, **kwargs)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except _PARSER_EXCEPTIONS:
            raise  # already reported (or a usage error click prints itself)
        except RunFailedError as exc:  # the run itself failed: its own exit code
            console.print(f"[red]run failed:[/red] {escape(one_line(str(exc)))}", soft_wrap=True)
            raise typer.Exit(exc.exit_code) from exc
        except Exception as exc:
            message = user_message(exc)
            if message is None or _UserErrorGroup.debug:
                raise
            fail(message, exc)


def _version(value: bool) -> None:
    if value:
        from repainter.version import __version__

        typer.echo(f"repainter {__version__}")
        raise typer.Exit()


def _global_options(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of user errors "
                                        "(may appear anywhere on the command line).")] = False,
) -> None:
    """Score and improve text-to-image models by image regeneration."""


#: The core commands, in the order ``repainter --help`` lists them.
COMMANDS = {
    "run": run.run, "compare": run.compare, "validate": run.validate,
    "doctor": prepare.doctor, "prefetch": prepare.prefetch, "fetch": prepare.fetch,
    "report": runs.report, "rescore": runs.rescore, "track": runs.track,
    "export-preferences": runs.export_preferences, "dar": dar.dar_command,
    "sanity": sanity.sanity, "ls": prepare.list_components,
}


def _broken_plugin(name: str, value: str, exc: BaseException):
    """A stand-in for a plugin command that cannot be loaded: the rest of the CLI works, and
    using it says why (one ``error:`` line, exit 2)."""
    reason = (f"the command {name!r} ({value}, entry point group {PLUGIN_COMMANDS}) could not "
              f"be loaded: {type(exc).__name__}: {exc}; fix or reinstall the package that "
              "declares it")

    def broken(args: Annotated[list[str] | None, typer.Argument(hidden=True)] = None) -> None:
        from repainter.errors import UserError

        raise UserError(reason)

    broken.__doc__ = f"(not available: {value} could not be loaded; run it to see why)"
    return broken


def _plugin_command(name: str, value: str, load) -> tuple[Any, dict[str, Any]]:
    """The plugin's command function and its ``app.command`` settings, or a stand-in that says
    why it is broken (it does not load, or typer cannot make a command of it)."""
    try:
        function = load()
        probe = typer.Typer()
        probe.command(name=name)(function)
        typer.main.get_command(probe)  # what app() does with it: a bad signature fails here
        return function, {}
    except Exception as exc:
        return _broken_plugin(name, value, exc), {
            "context_settings": {"ignore_unknown_options": True, "allow_extra_args": True}}


def add_plugin_commands(app: typer.Typer, entry_points=None) -> list[str]:
    """Add every command of the ``repainter.commands`` entry points to ``app``; return their
    names. A name a core command has is not replaced (the plugin's is left out, with a warning
    on stderr)."""
    if entry_points is None:
        from importlib.metadata import entry_points as installed

        entry_points = installed(group=PLUGIN_COMMANDS)
    taken = {info.name for info in app.registered_commands}
    added = []
    for point in sorted(entry_points, key=lambda p: p.name):
        if point.name in taken:
            console.print(f"[yellow]warning[/yellow] plugin command {escape(point.name)} "
                          f"({escape(point.value)}) is left out: a command of that name exists",
                          highlight=False)
            continue
        function, settings = _plugin_command(point.name, point.value, point.load)
        app.command(name=point.name, **settings)(function)
        taken.add(point.name)
        added.append(point.name)
    return added


def build_app(plugin_entry_points=None) -> typer.Typer:
    """The ``repainter`` app: the global options, the core commands, then the plugins' (those of
    ``plugin_entry_points``, by default the installed ``repainter.commands``)."""
    built = typer.Typer(
        cls=_UserErrorGroup,
        add_completion=False,
        no_args_is_help=True,
        rich_markup_mode=None,
        help="Score and improve text-to-image models by image regeneration.",
    )
    built.callback()(_global_options)
    for name, function in COMMANDS.items():
        built.command(name=name)(function)
    add_plugin_commands(built, plugin_entry_points)
    return built


app = build_app()

#: Kept for callers of the single-module CLI (tests/test_base_install.py).
_rows_table = rows_table


def main() -> None:  # pragma: no cover - console script entry
    app()
