"""Build a spec's components from the registries."""

from __future__ import annotations

from dataclasses import dataclass

from repainter.backends.base import Metric, MLLMBackend, T2IBackend
from repainter.registry import METRICS, MLLM, T2I
from repainter.spec import ComponentSpec, RunSpec


class ComponentError(ValueError):
    """A component named in the spec could not be built; the message names it."""


def _create(registry, component: ComponentSpec):
    try:
        return registry.create(component.name, **component.params)
    except TypeError as exc:  # wrong parameter names / types for the constructor
        raise ComponentError(f"{registry.kind} {component.name!r}: bad params ({exc})") from exc


@dataclass
class Components:
    mllm: MLLMBackend
    t2i: dict[str, T2IBackend]
    metrics: list[Metric]

    def close(self) -> None:
        for backend in [self.mllm, *self.t2i.values()]:
            backend.close()


def build_components(spec: RunSpec) -> Components:
    metrics = []
    for component in spec.metrics:
        metric = _create(METRICS, component)
        # Scores are keyed by label, so one metric can appear twice with different params.
        metric.name = component.display_name
        metrics.append(metric)
    return Components(
        mllm=_create(MLLM, spec.mllm),
        t2i={c.display_name: _create(T2I, c) for c in spec.t2i},
        metrics=metrics,
    )
