"""``repainter meta-eval``: how far a run's metrics, and the loop itself, can be trusted.

Four measurements, each a plain function of run folders made by the ordinary runner:

(a) ranking validity on ladders (``ranking.py``), (b) controlled degradations of real photos
(``degradations.py``), (c) the loop against its baselines at equal render budget (refine vs
best_of_n vs one_shot, and the oracle prompt where ground truth exists), with paired tests
reported whatever their sign, (d) seed sensitivity: the spread of each metric's mean over seeds
next to its single-seed bootstrap standard error. Results go to validity.json and VALIDITY.md.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from statistics import median
from typing import Any

from repainter.bench.meta_eval.config import (
    WEIGHT_FREE,
    MetaEvalConfig,
    check_validity_path,
    with_renderer,
)
from repainter.bench.meta_eval.ladders import Ladder, bench_zoo, default_ladders, labelled
from repainter.bench.meta_eval.loop_check import read_loop_check
from repainter.bench.meta_eval.ranking import best_rendered, ladder_validity
from repainter.bench.meta_eval.renderers import run_second_renderer
from repainter.records import CandidateRecord, CaseRecord, finite_or_none
from repainter.records.leaderboard import LeaderboardRow
from repainter.registry import METRICS
from repainter.spec import ComponentSpec, RunSpec, build_spec

logger = logging.getLogger(__name__)


def _is_truth(component: ComponentSpec) -> bool:
    """A metric that compares with the ground truth (not the reference image)."""
    metric_class = METRICS.get(component.name)
    return bool(getattr(metric_class, "needs_ground_truth", False)
                or getattr(metric_class, "reads_metadata", None) == "drawn_scene")


def resolve(config: MetaEvalConfig) -> tuple[MetaEvalConfig, dict[str, Ladder], str]:
    """Fill the config's open choices from the default run spec (the simulation bench where
    installed, else the built-in world): its MLLM, metrics (with their truth metric) and
    selection weights; the baseline model is the first ladder's best."""
    if config.ladders is not None:
        ladders = {name: Ladder.from_data(name, data) for name, data in config.ladders.items()}
        bench = "ladders given as data"
    else:
        ladders, bench = default_ladders()
    base = RunSpec()
    filled: dict[str, Any] = {}
    if config.mllm is None:
        filled["mllm"] = base.mllm
    metrics = config.metrics if config.metrics is not None else base.metrics
    filled["metrics"] = metrics
    if config.truth is None:
        filled["truth"] = next((m.display_name for m in metrics if _is_truth(m)), None)
    if config.baseline_model is None:
        filled["baseline_model"] = ComponentSpec.model_validate(next(iter(ladders.values())).models[0])
    return config.model_copy(update=filled), ladders, bench


def _dataset(config: MetaEvalConfig) -> dict[str, Any]:
    """The references: the config's dataset (its first ``scenes``), or by default the world's
    scenes with an equal share per category (the mix the bench's true quality is defined on;
    the world's first scenes are all single objects)."""
    if config.dataset is not None:
        return {**config.dataset.model_dump(), "limit": config.scenes}
    zoo = bench_zoo()
    if zoo is None:
        return {"name": "world", "limit": config.scenes}
    path = zoo.stratified_scenes(config.scenes, Path(config.output_dir) / "scenes.jsonl")
    return {"name": "world", "params": {"path": str(path.resolve())}}


def _spec(config: MetaEvalConfig, t2i: list[dict], folder: str) -> RunSpec:
    data: dict[str, Any] = {
        "name": "meta-eval", "output_dir": folder, "t2i": t2i, "seeds": config.seeds,
        "mllm": config.mllm.model_dump(), "metrics": [m.model_dump() for m in config.metrics],
        "loop": {"rounds": config.rounds, "variants": config.variants}, "judge": config.judge,
        "dataset": _dataset(config),
        # ladders share models (every nested ladder starts at the default sim): one cache
        "runtime": {"cache_dir": str(Path(config.output_dir) / "cache")},
    }
    if config.selection is not None:
        data["selection"] = config.selection
    return build_spec(with_renderer(config.renderer, data))


