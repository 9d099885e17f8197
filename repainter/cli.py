"""The ``repainter`` command line: run, validate, ls."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

from repainter.errors import USER_ERROR_EXIT, UserError, one_line, user_message
from repainter.failures import SOME_FAILED_EXIT, RunFailedError
from repainter.honesty import spec_warnings
from repainter.spec import SpecError, load_spec

#: Wide enough that tables are never cut when the output is a pipe or a file (rich uses 80);
#: tables do not expand, so a narrow one stays narrow.
PIPE_WIDTH = 400


def _console(stderr: bool = False) -> Console:
    """A console that keeps rich's width in a terminal and prints full tables elsewhere."""
    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, width=None if stream.isatty() else PIPE_WIDTH)


#: What typer's parser raises and reports itself. Taken from typer, never from click: recent
#: typer carries its own copy of click (typer._click) and no longer installs click, older typer
#: re-exports click's classes; either way BadParameter derives from ClickException.
_PARSER_EXCEPTIONS = (typer.Exit, typer.Abort, *(
    cls for cls in typer.BadParameter.__mro__ if cls.__name__ == "ClickException"))


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
            from rich.markup import escape

            console.print(f"[red]run failed:[/red] {escape(one_line(str(exc)))}", soft_wrap=True)
            raise typer.Exit(exc.exit_code) from exc
        except Exception as exc:
            message = user_message(exc)
            if message is None or _UserErrorGroup.debug:
                raise
            _fail(message, exc)


def _fail(message: str, cause: BaseException | None = None):
    """Print ``error: message`` as one line on stderr and exit with code 2."""
    from rich.markup import escape

    console.print(f"[red]error:[/red] {escape(one_line(message))}", soft_wrap=True)
    raise typer.Exit(USER_ERROR_EXIT) from cause


app = typer.Typer(
    cls=_UserErrorGroup,
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    help="Score and improve text-to-image models by image regeneration.",
)
console = _console(stderr=True)


def _version(value: bool) -> None:
    if value:
        from repainter.version import __version__

        typer.echo(f"repainter {__version__}")
        raise typer.Exit()


@app.callback()
def _global_options(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of user errors "
                                        "(may appear anywhere on the command line).")] = False,
) -> None:
    """Score and improve text-to-image models by image regeneration."""

SpecOption = Annotated[
    Path | None, typer.Option("--spec", "-s", help="Run spec (YAML or TOML). Default: the built-in world.")
]
SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a spec value, e.g. --set loop.rounds=5 (repeatable)."),
]


def _spec_from_options(spec: Path | None, sets: list[str] | None, **flags: Any):
    overrides = list(sets or [])
    for key, value in flags.items():
        if value is not None:
            overrides.append(f"{key}={value}")
    try:
        return load_spec(spec, overrides)
    except SpecError as exc:
        hint = _dar_spec_hint(spec)
        if hint:
            raise UserError(hint) from exc
        raise


#: Keys only a DAR spec has (repainter/dar/spec.py).
_DAR_KEYS = {"dialogues", "gallery", "text_scorer", "embedding", "alpha", "images_per_turn"}


def _dar_spec_hint(path: Path | None) -> str | None:
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


class _ProgressPrinter:
    """Turns runner events into a rich progress bar: one task per model, with the running mean."""

    def __init__(self, progress: Progress):
        self.progress = progress
        self.tasks: dict[str, Any] = {}
        self.scores: dict[str, list[float]] = {}
        self.per_model = 0

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event["event"]
        if kind == "start":
            self.per_model = event["total"] // max(1, len(event["models"]))
            for model in event["models"]:
                self.tasks[model] = self.progress.add_task(model, total=self.per_model, info="")
                self.scores[model] = []
        elif kind == "round":
            self._update(event["model"], f"{event['case_id']} round {event['round']}/{event['of']}")
        elif kind == "case":
            model = event["model"]
            if event.get("selection") is not None:
                self.scores[model].append(event["selection"])
            if event.get("status") == "failed":
                self.progress.console.print(f"[yellow]failed[/yellow] {escape(model)} "
                                            f"{escape(str(event['case_id']))}: "
                                            f"{escape(str(event['error']))}")
            self.progress.advance(self.tasks[model])
            self._update(model, "")

    def _update(self, model: str, where: str) -> None:
        scores = self.scores[model]
        mean = f"mean {sum(scores) / len(scores):.3f}" if scores else ""
        self.progress.update(self.tasks[model], info=" ".join(x for x in (where, mean) if x))


