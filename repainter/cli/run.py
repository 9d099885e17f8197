"""``repainter run``, ``compare`` and ``validate``: a spec from the command line, checked, then
run with progress and summed up (or, with ``--dry-run``, only described)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from repainter.cli.common import (
    QuietOption,
    SetOption,
    SpecOption,
    VerboseOption,
    console,
    fail,
    make_console,
    print_settings,
    rows_table,
    spec_from_options,
)
from repainter.errors import USER_ERROR_EXIT
from repainter.failures import SOME_FAILED_EXIT, RunFailedError
from repainter.spec_checks import spec_warnings

JsonOption = Annotated[bool, typer.Option("--json", help="Print a machine-readable summary.")]
OutputOption = Annotated[str | None, typer.Option("--output-dir", "-o", help="Run folder.")]
LimitOption = Annotated[int | None, typer.Option(help="Use only the first N references.")]


def run(
    spec: SpecOption = None,
    sets: SetOption = None,
    output_dir: OutputOption = None,
    limit: LimitOption = None,
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
        help="Loop strategy: refine (default), adaptive, best_of_n or one_shot.")] = None,
    seeds: Annotated[str | None, typer.Option(
        help="Run once per seed, e.g. 0,1,2: sub-runs RUN/seed-<s> and a seed-aggregated "
        "leaderboard in RUN.")] = None,
    as_json: JsonOption = False,
    quiet: QuietOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Run the regeneration loop (no --spec: the built-in offline world)."""
    seed_list = None
    if seeds is not None:
        try:
            seed_list = json.dumps([int(s) for s in seeds.split(",") if s.strip()])
        except ValueError as exc:
            fail(f"--seeds {seeds!r} must be integers separated by commas", exc)
    values = {"output_dir": output_dir, "dataset.limit": limit, "loop.rounds": rounds,
              "loop.variants": variants, "loop.strategy": strategy, "seeds": seed_list}
    checked = spec_from_options(spec, sets, values, device=device, dtype=dtype,
                                batch_size=batch_size, seed=seed, model_args=model_args)
    if dry_run:
        _dry_run(checked, as_json=as_json)
        return
    execute(checked, as_json=as_json, quiet=quiet, verbose=verbose)


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
    output_dir: OutputOption = None,
    limit: LimitOption = None,
    mllms: Annotated[
        list[str] | None,
        typer.Option("--mllm", help="An MLLM (name or YAML mapping, like --t2i). Repeat: the "
                     "run becomes an MLLM x T2I grid that also ranks the MLLMs."),
    ] = None,
    as_json: JsonOption = False,
    quiet: QuietOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Compare several T2I models (or, with --mllm twice or more, several MLLMs) on the same
    references, seeds and loop budget; or, given RUN folders, build one leaderboard and report
    from finished runs (nothing runs again)."""
    if runs:
        if models:
            fail("give either run folders or --t2i models, not both")
        _compare_finished(runs, output_dir, as_json=as_json)
        return
    parsed = _parse_components("--t2i", models or [])
    parsed_mllms = _parse_components("--mllm", mllms or [])
    if len(parsed) < 2 and len(parsed_mllms) < 2:
        fail("compare needs at least two --t2i models or two --mllm")
    sets = [*(sets or []), f"t2i={json.dumps(parsed)}"]
    if parsed_mllms:
        sets.append(f"mllm={json.dumps(parsed_mllms)}")
    checked = spec_from_options(spec, sets, {"output_dir": output_dir, "dataset.limit": limit})
    early = checked.loop.early_stop
    if early.patience or early.target is not None:
        fail("compare gives every model the same rounds; "
             "turn off loop.early_stop (patience 0, target null)")
    execute(checked, as_json=as_json, quiet=quiet, verbose=verbose)


def validate(
    spec: Annotated[Path, typer.Argument(help="Run spec to check.")],
    sets: SetOption = None,
) -> None:
    """Check a spec: schema, registered names, params that fit, dataset paths (no weights: see
    `repainter doctor`)."""
    from repainter.preflight import PreflightError, spec_problems

    checked = spec_from_options(spec, sets)
    problems = spec_problems(checked)
    if problems:
        raise PreflightError(problems)
    typer.echo(f"ok: {spec} (fingerprint {checked.fingerprint()})")
    print_settings(make_console(), checked.settings_origin(), spec_warnings(checked))


def _dry_run(checked, *, as_json: bool) -> None:
    """The resolved spec and what a run would load; nothing is loaded or written."""
    from repainter.preflight import describe

    plan = describe(checked)
    settings, warnings = checked.settings_origin(), spec_warnings(checked)
    if as_json:
        typer.echo(json.dumps({"spec": checked.model_dump(mode="json"), "settings": settings,
                               "warnings": warnings, **plan}, indent=2, default=str))
    else:
        out = make_console()
        out.print(checked.to_yaml(), markup=False, highlight=False)
        out.print(rows_table("what this run would load", plan["needs"],
                             ["role", "label", "kind", "model", "present"]))
        out.print(f"run folder: {plan['run_dir']} · fingerprint {plan['fingerprint']}")
        print_settings(out, settings, warnings)
        for problem in plan["problems"]:
            out.print(f"[yellow]problem[/yellow] {escape(problem)}", markup=True, highlight=False)
    if plan["problems"]:
        raise typer.Exit(USER_ERROR_EXIT)


def execute(checked, *, as_json: bool, quiet: bool, verbose: bool = False) -> None:
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
                result = run_spec(checked, on_event=ProgressPrinter(progress))
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
    out = make_console()
    out.print(summary_table(result))
    _print_pacing(out, result)
    _print_failures(out, result)
    out.print(f"run folder: {result.run_dir} · log: {result.run_dir / 'logs' / 'run.log'}")


def _print_pacing(out: Console, result) -> None:
    """Per model: how busy its device was, what bound it, and the hint (run.json's pacing)."""
    from repainter.executors.pacing import stage_line

    for model, report in (result.info.pacing or {}).items():
        out.print(stage_line(model, report), markup=False, highlight=False)
        if report.get("hint"):
            out.print(f"  [yellow]hint[/yellow] {escape(report['hint'])}", markup=True,
                      highlight=False)


def _print_failures(out: Console, result) -> None:
    """Failed cases grouped by kind (run.json `failures`): count, an example and the first cases
    of each."""
    groups = result.info.failures or []
    if groups:
        out.print(f"[yellow]{len(result.failed)} of {result.info.cases.total} cases failed[/yellow]"
                  " (run.json `failures`; the next run of the same command tries them again):")
    for group in groups:
        cases = ", ".join(group.cases) + (" ..." if group.count > len(group.cases) else "")
        out.print(f"  {group.count} x {escape(group.kind)}: {escape(group.example)} [{escape(cases)}]",
                  highlight=False)


def summary_table(result) -> Table:
    """:meth:`repainter.result.RunResult.summary_table` as a rich table."""
    columns, rows = result.summary_table()
    table = Table(title=f"repainter · {result.run_dir}")
    widest = max((len(row.model) for row in result.leaderboard), default=5)
    for column in columns:
        if column == "model":
            table.add_column(column, min_width=widest, no_wrap=True)
        else:
            table.add_column(column, justify="right")
    for row in rows:  # rank, model, done and failed as they are; then the scores
        table.add_row(*(str(cell) for cell in row[:4]),
                      *("-" if cell is None else f"{cell:.3f}" for cell in row[4:]))
    return table


class ProgressPrinter:
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


def _compare_finished(runs: list[Path], output_dir: str | None, *, as_json: bool) -> None:
    from repainter.merge_runs import merge_runs

    result = merge_runs(runs, output_dir)
    if as_json:
        typer.echo(json.dumps(result.summary(), indent=2))
        return
    out = make_console()
    out.print(summary_table(result))
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
