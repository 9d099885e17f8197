"""Honest defaults on other data: the bench's models and metrics only understand the bench's scenes.

The ``procedural`` T2I model draws what a world prompt names and the ``scene-analyst`` reads the
world's shapes; on photos their scores say nothing about real models. A run that pairs them with
another dataset gets a warning in the terminal, in run.json (``warnings``) and as a banner in the
report, and ``export-preferences`` refuses it unless forced. The bench's scene metrics on real
models' renders or other references warn the same way, and a metric that grades drawn scenes
where nothing draws one is refused. What belongs to the bench is read from the registries'
traits (:mod:`repainter.registry`), never from a list of names here.

    >>> from repainter.spec import RunSpec
    >>> offline_world_warnings(RunSpec())
    []
    >>> offline_world_warnings(RunSpec(dataset={"name": "folder", "params": {"path": "."}}))[0][:40]
    "the offline world's models (sim, sim-des"
"""

from __future__ import annotations

from typing import Any

WARNING = ("the offline world's models ({names}) only understand the world's scenes, not dataset "
           "{dataset!r}; their scores here mean nothing about real models: use real models for "
           "photos (see README, 'Use real models')")


def offline_world_warnings(spec: Any) -> list[str]:
    """The warning for ``spec`` (a RunSpec) when it runs offline-world models on other data."""
    from repainter.registry import DATASETS, MLLM, T2I

    if "bench" in DATASETS.traits(spec.dataset.name):
        return []
    used = sorted({t.name for t in spec.t2i if "bench" in T2I.traits(t.name)}
                  | {m.name for m in spec.mllms if "bench" in MLLM.traits(m.name)})
    if not used:
        return []
    return [WARNING.format(names=", ".join(used), dataset=spec.dataset.name)]


BENCH_METRIC_WARNING = (
    "metric(s) {metrics} belong to the simulation bench: made and tuned for its flat-coloured "
    "object scenes (VALIDITY.md, part b), they say little about {what}; for real models select "
    "by clip_i + dinov2 (`preset: paper`)")


def bench_metric_warnings(spec: Any) -> list[str]:
    """A warning when ``spec`` scores real models' renders or non-bench references with the
    bench's scene metrics (registry trait ``bench``).

        >>> from repainter.spec import RunSpec
        >>> bench_metric_warnings(RunSpec())
        []
        >>> bench_metric_warnings(RunSpec(t2i=["diffusers"], metrics=["ssim", "lab_layout"],
        ...                               selection={"lab_layout": 1}))[0][:40]
        'metric(s) lab_layout belong to the simul'
    """
    from repainter.presets import real_components
    from repainter.registry import DATASETS, METRICS

    bench = [m.display_name for m in spec.metrics if "bench" in METRICS.traits(m.name)]
    if not bench:
        return []
    real = real_components(spec.model_dump(mode="json"))
    foreign_data = "bench" not in DATASETS.traits(spec.dataset.name)
    if not real and not foreign_data:
        return []
    what = []
    if real:
        what.append(f"real models ({', '.join(real)})")
    if foreign_data:
        what.append(f"references of dataset {spec.dataset.name!r}")
    return [BENCH_METRIC_WARNING.format(metrics=", ".join(bench), what=" or ".join(what))]


def drawn_scene_problems(spec: Any) -> list[str]:
    """Metrics that grade the scene a T2I model reports drawing (trait ``needs_drawn_scene``,
    e.g. ``scene_truth``) named where no T2I model draws one or the references have no true
    scene: every such score would be empty, so the spec is refused.

        >>> from repainter.spec import RunSpec
        >>> drawn_scene_problems(RunSpec())
        []
        >>> drawn_scene_problems(RunSpec(t2i=["procedural"], metrics=["scene_truth"],
        ...                               selection={"scene_truth": 1}))[0][:46]
        "metric 'scene_truth' grades the scene a T2I mo"
    """
    from repainter.presets import drawn_scene_gaps
    from repainter.registry import METRICS

    gaps = drawn_scene_gaps(spec.model_dump(mode="json"))
    if not gaps:
        return []
    return [f"metric {m.display_name!r} grades the scene a T2I model reports drawing against the "
            f"reference's true scene, but {' and '.join(gaps)}: its scores would be empty; "
            "remove it from `metrics` (it works with t2i sim on dataset world)"
            for m in spec.metrics if "needs_drawn_scene" in METRICS.traits(m.name)]


def spec_warnings(spec: Any) -> list[str]:
    """Every honesty warning of ``spec``: for the terminal, run.json and the report."""
    return offline_world_warnings(spec) + bench_metric_warnings(spec)
