"""The leaderboard file (``leaderboard.json``): one typed row per model, paired tests, categories.

Every metric's statistics sit in their own object under ``metrics`` (and the selection score's
under ``selection``), so no metric label can overwrite a built-in column: a metric labelled
``done`` or ``steerability`` is ``row.metrics["done"]``, apart from ``row.done``. Paired tests are
grouped per metric into a :class:`ComparisonFamily` that names its multiple-comparison correction.
An MLLM x T2I grid adds a :class:`GridSection`, an adaptive run an :class:`AdaptiveSummary`.

Version 0 (before ``schema_version``) held flat rows with suffixed keys (``selection_round1``,
``<metric>_ci_low``, ``<metric>_seed_sd`` ...); :func:`_leaderboard_v0` migrates it, and
:meth:`LeaderboardRow.flat` gives that flat view back for the CSV file and trackers.

>>> row = LeaderboardRow(rank=1, model="m", cases=2, done=2, failed=0,
...                      selection=SelectionSummary(mean=0.9, round1=0.7, steerability=0.2),
...                      metrics={"done": MetricSummary(mean=0.5)})
>>> row.done, row.metrics["done"].mean, row.flat()["metric:done"]
(2, 0.5, 0.5)
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
)

from repainter.records.base import VersionedRecord, finite_or_none, migration

#: A statistic: a finite number, or None where it could not be computed (the missing-value
#: policy of :mod:`repainter.records.base`; a NaN statistic becomes None).
Stat = Annotated[float | None, BeforeValidator(finite_or_none)]


class _Part(BaseModel):
    """A part of a record (not a file of its own): unknown keys are refused, and a value set
    after construction (seed spreads, usage) is validated too, so a NaN statistic becomes None."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class MetricSummary(_Part):
    """One metric of one model: mean over finished cases of the final best-ever candidate's score."""

    mean: Stat = None
    #: 95% percentile-bootstrap interval of the mean (None with fewer than two values).
    ci_low: Stat = None
    ci_high: Stat = None
    #: Mean score of round 1's best candidate (None for judge scores, which rate the final best).
    round1: Stat = None
    #: An MLLM-judge score (1-5 scale, no round-1 value) rather than an image metric.
    judge: bool = False
    #: Seed-aggregated runs: the SD of the per-seed means, and its ratio to the mean
    #: single-seed bootstrap standard error.
    seed_sd: Stat = None
    seed_sd_over_se: Stat = None


class SelectionSummary(MetricSummary):
    """The selection score: ``mean`` is the final best-ever's, ``round1`` round 1's best."""

    #: Mean per-case gain of the selection score from round 1's best to the final best.
    steerability: Stat = None


class DecisionSummary(_Part):
    """Retrieve-or-generate: how often each side was chosen, and how often rightly."""

    cases: int
    retrieved_share: Stat = None
    #: Share of correct choices among the cases with ground truth (None without any).
    accuracy: Stat = None
    judged_cases: int = 0


#: What a model's steerability (final - round 1 of the selection score) includes: a refine
#: loop's final best is picked from rounds x variants renders, round 1's from one round's.
STEERABILITY_INCLUDES = "more samples + revision"


class GainDecomposition(_Part):
    """Where a model's final selection score comes from, where a best_of_n twin ran beside it
    (``loop.baseline``): round 1's best, the twin's final best at the same render budget (the
    gain of more samples) and the revision's own gain, final - twin final, paired per case."""

    #: The twin's label (``<model>~best_of_n``).
    baseline: str
    round1: Stat = None
    best_of_n_same_budget: Stat = None
    #: Mean per-case (final - twin final) on the cases both finished, its 95% bootstrap
    #: interval and two-sided sign-flip p-value; ``p_adjusted`` across the run's twins.
    revision_gain: Stat = None
    n: int = 0
    ci_low: Stat = None
    ci_high: Stat = None
    p_value: Stat = None
    p_adjusted: Stat = None
    correction: str = "none"
    significant: bool = False
    #: best_of_n_same_budget - round1: the sampling part of steerability.
    sampling_gain: Stat = None
    steerability_includes: str = STEERABILITY_INCLUDES


