"""Build a spec's components from the registries."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from repainter.backends.base import (
    GeneratedImage,
    Metric,
    MetricWrapper,
    MLLMBackend,
    T2IBackend,
    T2IWrapper,
)
from repainter.cache import CachedMetric, CachedMLLM, CachedT2I, ResponseCache
from repainter.instrument import BackendClock, timed
from repainter.registry import METRICS, MLLM, T2I
from repainter.spec import ComponentSpec, RunSpec


class ComponentError(ValueError):
    """A component named in the spec could not be built; the message names it."""


def _create(registry, component: ComponentSpec):
    try:
        return registry.create(component.name, **component.params)
    except TypeError as exc:  # wrong parameter names / types for the constructor
        raise ComponentError(f"{registry.kind} {component.name!r}: bad params ({exc})") from exc


class ThrottledT2I(T2IWrapper):
    """Lets at most ``limit`` batches render at once, however many cases are in flight."""

    def __init__(self, inner: T2IBackend, limit: int):
        super().__init__(inner)
        self._slots = threading.BoundedSemaphore(limit)

    def generate(self, prompts, seeds) -> list[GeneratedImage]:
        with self._slots:
            return self.inner.generate(prompts, seeds)


class SerialMetric(MetricWrapper):
    """One scoring call at a time per metric (model-backed metrics hold one model)."""

    def __init__(self, inner: Metric):
        super().__init__(inner)
        self._lock = threading.Lock()

    def prepare(self, reference):
        with self._lock:
            return self.inner.prepare(reference)

    def score(self, prepared, candidates):
        with self._lock:
            return self.inner.score(prepared, candidates)

    def score_drawn(self, prepared, drawn):
        with self._lock:
            return self.inner.score_drawn(prepared, drawn)


@dataclass
class Components:
    mllm: MLLMBackend
    t2i: dict[str, T2IBackend]
    metrics: list[Metric]
    cache: ResponseCache | None = field(default=None)
    clock: BackendClock = field(default_factory=BackendClock)

    def close(self) -> None:
        for backend in [self.mllm, *self.t2i.values()]:
            backend.close()
        if self.cache is not None:
            self.cache.close()


def build_components(spec: RunSpec, cache: ResponseCache | None = None) -> Components:
    """Build every component of ``spec``; with ``cache``, each one answers repeats from it.

    Wrapping order, inside out: the backend, its call timer, the cache, the concurrency guard.
    """
    clock = BackendClock()
    metrics = []
    for component in spec.metrics:
        metric = _create(METRICS, component)
        # Scores are keyed by label, so one metric can appear twice with different params.
        metric.name = component.display_name
        metrics.append(timed(metric, f"metric:{metric.name}", clock))
    mllm = timed(_create(MLLM, spec.mllm), f"mllm:{spec.mllm.display_name}", clock)
    t2i = {c.display_name: timed(_create(T2I, c), f"t2i:{c.display_name}", clock)
           for c in spec.t2i}
    if cache is not None:
        mllm = CachedMLLM(mllm, cache)
        t2i = {label: CachedT2I(backend, cache) for label, backend in t2i.items()}
        metrics = [CachedMetric(metric, cache) for metric in metrics]
    if spec.runtime.concurrency > 1:
        t2i = {label: ThrottledT2I(b, spec.runtime.t2i_concurrency) for label, b in t2i.items()}
        metrics = [SerialMetric(metric) for metric in metrics]
    return Components(mllm=mllm, t2i=t2i, metrics=metrics, cache=cache, clock=clock)