def _summary_table(result) -> Table:
    table = Table(title=f"repainter · {result.run_dir}")
    widest = max((len(row.model) for row in result.leaderboard), default=5)
    for column in ("rank", "model", "done", "failed", "selection r1", "selection final", "steer"):
        if column == "model":
            table.add_column(column, min_width=widest, no_wrap=True)
        else:
            table.add_column(column, justify="right")
    from repainter.report.labels import metric_header
    from repainter.result import TRUTH_METRICS

    truths = [t for t in TRUTH_METRICS if any(t in row.metrics for row in result.leaderboard)]
    for truth in truths:
        table.add_column(f"{truth} r1", justify="right")
        table.add_column(f"{truth} final", justify="right")
    # every other metric's final mean (rescore -m psnr shows psnr), judge columns with their scale
    labels = [m.display_name for m in result.spec.metrics] + ["judge_semantic", "judge_aesthetic"]
    others = [label for label in labels if label not in truths
              and any(label in row.metrics for row in result.leaderboard)]
    for label in others:
        table.add_column(metric_header(label), justify="right")

    def fmt(value):
        return "-" if value is None else f"{value:.3f}"

    def stat(row, label: str, field: str = "mean"):
        summary = row.metrics.get(label)
        return getattr(summary, field) if summary is not None else None

    for row in result.leaderboard:
        cells = [str(row.rank), row.model, str(row.done), str(row.failed),
                 fmt(row.selection.round1), fmt(row.selection.mean),
                 fmt(row.selection.steerability)]
        for truth in truths:
            cells += [fmt(stat(row, truth, "round1")), fmt(stat(row, truth))]
        cells += [fmt(stat(row, label)) for label in others]
        table.add_row(*cells)
    return table


QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="Only errors and the result.")]
VerboseOption = Annotated[bool, typer.Option("--verbose", "-v", help="Also INFO log lines on "
                                             "stderr (the run log gets them anyway).")]


@app.command()
def run(
    spec: SpecOption = None,
    sets: SetOption = None,
    output_dir: Annotated[str | None, typer.Option("--output-dir", "-o", help="Run folder.")] = None,
    limit: Annotated[int | None, typer.Option(help="Use only the first N references.")] = None,
    rounds: Annotated[int | None, typer.Option(help="Rounds per case.")] = None,
    variants: Annotated[int | None, typer.Option(help="Prompt variants per round.")] = None,
    seed: Annotated[int | None, typer.Option(help="The run's seed (spec key seed).")] = None,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, cuda:1, mps ... for every "
                                               "component that takes a device.")] = None,
    dtype: Annotated[str | None, typer.Option(help="float16, bfloat16, float32 for every "
                                              "component that takes a dtype.")] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", help="For every component "
                                                   "that takes a batch size.")] = None,
    model_args: Annotated[str | None, typer.Option("--model-args", help="k=v,k2=v2: params of "
                                                   "every T2I model (like lm-eval).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", "--show-config", help="Print the resolved "
                                          "spec and what would be loaded, then exit.")] = False,
    strategy: Annotated[str | None, typer.Option(
        help="Loop strategy: refine (default), best_of_n or one_shot.")] = None,
    seeds: Annotated[str | None, typer.Option(
        help="Run once per seed, e.g. 0,1,2: sub-runs RUN/seed-<s> and a seed-aggregated "
        "leaderboard in RUN.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a machine-readable summary.")] = False,
    quiet: QuietOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Run the regeneration loop (no --spec: the built-in offline world)."""
    seed_list = None
    if seeds is not None:
        try:
            seed_list = json.dumps([int(s) for s in seeds.split(",") if s.strip()])
        except ValueError as exc:
            _fail(f"--seeds {seeds!r} must be integers separated by commas", exc)
    checked = _spec_from_options(
        spec, sets, output_dir=output_dir, **{"dataset.limit": limit, "loop.rounds": rounds,
                                              "loop.variants": variants, "loop.strategy": strategy,
                                              "seeds": seed_list},
    )
    checked = _with_common_flags(checked, device=device, dtype=dtype, batch_size=batch_size,
                                 seed=seed, model_args=model_args)
    if dry_run:
        _dry_run(checked, as_json=as_json)
        return
    _execute(checked, as_json=as_json, quiet=quiet, verbose=verbose)


def _with_common_flags(checked, **flags: Any):
    from repainter.flags import flag_overrides
    from repainter.spec import build_spec

    overrides = flag_overrides(checked, **flags)
    # the values the spec was given, so the flags merge in one pass with them
    return build_spec(checked.own_values(), overrides) if overrides else checked


def _dry_run(checked, *, as_json: bool) -> None:
    """The resolved spec and what a run would load; nothing is loaded or written."""
    from repainter.preflight import describe

    plan = describe(checked)
    settings, warnings = checked.settings_origin(), spec_warnings(checked)
    if as_json:
        typer.echo(json.dumps({"spec": checked.model_dump(mode="json"), "settings": settings,
                               "warnings": warnings, **plan}, indent=2, default=str))
    else:
        out = _console()
        out.print(checked.to_yaml(), markup=False, highlight=False)
        out.print(_rows_table("what this run would load", plan["needs"],
                              ["role", "label", "kind", "model", "present"]))
        out.print(f"run folder: {plan['run_dir']} · fingerprint {plan['fingerprint']}")
        _print_settings(out, settings, warnings)
        for problem in plan["problems"]:
            out.print(f"[yellow]problem[/yellow] {escape(problem)}", markup=True, highlight=False)
    if plan["problems"]:
        raise typer.Exit(USER_ERROR_EXIT)


def _print_settings(out: Console, settings: dict[str, Any], warnings: list[str]) -> None:
    """Where the metrics and selection came from, and the spec's honesty warnings."""
    preset = settings["preset"] or "none"
    out.print(f"settings: preset {escape(preset)} ({escape(settings['why'])})", highlight=False)
    for warning in warnings:
        out.print(f"[yellow]warning[/yellow] {escape(warning)}", highlight=False)


