"""The bench's command: ``repainter meta-eval``, added to the CLI through the
``repainter.commands`` entry point (the core CLI does not import the bench).

A mistake the user can fix is raised as :class:`repainter.errors.UserError`; the core CLI's
error net prints it as one ``error:`` line with exit code 2, as for its own commands.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from repainter.errors import UserError


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
    seeds: Annotated[str | None, typer.Option(
        help="Seeds, e.g. 0,1,2, or auto: drawn from a hash of the git commit.")] = None,
    rounds: Annotated[int | None, typer.Option(help="Rounds per case.")] = None,
    variants: Annotated[int | None, typer.Option(help="Variants per round.")] = None,
    parts: Annotated[str | None, typer.Option(
        help="Comma-separated subset of ladders,degradations,baselines,second_renderer.")] = None,
    quick: Annotated[bool, typer.Option(
        "--quick", help="Smoke-check sizes (8 scenes, 2 x 2 loop; too small to judge the "
        "acceptance); --scenes / --rounds / --variants still win.")] = False,
    config: Annotated[Path | None, typer.Option(
        "--config", "-c", help="YAML with MetaEvalConfig fields (ladders as data, metrics, "
        "degradation metrics with their weights, ...).")] = None,
    renderer: Annotated[str | None, typer.Option(
        help="World renderer of the sim models and references: flat or painterly (the second "
        "renderer, nothing was tuned on it).")] = None,
    loop_check: Annotated[Path | None, typer.Option(
        "--loop-check", help="ADAPTIVE_LOOP.json of bench/loop_vs_best_of_n.py: its loop vs "
        "best-of-N tables on every model go into VALIDITY.md.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print validity.json.")] = False,
    spec: Annotated[Path | None, typer.Option(
        "--spec", help="A run spec: run the metric sanity ladders on its own models instead "
        "(the same as repainter sanity --spec; --scenes sets the references).")] = None,
) -> None:
    """Measure how far the metrics and the loop can be trusted: ranking validity on ladders,
    controlled degradations, the loop vs best-of-N / one-shot / oracle, seed sensitivity.
    Writes VALIDITY.md and validity.json."""
    from repainter.bench.meta_eval import meta_eval

    if spec is not None:
        _refuse_bench_flags({"--output-dir": output_dir, "--validity": validity,
                             "--run": run_dir, "--seeds": seeds, "--rounds": rounds,
                             "--variants": variants, "--parts": parts, "--config": config,
                             "--renderer": renderer, "--loop-check": loop_check,
                             "--quick": quick or None})
        _sanity(spec, scenes, as_json)
        return
    flags = {"output_dir": output_dir, "validity_path": validity,
             "run_dir": str(run_dir) if run_dir else None, "scenes": scenes, "rounds": rounds,
             "variants": variants, "renderer": renderer,
             "loop_check": str(loop_check) if loop_check else None}
    checked = _config(flags, seeds=seeds, parts=parts, quick=quick, config=config)
    if run_dir is not None and not (run_dir / "spec.yaml").exists():
        raise UserError(f"{run_dir} is not a run folder")
    data = meta_eval(checked)
    if as_json:
        typer.echo(json.dumps(data, indent=2, default=str))
        return
    path = Path(checked.validity_path or Path(checked.output_dir) / "VALIDITY.md")
    typer.echo(f"{path} ({data['bench']} bench, {data['seconds']} s)")


def _refuse_bench_flags(others: dict[str, Any]) -> None:
    """--spec runs the sanity check, not the bench's meta-evaluation these flags configure."""
    given = [flag for flag, value in others.items() if value is not None]
    if given:
        raise UserError(f"--spec runs the sanity check on the spec's models; it takes "
                        f"--scenes and --json only, not {', '.join(given)} (see "
                        "repainter sanity --help for its settings)")


def _sanity(spec: Path, references: int | None, as_json: bool) -> None:
    """``--spec``: the core's sanity check (repainter.sanity) on the spec's own models."""
    import shlex

    from repainter.sanity import SanityConfig, run_sanity
    from repainter.spec_flags import spec_from_flags

    checked = spec_from_flags(spec)
    config = SanityConfig(**({"references": references} if references else {}))
    command = "repainter " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    data = run_sanity(checked, config, command=command)
    if as_json:
        typer.echo(json.dumps(data, indent=2, default=str))
        return
    typer.echo(f"{checked.run_dir / 'SANITY.md'} ({data['seconds']} s)")


def _config(flags: dict[str, Any], *, seeds: str | None, parts: str | None, quick: bool,
            config: Path | None):
    """The checked :class:`~repainter.bench.meta_eval.MetaEvalConfig`: quick sizes, then the
    ``--config`` file, then the flags that were given."""
    import shlex

    from pydantic import ValidationError

    from repainter.bench.meta_eval import MetaEvalConfig
    from repainter.bench.meta_eval.config import QUICK

    options: dict[str, Any] = dict(QUICK) if quick else {}
    if config is not None:
        options.update(_config_file(config))
    options.update({k: v for k, v in flags.items() if v is not None})
    try:
        if seeds is not None:
            options["seeds"] = ("auto" if seeds.strip() == "auto"  # drawn by rule: check_seeds
                                else [int(s) for s in seeds.split(",") if s.strip()])
        if parts is not None:
            options["parts"] = [p.strip() for p in parts.split(",") if p.strip()]
        options["command"] = "repainter " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        return MetaEvalConfig.model_validate(options)
    except (ValueError, ValidationError) as exc:
        raise UserError(str(exc)) from exc


def _config_file(path: Path) -> dict[str, Any]:
    """The ``--config`` file's mapping, read like a run spec (bounded aliases, no duplicate
    keys); anything else is one error line."""
    import yaml

    from repainter.spec import SpecError, safe_load_bounded

    try:
        data = safe_load_bounded(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError, SpecError) as exc:
        raise UserError(f"cannot read {path}: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{path} must hold a mapping of MetaEvalConfig fields (e.g. "
                        f"'scenes: 8'), not a {type(data).__name__}")
    return data