def _directions(spec: RunSpec) -> dict[str, bool]:
    """Metric label -> higher is better (selection and the judge's scores: higher)."""
    out = {"selection": True}
    for m in spec.metrics:
        out[m.display_name] = bool(getattr(METRICS.get(m.name), "higher_is_better", True))
    if spec.judge:
        out.update(judge_aesthetic=True, judge_semantic=True)
    return out


def _per_seed_records(result) -> dict[int, list[CaseRecord]]:
    out: dict[int, list[CaseRecord]] = {}
    for record in result.records:
        out.setdefault(record.seed, []).append(record)
    return out


def _seed_sensitivity(rows: list[LeaderboardRow], metrics: list[str]) -> dict[str, dict[str, Any]]:
    """Per metric: the models' seed SD of the mean and its ratio to the bootstrap SE."""
    out = {}
    for metric in metrics:
        summaries = [s for s in (r.metric(metric) for r in rows) if s is not None]
        ratios = [s.seed_sd_over_se for s in summaries if s.seed_sd_over_se is not None]
        sds = [s.seed_sd for s in summaries if s.seed_sd is not None]
        if ratios:
            out[metric] = {"median_seed_sd": median(sds), "max_seed_sd": max(sds),
                           "median_ratio": median(ratios), "max_ratio": max(ratios),
                           "models": len(ratios)}
    return out


def run_ladders(config: MetaEvalConfig, ladders: dict[str, Ladder]) -> dict[str, Any]:
    """(a) + (d): every ladder as a seeded comparison, then tau and adjacent separation."""
    from repainter.runner import run

    out = {}
    for name, ladder in ladders.items():
        spec = _spec(config, labelled(ladder), str(Path(config.output_dir) / "ladders" / name))
        started = time.perf_counter()
        result = run(spec)
        models = [t.display_name for t in spec.t2i]
        directions = _directions(spec)
        per_seed = _per_seed_records(result)
        out[name] = {
            "description": ladder.description, "nested": ladder.nested, "models": models,
            "required": ladder.required, **_true_quality(ladder),
            "run_dir": str(result.run_dir),
            "metrics": ladder_validity(per_seed, models, directions,
                                       resamples=config.bootstrap_resamples),
            # the truth of the best render the loop made: what an ideal pick would have shown
            "best_rendered": _best_rendered(config, per_seed, models, directions),
            "seed_sensitivity": _seed_sensitivity(result.leaderboard, list(directions)),
            "seconds": round(time.perf_counter() - started, 1),
        }
    return out


def _best_rendered(config: MetaEvalConfig, per_seed: dict[int, list[CaseRecord]],
                   models: list[str], directions: dict[str, bool]) -> dict[str, Any] | None:
    """Tau and adjacent separation of the truth metric at each case's best render (an ideal
    re-pick among the loop's candidates); None without a higher-is-better truth metric."""
    if not config.truth or not directions.get(config.truth, False):
        return None
    found = ladder_validity(per_seed, models, {config.truth: True},
                            resamples=config.bootstrap_resamples, value_of=best_rendered)
    return found.get(config.truth)


def _true_quality(ladder: Ladder) -> dict[str, Any]:
    """The bench's true quality of each rung and its adjacent gaps, where the bench knows them
    (simulated ``sim`` models); empty otherwise."""
    zoo = bench_zoo()
    if zoo is None or any(m.get("name") != "sim" for m in ladder.models):
        return {}
    bench = zoo.Ladder(ladder.name, ladder.description, ladder.nested, ladder.models,
                       ladder.required)
    return {"true_quality": list(zoo.true_qualities(bench).values()),
            "gaps": zoo.ladder_gaps(bench),
            "params": [dict(m.get("params") or {}) for m in ladder.models]}


