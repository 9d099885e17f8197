"""Several seeds of one spec: one sub-run per seed, then seed-aggregated means and intervals.

``seeds: [0, 1, 2]`` in a spec (or ``repainter run --seeds 0,1,2``) runs the spec once per seed
into ``RUN/seed-<s>/`` (each a complete run folder that resumes on its own), then writes into
``RUN/``:

- ``leaderboard.{json,md,csv,tex}`` over the cases' scores averaged across seeds: each metric's
  mean with a 95% bootstrap interval over cases, paired tests for every metric (with the
  multiple-comparison correction named), and next to each interval the **seed spread**: the
  standard deviation of the per-seed means (``seed_sd`` of each metric's summary) and its ratio
  to the mean single-seed bootstrap standard error (``seed_sd_over_se``). A ratio above 1 says a
  single-seed interval would not cover seed-to-seed variation;
- ``seeds.json``: every seed's own leaderboard rows.

Example:
    >>> from repainter.spec import build_spec
    >>> spec = build_spec({"seeds": [0, 1], "output_dir": "runs/x"})
    >>> [s.seed for s in seed_specs(spec)], str(seed_specs(spec)[1].run_dir)
    ([0, 1], 'runs/x/seed-1')
"""

from __future__ import annotations

from collections.abc import Callable
from statistics import fmean, stdev
from typing import Any

from repainter.images import atomic_write_bytes
from repainter.records import CandidateRecord, CaseRecord
from repainter.records.leaderboard import LeaderboardRow
from repainter.records.run_info import CaseCounts, RunInfo
from repainter.report.leaderboard import build_leaderboard, compared_metrics, write_leaderboard
from repainter.result import RunResult
from repainter.spec import RunSpec, build_spec, load_run_spec
from repainter.store import SPEC_FILE, RunFolderError, RunStore, write_json

#: Per-case cost columns: for a seed-aggregated row, the mean of the seeds' own values.
COST_COLUMNS = ("mean_rounds", "seconds_per_case", "t2i_seconds_per_case", "mllm_seconds_per_case",
                "mllm_tokens_per_case")

#: z for a 95% normal interval: converts a bootstrap interval's width into a standard error.
Z95 = 1.959964


def seed_specs(spec: RunSpec) -> list[RunSpec]:
    """One single-seed spec per seed, each writing into ``RUN/seed-<s>``."""
    data = spec.model_dump(mode="json")
    data.pop("seeds", None)
    return [build_spec({**data, "seed": seed, "output_dir": str(spec.run_dir / f"seed-{seed}")})
            for seed in spec.seeds or [spec.seed]]


def run_seeds(spec: RunSpec, on_event: Callable[[dict[str, Any]], None] | None = None, *,
              run: Callable[..., RunResult]) -> RunResult:
    """Run ``spec`` once per seed of ``spec.seeds`` and aggregate (see the module docstring).

    ``run`` runs one seed's spec (:func:`repainter.runner.run`, which calls this: passed in so
    that this module does not import the runner back).
    """
    existing = spec.run_dir / SPEC_FILE
    if existing.exists() and load_run_spec(existing).fingerprint() != spec.fingerprint():
        # the folder's own spec.yaml (a user's file, or another run's): never overwritten
        raise RunFolderError(f"{spec.run_dir} holds a {SPEC_FILE} of another spec; refusing "
                             "to overwrite it: choose another output folder")
    spec.run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(existing, spec.to_yaml().encode("utf-8"))
    results = [run(sub, on_event=on_event) for sub in seed_specs(spec)]
    return aggregate_seeds(spec, results)


