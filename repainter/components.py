"""Build a spec's components from the registries."""

from __future__ import annotations

import gc
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from repainter.backend_timing import BackendClock, timed
from repainter.backends.base import (
    GeneratedImage,
    Metric,
    MetricWrapper,
    MLLMBackend,
    T2IBackend,
    T2IWrapper,
)
from repainter.cache import CachedMetric, CachedMLLM, CachedT2I, ResponseCache
from repainter.registry import METRICS, MLLM, T2I
from repainter.spec import ComponentSpec, RunSpec


class ComponentError(ValueError):
    """A component named in the spec could not be built; the message names it."""


def create_component(registry, component: ComponentSpec):
    """The component ``component`` names, built from ``registry`` with its params.

    A constructor that rejects the params (wrong names or types) is a :class:`ComponentError`
    naming the component, not a bare TypeError.

    >>> from repainter.registry import METRICS
    >>> from repainter.spec import ComponentSpec
    >>> create_component(METRICS, ComponentSpec(name="ssim")).name
    'ssim'
    >>> create_component(METRICS, ComponentSpec(name="ssim", params={"nope": 1}))
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    repainter.components.ComponentError: metrics 'ssim': bad params (...unexpected keyword argument 'nope')
    """
    try:
        return registry.create(component.name, **component.params)
    except TypeError as exc:  # wrong parameter names / types for the constructor
        raise ComponentError(f"{registry.kind} {component.name!r}: bad params ({exc})") from exc


class ThrottledT2I(T2IWrapper):
    """Lets at most ``limit`` batches render at once, however many cases are in flight; with a
    ``clock``, the cases waiting for a slot are its ``queue:<label>`` gauge (time waiting on the
    device)."""

    def __init__(self, inner: T2IBackend, limit: int, clock: BackendClock | None = None,
                 label: str = ""):
        super().__init__(inner)
        self._slots = threading.BoundedSemaphore(limit)
        self._clock, self._queue = clock, f"queue:{label}"

    def generate(self, prompts, seeds) -> list[GeneratedImage]:
        if self._clock is not None:
            self._clock.enter(self._queue)
        try:
            self._slots.acquire()
        finally:
            if self._clock is not None:
                self._clock.leave(self._queue)
        try:
            return self.inner.generate(prompts, seeds)
        finally:
            self._slots.release()


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

    def score_metadata(self, prepared, values):
        with self._lock:
            return self.inner.score_metadata(prepared, values)


class LazyT2I(T2IWrapper):
    """A T2I backend built on first use and released on demand (model-at-a-time scheduling).

    Nothing is loaded until a case renders (or asks the model's identity), so listing,
    validating, reporting and re-running finished cases never construct a pipeline. ``release``
    closes the backend, drops it and returns its memory (and the device's cache) to the system.

        >>> lazy = LazyT2I(T2I.get("procedural"))
        >>> lazy.loaded
        False
        >>> len(lazy.generate(["a red circle"], [1]))
        1
        >>> lazy.release()["released"]
        True
    """

    def __init__(self, factory: Callable[[], T2IBackend]):
        self._factory = factory
        self._inner: T2IBackend | None = None
        self._lock = threading.Lock()
        self.peak_device_bytes: int | None = None
        self.kind = ""

    @property
    def loaded(self) -> bool:
        return self._inner is not None

    @property
    def inner(self) -> T2IBackend:  # type: ignore[override]
        with self._lock:
            if self._inner is None:
                _reset_device_peak()
                self._inner = self._factory()
                self.kind = getattr(self._inner, "kind", "")
            return self._inner

    @inner.setter
    def inner(self, value: T2IBackend) -> None:  # T2IWrapper.__init__ is not called
        self._inner = value

    def release(self) -> dict[str, Any]:
        """Close and drop the backend; return whether it was loaded and its peak device bytes."""
        with self._lock:
            backend, self._inner = self._inner, None
        if backend is None:
            return {"released": False, "peak_device_bytes": self.peak_device_bytes}
        self.peak_device_bytes = _device_peak()
        backend.close()
        del backend
        gc.collect()
        _empty_device_cache()
        return {"released": True, "peak_device_bytes": self.peak_device_bytes}

    def close(self) -> None:
        self.release()


def _torch_cuda():
    """torch.cuda where torch is already imported and a GPU is there (never imports torch)."""
    torch = sys.modules.get("torch")
    cuda = getattr(torch, "cuda", None)
    try:
        return cuda if cuda is not None and cuda.is_available() else None
    except Exception:  # a broken driver: no device numbers to report
        return None


def _reset_device_peak() -> None:
    cuda = _torch_cuda()
    if cuda is not None:
        cuda.reset_peak_memory_stats()


def _device_peak() -> int | None:
    cuda = _torch_cuda()
    return int(cuda.max_memory_allocated()) if cuda is not None else None


def _empty_device_cache() -> None:
    cuda = _torch_cuda()
    if cuda is not None:
        cuda.empty_cache()


@dataclass
class Components:
    mllm: MLLMBackend
    t2i: dict[str, T2IBackend]
    metrics: list[Metric]
    cache: ResponseCache | None = field(default=None)
    clock: BackendClock = field(default_factory=BackendClock)
    #: The lazily built T2I backends by label (each under the cache / throttle wrappers).
    lazy: dict[str, LazyT2I] = field(default_factory=dict)

    def release(self, label: str) -> dict[str, Any]:
        """Release one T2I model (model-at-a-time); it is built again if used again."""
        lazy = self.lazy.get(label)
        return lazy.release() if lazy is not None else {"released": False}

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
        metric = create_component(METRICS, component)
        # Scores are keyed by label, so one metric can appear twice with different params.
        metric.name = component.display_name
        metrics.append(timed(metric, f"metric:{metric.name}", clock))
    mllm = timed(create_component(MLLM, spec.mllm), f"mllm:{spec.mllm.display_name}", clock)
    for component in spec.t2i:  # an unknown name fails the run now, not at its first render
        T2I.get(component.name)
    lazy = {c.display_name: LazyT2I(_t2i_factory(c, clock)) for c in spec.t2i}
    t2i: dict[str, T2IBackend] = dict(lazy)
    if cache is not None:
        mllm = CachedMLLM(mllm, cache)
        # the graph saves every render into the run folder: the cache points at that file
        t2i = {label: CachedT2I(backend, cache, saved_by_caller=True)
               for label, backend in t2i.items()}
        metrics = [CachedMetric(metric, cache) for metric in metrics]
    if spec.runtime.concurrency != 1:  # an int above 1, or auto (paced: may run several)
        t2i = {label: ThrottledT2I(b, spec.runtime.t2i_concurrency, clock, label)
               for label, b in t2i.items()}
        metrics = [SerialMetric(metric) for metric in metrics]
    return Components(mllm=mllm, t2i=t2i, metrics=metrics, cache=cache, clock=clock, lazy=lazy)


def _t2i_factory(component: ComponentSpec, clock: BackendClock) -> Callable[[], T2IBackend]:
    def build() -> T2IBackend:
        return timed(create_component(T2I, component), f"t2i:{component.display_name}", clock)

    return build