def oracle_prompt(ground_truth: dict[str, Any], t2i_name: str = "sim") -> str:
    """The best prompt for a ground-truth scene in the language of the T2I model: the bench's
    (``repainter.bench.sim.zoo.oracle_prompt``) for ``sim``, else the built-in world's grammar (the
    language ``procedural`` parses)."""
    zoo = bench_zoo() if t2i_name == "sim" else None
    if zoo is not None:
        return zoo.oracle_prompt(ground_truth)
    from repainter.bench.world.grammar import scene_to_prompt
    from repainter.bench.world.scene import SceneSpec

    return scene_to_prompt(SceneSpec.model_validate(ground_truth))


def oracle_records(spec: RunSpec, label: str = "oracle") -> list[CaseRecord]:
    """The oracle baseline at the loop's render budget: the ground-truth prompt rendered
    rounds x variants times with the loop's own seeds; the selection score picks the best, as in
    the loop. Cases without ground truth are left out."""
    from repainter.backends.base import recorded_metadata
    from repainter.components import build_components
    from repainter.datasets import load_dataset
    from repainter.graph.context import case_seed
    from repainter.scoring import metric_scores, selection_score

    items = load_dataset(spec.dataset.name, spec.dataset.params).select(
        spec.dataset.categories, spec.dataset.limit)
    components = build_components(spec.model_copy(update={"t2i": spec.t2i[:1]}))
    (backend,) = components.t2i.values()
    by_name = {m.name: m for m in components.metrics}
    records = []
    try:
        for item in items:
            reference = item.load()
            if reference.ground_truth is None:
                continue
            prompt = oracle_prompt(reference.ground_truth, spec.t2i[0].name)
            seeds = [case_seed(spec.seed, item.id, r, v) for r in range(1, spec.loop.rounds + 1)
                     for v in range(spec.loop.variants)]
            generated = backend.generate([prompt] * len(seeds), seeds)
            images = [g.image.convert("RGB") for g in generated]
            # simulated models record the scene they drew; scene_truth scores that
            candidates = [{"index": i, "metadata": recorded_metadata(backend, g)}
                          for i, g in enumerate(generated)]
            scores: list[dict[str, float | None]] = [{} for _ in images]
            for metric in components.metrics:
                for candidate, value in metric_scores(metric, metric.prepare(reference),
                                                      candidates, images):
                    scores[candidate["index"]][metric.name] = finite_or_none(value)
            selections = [selection_score(s, spec.selection, by_name) for s in scores]
            best = max(range(len(images)), key=lambda i: -math.inf if selections[i] is None else selections[i])
            records.append(CaseRecord(
                model=label, case_id=item.id, category=reference.category, status="done",
                strategy="oracle", initial_prompt=prompt,
                final_scores={**scores[best], "selection": selections[best]},
                round1_best=CandidateRecord(selection=max(
                    (s for s in selections[:spec.loop.variants] if s is not None),
                    default=None))))
    finally:
        components.close()
    return records


def _mean_of(row: LeaderboardRow, metric: str) -> float | None:
    summary = row.metric(metric)
    return summary.mean if summary is not None else None


def _refine_first(comparison: dict[str, Any]) -> dict[str, Any]:
    """A paired comparison oriented as refine - other (the loop's gain; negative = a loss)."""
    if comparison["model_a"] == "refine":
        return comparison
    low, high = comparison["ci_low"], comparison["ci_high"]
    return {**comparison, "model_a": "refine", "model_b": comparison["model_a"],
            "mean_difference": None if comparison["mean_difference"] is None
            else -comparison["mean_difference"],
            "ci_low": None if high is None else -high, "ci_high": None if low is None else -low}