def _execute(checked, *, as_json: bool, quiet: bool, verbose: bool = False) -> None:
    """Run a checked spec with progress (a bar in a terminal, lines elsewhere), then print the
    summary (shared by run/compare)."""
    from repainter.logging_setup import ProgressLines, configure_cli_logging
    from repainter.runner import run as run_spec

    configure_cli_logging(-1 if quiet else 1 if verbose else 0)
    show_bar = not quiet and not as_json and sys.stderr.isatty()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TextColumn("{task.fields[info]}"))
    try:
        if show_bar:
            with Progress(*columns, console=console) as progress:
                result = run_spec(checked, on_event=_ProgressPrinter(progress))
        else:
            # pipes, nohup, Slurm: plain progress lines on stderr (stdout stays the result)
            result = run_spec(checked, on_event=None if quiet else ProgressLines(sys.stderr))
    except RunFailedError as exc:
        if exc.result is not None:  # it got to the end: show what it has, then fail
            _print_result(exc.result, as_json=as_json)
        raise
    _print_result(result, as_json=as_json)
    if result.failed:
        raise typer.Exit(SOME_FAILED_EXIT)


def _print_result(result, *, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(result.summary(), indent=2))
        return
    out = _console()
    out.print(_summary_table(result))
    _print_failures(out, result)
    out.print(f"run folder: {result.run_dir} · log: {result.run_dir / 'logs' / 'run.log'}")


def _print_failures(out: Console, result) -> None:
    """Failed cases grouped by kind: count, an example and the first cases of each."""
    from rich.markup import escape

    groups = result.info.failures or []
    if groups:
        out.print(f"[yellow]{len(result.failed)} of {result.info.cases.total} cases failed[/yellow]"
                  " (run.json `failures`; the next run of the same command tries them again):")
    for group in groups:
        cases = ", ".join(group.cases) + (" ..." if group.count > len(group.cases) else "")
        out.print(f"  {group.count} x {escape(group.kind)}: {escape(group.example)} [{escape(cases)}]",
                  highlight=False)