#: Fixed columns of the flat (version 0 / CSV) row, in the order they were written.
FLAT_TIMINGS = ("mean_rounds", "seconds_per_case", "t2i_seconds_per_case", "mllm_seconds_per_case")


class LeaderboardRow(_Part):
    """One T2I model (or grid cell) of a run."""

    rank: int = 0
    model: str
    #: The loop strategy (refine, best_of_n, one_shot) where the records name one.
    strategy: str | None = None
    cases: int = 0
    done: int = 0
    failed: int = 0
    selection: SelectionSummary = Field(default_factory=SelectionSummary)
    #: Every other metric and judge score, by label.
    metrics: dict[str, MetricSummary] = {}
    mean_rounds: Stat = None
    seconds_per_case: Stat = None
    t2i_seconds_per_case: Stat = None
    mllm_seconds_per_case: Stat = None
    #: Where the MLLM reported token use: tokens per case and the run's cost.
    mllm_tokens_per_case: Stat = None
    mllm_cost_usd: Stat = None
    #: Where renders were flagged (safety-blanked, NaN decodes: never scored).
    flagged_share: Stat = None
    cases_all_flagged: int | None = None
    decision: DecisionSummary | None = None
    #: Seed-aggregated runs: how many seeds the row averages.
    seeds: int | None = None
    #: MLLM x T2I grid cells: the cell's T2I model and MLLM.
    t2i: str | None = None
    mllm: str | None = None
    #: Where a best_of_n twin ran beside this model (``loop.baseline``): the gain's parts.
    decomposition: GainDecomposition | None = None

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        if data.get("decomposition", 0) is None:  # runs without a baseline: as before
            del data["decomposition"]
        return data

    def metric(self, name: str) -> MetricSummary | None:
        """The summary of ``name``; ``"selection"`` is the selection score."""
        return self.selection if name == "selection" else self.metrics.get(name)

    def flat(self) -> dict[str, Any]:
        """The version-0 flat row (``selection_final``, ``<metric>_ci_low`` ...) for CSV files
        and trackers; a metric whose label is a built-in column is keyed ``metric:<label>``."""
        return _flatten(self)


class ComparisonTest(_Part):
    """A paired sign-flip permutation test of two models on the cases both finished."""

    model_a: str
    model_b: str
    n: int
    #: Mean of (a - b); None where the two share no scored case.
    mean_difference: Stat = None
    ci_low: Stat = None
    ci_high: Stat = None
    p_value: float
    #: After the family's multiple-comparison correction.
    p_adjusted: float
    significant: bool


class ComparisonFamily(_Part):
    """Every pair of models on one metric, with the correction applied across the family."""

    metric: str
    #: holm, bh or none ("none" for a single pair).
    correction: str = "none"
    tests: list[ComparisonTest] = []

    def flat(self) -> list[dict[str, Any]]:
        """The tests as flat dicts that name the metric and correction (the version-0 shape)."""
        return [{"model_a": t.model_a, "model_b": t.model_b, "metric": self.metric,
                 **t.model_dump(exclude={"model_a", "model_b", "significant"}),
                 "correction": self.correction, "significant": t.significant}
                for t in self.tests]


class CategoryRow(_Part):
    """Mean final selection score of one model on one category, with its bootstrap interval."""

    model: str
    category: str
    done: int
    selection_final: Stat = None
    ci_low: Stat = None
    ci_high: Stat = None


class GridRanking(_Part):
    """The cells that share one T2I model (or one MLLM), ranked, with their paired tests."""

    ranking: list[LeaderboardRow]
    comparisons: ComparisonFamily


class GridSection(_Part):
    """An MLLM x T2I grid: the MLLMs ranked per T2I model, the T2I models per MLLM, usage."""

    mllm_by_t2i: dict[str, GridRanking]
    t2i_by_mllm: dict[str, GridRanking]
    mllm_usage: dict[str, dict[str, Any]] = {}


class PairDecision(_Part):
    """An adaptive run's sequential decision on one pair of models."""

    model_a: str
    model_b: str
    n: int
    #: "a>b", "b>a" or None (undecided).
    decision: str | None = None
    decided_after: int | None = None
    wealth: float