def run_baselines(config: MetaEvalConfig) -> dict[str, Any]:
    """(c): the loop vs best-of-N vs one-shot (vs the oracle prompt) on one T2I model."""
    from repainter.report.leaderboard import build_leaderboard, build_metric_comparisons
    from repainter.runner import run
    from repainter.seed_runs import average_over_seeds, seed_specs

    model = config.baseline_model.model_dump(exclude={"label"})
    entries = [{**model, "label": "refine", "strategy": "refine"},
               {**model, "label": "best_of_n", "strategy": "best_of_n"},
               {**model, "label": "one_shot", "strategy": "one_shot"}]
    spec = _spec(config, entries, str(Path(config.output_dir) / "baselines"))
    started = time.perf_counter()
    result = run(spec)
    per_seed = _per_seed_records(result)
    oracle = {sub.seed: oracle_records(sub) for sub in seed_specs(spec)}
    has_oracle = all(oracle.values())
    runs = [per_seed[s] + (oracle[s] if has_oracle else []) for s in sorted(per_seed)]
    averaged = average_over_seeds(runs)
    labels = [e["label"] for e in entries] + (["oracle"] if has_oracle else [])
    rows = build_leaderboard(averaged, labels)
    directions = _directions(spec)
    comparisons = build_metric_comparisons(averaged, rows)
    tests = {metric: [_refine_first(c) for c in family.flat()
                      if "refine" in (c["model_a"], c["model_b"])]
             for metric, family in comparisons.items()}
    return {
        "model": model, "budget_renders": config.rounds * config.variants,
        "seeds": config.seeds, "cases": len({r.case_id for r in averaged}),
        "oracle": has_oracle, "run_dir": str(result.run_dir),
        "means": {row.model: {m: _mean_of(row, m) for m in directions} for row in rows},
        "tests": tests,
        "seconds": round(time.perf_counter() - started, 1),
    }


def _degradation_metrics(config: MetaEvalConfig) -> list[ComponentSpec]:
    if config.degradation_metrics is not None:
        return config.degradation_metrics
    chosen = [ComponentSpec(name=n) for n in WEIGHT_FREE]
    for m in config.metrics or []:
        if not _is_truth(m) and m.name not in WEIGHT_FREE:
            chosen.append(m)
    return chosen


class SelectionScore:
    """The selection score as one metric: the weighted mean of its metrics' similarities
    (:func:`repainter.scoring.selection_score`), so the degradation check rates the score the
    loop actually selects by, next to its parts."""

    name = "selection"
    higher_is_better = True

    def __init__(self, metrics: dict[str, Any], weights: dict[str, float]):
        self.metrics, self.weights = metrics, weights

    def prepare(self, reference) -> dict[str, Any]:
        return {label: metric.prepare(reference) for label, metric in self.metrics.items()}

    def score(self, prepared: dict[str, Any], images: list) -> list[float | None]:
        from repainter.scoring import selection_score

        raw = {label: metric.score(prepared[label], images) for label, metric in self.metrics.items()}
        return [selection_score({label: values[i] for label, values in raw.items()},
                                self.weights, self.metrics) for i in range(len(images))]

    def similarity(self, value: float) -> float:
        return value


def _selection_for_degradations(config: MetaEvalConfig,
                                metrics: dict[str, Any]) -> SelectionScore | None:
    """The run's selection score when every metric it weighs compares images (none is a truth
    metric) and was built for the check; None otherwise."""
    weights = config.selection if config.selection is not None else RunSpec().selection
    if len(weights) < 2 or not set(weights) <= set(metrics):
        return None  # one metric: its own row already is the selection's
    return SelectionScore({label: metrics[label] for label in weights}, dict(weights))