@app.command()
def compare(
    runs: Annotated[list[Path] | None, typer.Argument(
        help="Finished run folders to compare without running again (same protocol).")] = None,
    models: Annotated[
        list[str] | None,
        typer.Option("--t2i", "-m", help="A T2I model: a registry name, or a YAML mapping such as "
                     "'{name: procedural, label: colourblind, params: {ignore: [color]}}'. Repeat."),
    ] = None,
    spec: SpecOption = None,
    sets: SetOption = None,
    output_dir: Annotated[str | None, typer.Option("--output-dir", "-o", help="Run folder.")] = None,
    limit: Annotated[int | None, typer.Option(help="Use only the first N references.")] = None,
    mllms: Annotated[
        list[str] | None,
        typer.Option("--mllm", help="An MLLM (name or YAML mapping, like --t2i). Repeat: the "
                     "run becomes an MLLM x T2I grid that also ranks the MLLMs."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a machine-readable summary.")] = False,
    quiet: QuietOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Compare several T2I models (or, with --mllm twice or more, several MLLMs) on the same
    references, seeds and loop budget; or, given RUN folders, build one leaderboard and report
    from finished runs (nothing runs again)."""
    if runs:
        if models:
            _fail("give either run folders or --t2i models, not both")
        _compare_finished(runs, output_dir, as_json=as_json)
        return
    parsed = _parse_components("--t2i", models or [])
    parsed_mllms = _parse_components("--mllm", mllms or [])
    if len(parsed) < 2 and len(parsed_mllms) < 2:
        _fail("compare needs at least two --t2i models or two --mllm")
    sets = [*(sets or []), f"t2i={json.dumps(parsed)}"]
    if parsed_mllms:
        sets.append(f"mllm={json.dumps(parsed_mllms)}")
    checked = _spec_from_options(spec, sets, output_dir=output_dir, **{"dataset.limit": limit})
    early = checked.loop.early_stop
    if early.patience or early.target is not None:
        _fail("compare gives every model the same rounds; "
              "turn off loop.early_stop (patience 0, target null)")
    _execute(checked, as_json=as_json, quiet=quiet, verbose=verbose)


def _compare_finished(runs: list[Path], output_dir: str | None, *, as_json: bool) -> None:
    from repainter.merge_runs import merge_runs

    result = merge_runs(runs, output_dir)
    if as_json:
        typer.echo(json.dumps(result.summary(), indent=2))
        return
    out = _console()
    out.print(_summary_table(result))
    out.print(f"comparison folder: {result.run_dir} · report: {result.run_dir / 'report' / 'index.html'}")


def _parse_components(flag: str, texts: list[str]) -> list[Any]:
    """Each ``--t2i`` / ``--mllm`` value as a name or a YAML mapping."""
    import yaml

    parsed = []
    for text in texts:
        try:
            parsed.append(yaml.safe_load(text))
        except yaml.YAMLError as exc:
            console.print(f"[red]error:[/red] {flag} {text!r} is not a name or YAML mapping: {exc}")
            raise typer.Exit(2) from exc
    return parsed


@app.command()
def validate(
    spec: Annotated[Path, typer.Argument(help="Run spec to check.")],
    sets: SetOption = None,
) -> None:
    """Check a spec: schema, registered names, params that fit, dataset paths (no weights: see
    `repainter doctor`)."""
    from repainter.preflight import PreflightError, spec_problems

    checked = _spec_from_options(spec, sets)
    problems = spec_problems(checked)
    if problems:
        raise PreflightError(problems)
    typer.echo(f"ok: {spec} (fingerprint {checked.fingerprint()})")
    _print_settings(_console(), checked.settings_origin(), spec_warnings(checked))


def _rows_table(title: str, rows: list[dict[str, Any]], columns: list[str]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:  # plain text: a hint's "[models]" is not rich markup
        table.add_row(*(Text(str(row.get(c, ""))) for c in columns))
    return table


def _print_rows(rows: list[dict[str, Any]], *, as_json: bool, title: str, columns: list[str],
                failed: bool, notes: list[str] = ()) -> None:
    """JSON or a table (then notes), and exit 1 when ``failed``: shared by doctor and prefetch."""
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
    else:
        out = _console()
        out.print(_rows_table(title, rows, columns))
        for note in notes:
            out.print(note)
    if failed:
        raise typer.Exit(1)


@app.command()
def doctor(
    spec: SpecOption = None,
    sets: SetOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Report, offline, which packages, weights and keys a spec needs and which are missing."""
    from repainter.preflight import needs_rows

    rows = needs_rows(_spec_from_options(spec, sets))
    missing = [row for row in rows if not row["present"]]
    _print_rows(rows, as_json=as_json, title="what this spec needs",
                columns=["role", "label", "kind", "model", "present"], failed=bool(missing),
                notes=[f"[yellow]missing[/yellow] {escape(row['label'])} ({escape(row['model'])}): "
                       f"{escape(row['how_to_fix'])}" for row in missing])


@app.command()
def prefetch(
    spec: SpecOption = None,
    sets: SetOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Download every weight a spec needs (needs network; run `doctor` to check offline)."""
    from repainter.weights import prefetch_spec

    rows = prefetch_spec(_spec_from_options(spec, sets))
    _print_rows(rows, as_json=as_json, title="prefetch",
                columns=["role", "label", "kind", "model", "status", "location", "error"],
                failed=any(row["status"] == "failed" for row in rows))


@app.command()
def fetch(
    dataset: Annotated[str, typer.Argument(help="A manifest dataset (evalref-100) or a manifest file.")],
    cache_dir: Annotated[Path | None, typer.Option("--cache-dir", help="Download folder "
                         "(default: $REPAINTER_CACHE or ~/.cache/repainter/datasets/<name>).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Download again; still verified against "
                                        "the lock.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds per download.")] = 60.0,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Download a manifest's images into the cache and verify them against its checksum lock."""
    from rich.markup import escape

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
        _fail(str(exc), exc)
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


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="A run folder.")],
) -> None:
    """Write RUN/report/index.html: leaderboard, plots, every case's rounds (static, offline)."""
    from repainter.report.html import write_report
    from repainter.store import SPEC_FILE

    if not (run_dir / SPEC_FILE).exists() and not (run_dir / "cases").is_dir():
        _fail(f"{run_dir} is not a run folder")
    typer.echo(str(write_report(run_dir)))


@app.command()
def rescore(
    run_dir: Annotated[Path, typer.Argument(help="A run folder.")],
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

    weights = None
    if selection:
        weights = {}
        for item in selection:
            name, sep, value = item.partition("=")
            try:
                weights[name.strip()] = float(value)
            except ValueError:
                sep = ""
            if not sep or not name.strip():
                _fail(f"--selection {item!r} must look like metric=weight")
    try:
        result = rescore_run(run_dir, metrics or [], selection=weights, reselect=reselect)
    except RescoreError as exc:
        _fail(str(exc), exc)
    if as_json:
        typer.echo(json.dumps(result.summary(), indent=2))
        return
    out = _console()
    out.print(_summary_table(result))
    out.print(f"rescored: {', '.join(result.info.rescored[-1]['metrics']) or '(reselect only)'}"
              f" · report: {result.run_dir / 'report' / 'index.html'}")


@app.command()
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
        _fail(f"{run_dir} is not a run folder (no {SPEC_FILE})")
    rows = track_run(run_dir, [yaml.safe_load(t) for t in trackers])
    _print_rows(rows, as_json=False, title="trackers", columns=["tracker", "status", "where", "error"],
                failed=any(row["status"] == "failed" for row in rows))


@app.command("export-preferences")
def export_preferences_command(
    run_dir: Annotated[Path, typer.Argument(help="A run folder.")],
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
) -> None:
    """Write (preferred, rejected) render pairs of a run as a dataset for preference training
    (Diffusion-DPO / Pick-a-Pic columns caption, jpg_0, jpg_1, label_0); prints data.jsonl."""
    from repainter.export import ExportError, export_preferences

    try:
        data = export_preferences(run_dir, out_dir, min_margin=min_margin, pairs=pairs,
                                  metric=metric, group=group, caption=caption, force=force)
    except ExportError as exc:
        _fail(str(exc), exc)
    rows = sum(1 for line in data.read_text(encoding="utf-8").splitlines() if line.strip())
    console.print(f"{rows} preference pair(s)")
    typer.echo(str(data))


@app.command("dar")
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

    overrides = list(sets or [])
    flags = {"dialogues.manifest": str(manifest) if manifest else None, "dialogues.limit": limit,
             "alpha": alpha, "images_per_turn": images_per_turn, "t2i": t2i,
             "text_scorer": text_scorer, "embedding": embedding, "output_dir": output_dir}
    overrides += [f"{key}={value}" for key, value in flags.items() if value is not None]
    try:
        checked = load_dar_spec(spec, overrides)
        result = run_dar_spec(checked)
    except (DialogueError, SpecError, ValueError) as exc:
        _fail(str(exc), exc)
    summary = result.summary()
    if as_json:
        typer.echo(json.dumps(summary, indent=2, default=str))
        return
    table = Table(title=f"DAR Hits@10 (alpha={checked.alpha}, gallery={summary['gallery_size']}, "
                  f"{summary['cases']} dialogues)", title_justify="left")
    for column in ("turn", "dialogues", "text only", "with images"):
        table.add_column(column)
    for t in summary["turns"]:
        table.add_row(str(t["turn"]), str(t["cases"]), f"{t['text']['hits@10']:.3f}",
                      f"{t['fused']['hits@10']:.3f}")
    out = _console()
    out.print(table)
    for failure in result.failures:
        out.print(f"[yellow]failed[/yellow] {escape(str(failure.case))} (turn {failure.turn}): "
                  f"{escape(str(failure.error))}")
    out.print(f"run folder: {checked.run_dir}  (report: {checked.run_dir / 'report' / 'dar.html'})")


@app.command("meta-eval")
def meta_eval_command(
    # None, not the default folder: a --config file's output_dir must win over an unset flag
    output_dir: Annotated[str | None, typer.Option("--output-dir", "-o", help="Folder for the "
                                                   "ladder and baseline runs [default: the "
                                                   "config's, else runs/meta-eval].")] = None,
    validity: Annotated[str | None, typer.Option(
        "--validity", help="Where to write VALIDITY.md (validity.json next to it); default: in "
        "the output folder.")] = None,
    run_dir: Annotated[Path | None, typer.Option(
        "--run", help="A run folder: add validity.json to it and rebuild its HTML report.")] = None,
    scenes: Annotated[int | None, typer.Option(help="References per ladder run.")] = None,
    seeds: Annotated[str | None, typer.Option(help="Seeds, e.g. 0,1,2.")] = None,
    rounds: Annotated[int | None, typer.Option(help="Rounds per case.")] = None,
    variants: Annotated[int | None, typer.Option(help="Variants per round.")] = None,
    parts: Annotated[str | None, typer.Option(
        help="Comma-separated subset of ladders,degradations,baselines.")] = None,
    quick: Annotated[bool, typer.Option(
        "--quick", help="Smoke-check sizes (8 scenes, 2 x 2 loop; too small to judge the "
        "acceptance); --scenes / --rounds / --variants still win.")] = False,
    config: Annotated[Path | None, typer.Option(
        "--config", "-c", help="YAML with MetaEvalConfig fields (ladders as data, metrics, "
        "degradation metrics with their weights, ...).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print validity.json.")] = False,
) -> None:
    """Measure how far the metrics and the loop can be trusted: ranking validity on ladders,
    controlled degradations, the loop vs best-of-N / one-shot / oracle, seed sensitivity.
    Writes VALIDITY.md and validity.json."""
    import shlex

    import yaml
    from pydantic import ValidationError

    from repainter.meta_eval import MetaEvalConfig, meta_eval
    from repainter.meta_eval.config import QUICK

    options: dict[str, Any] = dict(QUICK) if quick else {}
    if config is not None:
        try:
            options.update(yaml.safe_load(config.read_text(encoding="utf-8")) or {})
        except (OSError, yaml.YAMLError) as exc:
            _fail(f"cannot read {config}: {exc}", exc)
    flags = {"output_dir": output_dir, "validity_path": validity,
             "run_dir": str(run_dir) if run_dir else None, "scenes": scenes, "rounds": rounds,
             "variants": variants}
    options.update({k: v for k, v in flags.items() if v is not None})
    try:
        if seeds is not None:
            options["seeds"] = [int(s) for s in seeds.split(",") if s.strip()]
        if parts is not None:
            options["parts"] = [p.strip() for p in parts.split(",") if p.strip()]
        options["command"] = "repainter " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        checked = MetaEvalConfig.model_validate(options)
    except (ValueError, ValidationError) as exc:
        _fail(str(exc), exc)
    if run_dir is not None and not (run_dir / "spec.yaml").exists():
        _fail(f"{run_dir} is not a run folder")
    data = meta_eval(checked)
    if as_json:
        typer.echo(json.dumps(data, indent=2, default=str))
        return
    path = Path(checked.validity_path or Path(checked.output_dir) / "VALIDITY.md")
    typer.echo(f"{path} ({data['bench']} bench, {data['seconds']} s)")


@app.command("ls")
def list_components(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List the registered T2I backends, MLLM backends, metrics, datasets and presets."""
    from repainter.presets import DESCRIPTIONS, PRESETS
    from repainter.registry import DATASETS, METRICS, MLLM, T2I

    sections = {r.kind: r.describe() for r in (T2I, MLLM, METRICS, DATASETS)}
    sections["presets"] = [(name, DESCRIPTIONS.get(name, "")) for name in sorted(PRESETS)]
    if as_json:
        typer.echo(json.dumps({k: [n for n, _ in v] for k, v in sections.items()}, indent=2))
        return
    out = _console()
    for kind, rows in sections.items():
        table = Table(title=kind, show_header=False, title_justify="left")
        table.add_column("name", style="bold")
        table.add_column("summary")
        for name, summary in rows:
            table.add_row(escape(name), escape(summary))  # "[bench]" is text, not markup
        out.print(table)


def main() -> None:  # pragma: no cover - console script entry
    app()


if __name__ == "__main__":  # pragma: no cover
    app()