class AdaptiveSummary(_Part):
    """An adaptive budget's outcome: references used and saved, every pair's decision."""

    method: str
    alpha: float
    metric: str
    order_seed: int | None = None
    references_available: int
    references_limit: int
    references_used: int
    stopped_early: bool
    all_pairs_decided: bool
    references_saved: int
    saved_fraction: float
    pairs: list[PairDecision] = []
    #: The references in the order they were spent (run.json only).
    order: list[str] | None = None


class Leaderboard(VersionedRecord):
    """``leaderboard.json``."""

    kind: ClassVar[str] = "leaderboard"
    current_version: ClassVar[int] = 1

    models: list[LeaderboardRow] = []
    #: Paired tests per metric ("selection" first); each family names its correction.
    comparisons: dict[str, ComparisonFamily] = {}
    #: The correction the run asked for where more than two models are compared, else "none".
    correction: str = "none"
    categories: list[CategoryRow] = []
    grid: GridSection | None = None
    adaptive: AdaptiveSummary | None = None


# -- the flat view (version 0, CSV, trackers) -----------------------------------------------


def _flatten(row: LeaderboardRow) -> dict[str, Any]:
    sel = row.selection
    flat: dict[str, Any] = {"model": row.model}
    if row.strategy:
        flat["strategy"] = row.strategy
    flat.update(cases=row.cases, done=row.done, failed=row.failed,
                selection_round1=sel.round1, selection_final=sel.mean,
                steerability=sel.steerability)
    flat.update({key: getattr(row, key) for key in FLAT_TIMINGS})
    if row.mllm_tokens_per_case is not None:
        flat.update(mllm_tokens_per_case=row.mllm_tokens_per_case, mllm_cost_usd=row.mllm_cost_usd)
    if row.flagged_share is not None:
        flat.update(flagged_share=row.flagged_share, cases_all_flagged=row.cases_all_flagged)
    if row.decision is not None:
        flat.update(decision_cases=row.decision.cases,
                    decision_retrieved_share=row.decision.retrieved_share,
                    decision_accuracy=row.decision.accuracy,
                    decision_judged_cases=row.decision.judged_cases)
    flat.update(selection_final_ci_low=sel.ci_low, selection_final_ci_high=sel.ci_high)
    keys = {name: (f"metric:{name}" if name in flat or name == "rank" else name)
            for name in row.metrics}
    for name, summary in row.metrics.items():
        key = keys[name]
        flat.update({key: summary.mean, f"{key}_ci_low": summary.ci_low,
                     f"{key}_ci_high": summary.ci_high})
        if not summary.judge:
            flat[f"{key}_round1"] = summary.round1
    flat["rank"] = row.rank
    if row.seeds is not None:
        for key, summary in [("selection_final", sel), *((keys[n], s) for n, s in row.metrics.items())]:
            flat[f"{key}_seed_sd"] = summary.seed_sd
            flat[f"{key}_seed_sd_over_se"] = summary.seed_sd_over_se
        flat["seeds"] = row.seeds
    if row.t2i is not None:
        flat.update(t2i=row.t2i, mllm=row.mllm)
    if row.decomposition is not None:
        flat.update(decomposition_columns(row.decomposition))
    return flat


def decomposition_columns(parts: GainDecomposition) -> dict[str, Any]:
    """The flat columns of a gain decomposition (CSV, trackers, ``to_pandas``)."""
    return {"best_of_n_same_budget": parts.best_of_n_same_budget,
            "sampling_gain": parts.sampling_gain, "revision_gain": parts.revision_gain,
            "revision_gain_ci_low": parts.ci_low, "revision_gain_ci_high": parts.ci_high,
            "revision_gain_p_value": parts.p_value, "revision_gain_p_adjusted": parts.p_adjusted,
            "revision_gain_n": parts.n, "baseline_model": parts.baseline}


# -- migration from version 0 ---------------------------------------------------------------