def average_over_seeds(per_seed: list[list[CaseRecord]]) -> list[CaseRecord]:
    """One record per (model, case) whose final scores are the mean over the seeds it finished."""
    grouped: dict[tuple[str, str], list[CaseRecord]] = {}
    for records in per_seed:
        for record in records:
            grouped.setdefault((record.model, record.case_id), []).append(record)
    averaged = []
    for (model, case_id), mine in grouped.items():
        done = [r for r in mine if r.done]
        fields: dict[str, Any] = {
            "model": model, "case_id": case_id, "category": mine[0].category,
            "status": "done" if done else "failed", "seeds_done": len(done),
            **({"strategy": mine[0].strategy} if mine[0].strategy else {})}
        if done:
            names = set.intersection(*(set(r.final_scores) for r in done))
            fields["final_scores"] = {n: _mean([r.final_scores[n] for r in done]) for n in names}
            fields["round1_best"] = CandidateRecord(selection=_mean(
                [r.round1_selection for r in done]))
        averaged.append(CaseRecord(**fields))
    return averaged


def _mean(values: list[float | None]) -> float | None:
    """The mean of the measured values (records hold no NaN: None is "not measured")."""
    measured = [v for v in values if v is not None]
    return fmean(measured) if measured else None


def _row_of(rows: list[LeaderboardRow], model: str) -> LeaderboardRow | None:
    return next((r for r in rows if r.model == model), None)


def seed_spread(per_seed_rows: list[list[LeaderboardRow]], model: str, metric: str) -> dict[str, Any]:
    """Spread of one model's mean ``metric`` over seeds, next to its single-seed bootstrap SE."""
    rows = [_row_of(rows, model) for rows in per_seed_rows]
    summaries = [s for s in (r.metric(metric) for r in rows if r is not None) if s is not None]
    means = [s.mean for s in summaries if s.mean is not None]
    errors = [(s.ci_high - s.ci_low) / (2 * Z95) for s in summaries
              if s.ci_low is not None and s.ci_high is not None]
    sd = stdev(means) if len(means) > 1 else None
    se = fmean(errors) if errors else None
    return {"seed_means": means, "seed_sd": sd, "bootstrap_se": se,
            "seed_sd_over_se": sd / se if sd is not None and se else None}


def aggregate_seeds(spec: RunSpec, results: list[RunResult]) -> RunResult:
    """Seed-aggregated leaderboard (+ seed spread columns) and seeds.json in ``spec.run_dir``."""
    models = [t.display_name for t in spec.t2i]
    averaged = average_over_seeds([r.records for r in results])
    rows = build_leaderboard(averaged, models)
    per_seed_rows = [r.leaderboard for r in results]
    for row in rows:
        for metric in compared_metrics(rows):
            summary = row.metric(metric)
            if summary is None:  # a metric another model has: no summary to spread
                continue
            spread = seed_spread(per_seed_rows, row.model, metric)
            summary.seed_sd = spread["seed_sd"]
            summary.seed_sd_over_se = spread["seed_sd_over_se"]
        row.seeds = len(results)
        mine = [r for r in (_row_of(rows, row.model) for rows in per_seed_rows) if r is not None]
        for column in COST_COLUMNS:
            values = [getattr(r, column) for r in mine if getattr(r, column) is not None]
            if values or getattr(row, column) is not None:
                setattr(row, column, fmean(values) if values else None)
    write_leaderboard(rows, spec.run_dir, averaged)
    write_json(spec.run_dir / "seeds.json", {
        "seeds": [r.spec.seed for r in results],
        "runs": {str(r.spec.seed): str(r.run_dir) for r in results},
        "leaderboards": {str(r.spec.seed): [row.model_dump(mode="json") for row in r.leaderboard]
                         for r in results},
    })

    def total(field: str) -> int:
        return sum(getattr(r.info.cases, field) or 0 for r in results if r.info.cases)

    info = RunInfo(status="finished", seeds=[r.spec.seed for r in results],
                   wall_seconds=round(sum(r.info.wall_seconds or 0.0 for r in results), 3),
                   cases=CaseCounts(done=total("done"), failed=total("failed")))
    RunStore(spec.run_dir).write_run_info(info)
    records = [record.model_copy(update={"seed": r.spec.seed})
               for r in results for record in r.records]
    return RunResult(run_dir=spec.run_dir, spec=spec, records=records, leaderboard=rows, info=info)