def run_degradations(config: MetaEvalConfig) -> dict[str, Any]:
    """(b): graded degradations of real photos (or a dataset's references), tau per metric
    (and of the selection score, where it combines several image metrics)."""
    from repainter.bench.meta_eval.degradations import degradation_validity, skimage_references

    started = time.perf_counter()
    if config.degradation_dataset is not None:
        from repainter.datasets import load_dataset

        d = config.degradation_dataset
        references = [i.load() for i in load_dataset(d.name, d.params).select(d.categories, d.limit)]
        source = f"dataset {d.name}"
    else:
        references = skimage_references(config.degradation_images, config.degradation_size)
        source = "skimage.data: " + ", ".join(config.degradation_images)
    metrics = {}
    for component in _degradation_metrics(config):
        metric = METRICS.create(component.name, **component.params)
        metrics[component.display_name] = metric
    selection = _selection_for_degradations(config, metrics)
    if selection is not None:
        metrics["selection"] = selection
    results = degradation_validity(metrics, references, config.degradation_kinds,
                                   config.degradation_strengths)
    return {"references": source, "images": len(references), "size": config.degradation_size,
            "strengths": config.degradation_strengths, "kinds": config.degradation_kinds,
            "metrics": results, "seconds": round(time.perf_counter() - started, 1)}


#: What a meta-evaluation writes into its output folder: a folder holding only these is its own.
META_EVAL_NAMES = frozenset({"cache", "ladders", "baselines", "second-renderer", "scenes.jsonl",
                             "VALIDITY.md", "validity.json"})


def check_output_folders(config: MetaEvalConfig) -> None:
    """Refuse folders a meta-evaluation must not write into, before anything runs: an output
    folder holding other files than a meta-evaluation's own, and a ``run_dir`` (``--run`` or
    the config file's) that is no run folder (validity.json and report/ would land there)."""
    from repainter.store import (
        LOCK_FILE,
        RunFolderError,
        foreign_entries,
        is_run_folder,
        refuse_blank_output_dir,
    )

    refuse_blank_output_dir(config.output_dir)
    out = Path(config.output_dir)
    if out.exists() and not out.is_dir():
        raise RunFolderError(f"output_dir {out} exists and is not a folder")
    others = foreign_entries(out, META_EVAL_NAMES | {LOCK_FILE})
    if others:
        shown = ", ".join(others[:5]) + (" ..." if len(others) > 5 else "")
        raise RunFolderError(f"output_dir {out} is not empty and is not a meta-evaluation folder "
                             f"(it holds {shown}); choose a new or empty folder")
    if config.run_dir is not None and not is_run_folder(config.run_dir):
        raise RunFolderError(f"run_dir {config.run_dir} is not a repainter run folder (no "
                             "spec.yaml and run.json written by a run); validity.json and the "
                             "report are only added to one")


def meta_eval(config: MetaEvalConfig | None = None, **options: Any) -> dict[str, Any]:
    """Run the meta-evaluation; write validity.json and VALIDITY.md; return the JSON data.

    Example (small; a few seconds):
        >>> data = meta_eval(parts=["degradations"], degradation_images=["camera"],
        ...                  degradation_size=32, output_dir="/tmp/repainter-meta-doctest")
        >>> data["degradations"]["metrics"]["ssim"]["kinds"]["blur"]["tau"]
        1.0
    """
    from repainter.bench.meta_eval.summary import write_validity

    config = MetaEvalConfig.model_validate({**(config.model_dump() if config else {}), **options})
    config, ladders, bench = resolve(config)
    check_output_folders(config)
    check_validity_path(config)
    started = time.perf_counter()
    data: dict[str, Any] = {"bench": bench, "command": config.command,
                            "config": config.model_dump(mode="json")}
    zoo = bench_zoo()
    if bench == "sim" and zoo is not None:
        data["true_order"] = zoo.TRUE_ORDER
    if config.loop_check:  # read first: a malformed file fails before hours of runs
        data["loop_check"] = read_loop_check(config.loop_check)
    if "ladders" in config.parts:
        data["ladders"] = run_ladders(config, ladders)
    if "degradations" in config.parts:
        data["degradations"] = run_degradations(config)
    if "baselines" in config.parts:
        data["baselines"] = run_baselines(config)
    if "second_renderer" in config.parts:
        data["second_renderer"] = run_second_renderer(config, ladders, run_ladders)
    data["seconds"] = round(time.perf_counter() - started, 1)
    write_validity(data, config)
    return data