_V0_FIXED = {"rank", "model", "strategy", "cases", "done", "failed", "selection_round1",
             "selection_final", "steerability", *FLAT_TIMINGS, "mllm_tokens_per_case",
             "mllm_cost_usd", "flagged_share", "cases_all_flagged", "seeds", "t2i", "mllm"}


def _summary_v0(flat: dict[str, Any], key: str, name: str) -> dict[str, Any]:
    summary = {"mean": flat.get(key), "ci_low": flat.get(f"{key}_ci_low"),
               "ci_high": flat.get(f"{key}_ci_high"), "round1": flat.get(f"{name}_round1"),
               "judge": name.startswith("judge_"), "seed_sd": flat.get(f"{key}_seed_sd"),
               "seed_sd_over_se": flat.get(f"{key}_seed_sd_over_se")}
    if name == "selection":
        summary["steerability"] = flat.get("steerability")
    return summary


def row_from_flat(flat: dict[str, Any]) -> dict[str, Any]:
    """A version-0 flat leaderboard row as the data of a :class:`LeaderboardRow`.

    Metrics are the keys with a ``_ci_low`` beside them (every metric had one, ``None`` or not).
    """
    names = sorted(k[: -len("_ci_low")] for k in flat
                   if k.endswith("_ci_low") and k != "selection_final_ci_low")
    row = {k: v for k, v in flat.items() if k in _V0_FIXED - {"selection_round1",
                                                              "selection_final", "steerability"}}
    row["selection"] = _summary_v0(flat, "selection_final", "selection")
    row["metrics"] = {name: _summary_v0(flat, name, name) for name in names}
    if "decision_cases" in flat:
        row["decision"] = {"cases": flat["decision_cases"],
                           "retrieved_share": flat.get("decision_retrieved_share"),
                           "accuracy": flat.get("decision_accuracy"),
                           "judged_cases": flat.get("decision_judged_cases", 0)}
    return row


def _family_v0(metric: str, tests: list[dict[str, Any]]) -> dict[str, Any]:
    correction = tests[0].get("correction", "none") if tests else "none"
    fields = set(ComparisonTest.model_fields)
    return {"metric": metric, "correction": correction,
            "tests": [{k: v for k, v in t.items() if k in fields} for t in tests]}


def _ranking_v0(ranking: dict[str, Any], metric: str = "selection") -> dict[str, Any]:
    return {"ranking": [row_from_flat(r) for r in ranking.get("ranking") or []],
            "comparisons": _family_v0(metric, ranking.get("comparisons") or [])}


@migration("leaderboard", 0)
def _leaderboard_v0(data: dict[str, Any]) -> dict[str, Any]:
    """Flat rows -> nested rows; ``comparisons`` + ``metric_comparisons`` -> one family per
    metric; a grid's ``mllm_by_t2i`` / ``t2i_by_mllm`` / ``mllm_usage`` -> ``grid``."""
    families = dict(data.get("metric_comparisons") or {})
    if "selection" not in families and data.get("comparisons"):
        families = {"selection": data["comparisons"], **families}
    out: dict[str, Any] = {
        "models": [row_from_flat(r) for r in data.get("models") or []],
        "comparisons": {m: _family_v0(m, tests) for m, tests in families.items()},
        "correction": data.get("correction", "none"),
        "categories": data.get("categories") or [],
    }
    if "mllm_by_t2i" in data:
        out["grid"] = {"mllm_by_t2i": {k: _ranking_v0(v) for k, v in data["mllm_by_t2i"].items()},
                       "t2i_by_mllm": {k: _ranking_v0(v) for k, v in data["t2i_by_mllm"].items()},
                       "mllm_usage": data.get("mllm_usage") or {}}
    if data.get("adaptive"):
        out["adaptive"] = data["adaptive"]
    return out


__all__ = ["STEERABILITY_INCLUDES", "AdaptiveSummary", "CategoryRow", "ComparisonFamily",
           "ComparisonTest", "DecisionSummary", "GainDecomposition", "GridRanking", "GridSection",
           "Leaderboard", "LeaderboardRow", "MetricSummary", "PairDecision", "SelectionSummary",
           "Stat", "decomposition_columns", "row_from_flat"]
