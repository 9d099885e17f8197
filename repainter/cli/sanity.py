"""``repainter sanity``: the metric sanity ladders of a spec's own models (issue 29)."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from repainter.cli.common import make_console, spec_from_options
from repainter.errors import UserError


def _csv(text: str | None) -> list[str] | None:
    return None if text is None else [p.strip() for p in text.split(",") if p.strip()]


def sanity(
    spec: Annotated[Path | None, typer.Option(
        "--spec", "-s", help="Run spec YAML (default: the built-in simulation bench).")] = None,
    run_dir: Annotated[Path | None, typer.Option(
        "--run", help="A run folder: its spec.yaml, and its finished cases' best renders as the "
        "corruption ladder's source; sanity.json goes into it.")] = None,
    sets: Annotated[list[str] | None, typer.Option(
        "--set", help="Override a spec key, e.g. dataset.params.path=refs (repeat).")] = None,
    references: Annotated[int | None, typer.Option(
        help="References sampled (the dataset's first ones) [default: 20].")] = None,
    rungs: Annotated[int | None, typer.Option(help="Rungs per ladder [default: 5].")] = None,
    renders: Annotated[int | None, typer.Option(
        help="Renders per prompt rung, one seed each [default: 1].")] = None,
    ladders: Annotated[str | None, typer.Option(
        help="Comma-separated subset of prompt,corruption,sampler.")] = None,
    corruptions: Annotated[str | None, typer.Option(
        help="Comma-separated subset of noise_blend,other_blend,blur,patch_shuffle,mask.")] = None,
    sampler_steps: Annotated[str | None, typer.Option(
        "--sampler-steps", help="Inference steps of the sampler ladder, most first, e.g. "
        "50,20,8,2 [default: the pipeline's default down to 1].")] = None,
    judge: Annotated[bool | None, typer.Option(
        "--judge/--no-judge", help="Ask the MLLM judge on every rung [default: the spec's "
        "judge].")] = None,
    judge_corruptions: Annotated[str | None, typer.Option(
        "--judge-corruptions", help="Corruption kinds the judge rates too, comma-separated "
        "(each judged rung is an MLLM call) [default: mask].")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the drops, corruptions and renders.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print sanity.json.")] = False,
) -> None:
    """Check that the spec's own metrics order ladders whose order is known by construction
    (poorer prompts, corrupted renders, fewer sampler steps) on its own T2I models; writes
    sanity.json and SANITY.md into the run folder (read by the leaderboard and the report)."""
    from repainter.report.html import write_report
    from repainter.report.sanity import selection_sentences
    from repainter.sanity import run_sanity

    if spec is not None and run_dir is not None:
        raise UserError("give --spec or --run, not both (--run uses the folder's spec.yaml)")
    if run_dir is not None and not (run_dir / "spec.yaml").is_file():
        raise UserError(f"{run_dir} is not a run folder (no spec.yaml)")
    checked = spec_from_options(run_dir / "spec.yaml" if run_dir else spec, sets)
    config = sanity_config({
        "references": references, "rungs": rungs, "renders": renders, "ladders": _csv(ladders),
        "corruptions": _csv(corruptions), "judge": judge, "seed": seed,
        "judge_corruptions": _csv(judge_corruptions),
        "sampler_steps": [int(s) for s in _csv(sampler_steps)] if sampler_steps else None})
    command = "repainter " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    data = run_sanity(checked, config, run_dir=run_dir, command=command)
    root = run_dir or checked.run_dir
    if (root / "report" / "index.html").exists():  # a finished run: its report gains the section
        write_report(root)
    if as_json:
        typer.echo(json.dumps(data, indent=2, default=str))
        return
    out = make_console()
    for line in selection_sentences(data):
        out.print(f"- {line}", highlight=False, soft_wrap=True)
    out.print(f"{root / 'SANITY.md'} ({data['seconds']} s)", highlight=False)


def sanity_config(values: dict[str, Any]):
    """The checked :class:`~repainter.sanity.SanityConfig` of the flags that were given."""
    from pydantic import ValidationError

    from repainter.sanity import SanityConfig

    try:
        return SanityConfig.model_validate({k: v for k, v in values.items() if v is not None})
    except ValidationError as exc:
        raise UserError(f"sanity settings: {exc.errors()[0]['loc']}: "
                        f"{exc.errors()[0]['msg']}") from exc
