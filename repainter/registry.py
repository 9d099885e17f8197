"""Name -> component registries, extensible by third-party packages through entry points.

Built-in components register themselves with a decorator when their module is imported::

    @T2I.register("procedural")
    class ProceduralT2I(T2IBackend): ...

A third-party package adds its own through the entry-point group named after the registry
(``repainter.t2i``, ``repainter.mllm``, ``repainter.metrics``, ``repainter.datasets``)::

    [project.entry-points."repainter.t2i"]
    my-model = "my_pkg.backend:MyT2I"
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class UnknownComponentError(KeyError):
    """Raised when a name is not registered; the message lists what is."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


class Registry(Generic[T]):
    """A named collection of component factories (classes or callables).

    Modules named in ``builtin_modules`` are imported lazily on first lookup so that listing
    or building a light component never imports a heavy one (torch, diffusers).
    """

    def __init__(self, kind: str, builtin_modules: tuple[str, ...] = ()):
        self.kind = kind
        self.entry_point_group = f"repainter.{kind}"
        self._builtin_modules = builtin_modules
        self._factories: dict[str, Callable[..., T]] = {}
        self._lazy: dict[str, str] = {}  # name -> "module:attr", imported on demand
        self._loaded = False

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        def decorator(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._factories and self._factories[name] is not factory:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._factories[name] = factory
            return factory

        return decorator

    def register_lazy(self, name: str, target: str) -> None:
        """Register ``"module:attr"`` without importing it (for components with heavy imports)."""
        self._lazy[name] = target

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for module in self._builtin_modules:
            importlib.import_module(module)
        for ep in entry_points(group=self.entry_point_group):
            self._lazy.setdefault(ep.name, ep.value)

    def names(self) -> list[str]:
        self._load()
        return sorted(set(self._factories) | set(self._lazy))

    def __contains__(self, name: str) -> bool:
        self._load()
        return name in self._factories or name in self._lazy

    def get(self, name: str) -> Callable[..., T]:
        self._load()
        if name not in self._factories and name in self._lazy:
            module, _, attr = self._lazy[name].partition(":")
            factory = getattr(importlib.import_module(module), attr)
            self._factories[name] = factory
        if name not in self._factories:
            known = ", ".join(self.names()) or "none"
            raise UnknownComponentError(f"unknown {self.kind} {name!r}; registered: {known}")
        return self._factories[name]

    def create(self, name: str, **params: Any) -> T:
        return self.get(name)(**params)

    def describe(self) -> list[tuple[str, str]]:
        """(name, one-line summary) pairs, for ``repainter ls``; lazy entries stay unimported."""
        self._load()
        rows = []
        for name in self.names():
            if name in self._factories:
                doc = (self._factories[name].__doc__ or "").strip().splitlines()
                rows.append((name, doc[0] if doc else ""))
            else:
                rows.append((name, _lazy_summary(self._lazy[name])))
        return rows


def _lazy_summary(target: str) -> str:
    """First docstring line of ``"module:attr"`` read from its source, without importing it
    (importing would load torch, diffusers ...).

        >>> _lazy_summary("repainter.registry:Registry")
        'A named collection of component factories (classes or callables).'
    """
    import ast
    import importlib.util

    module, _, attr = target.partition(":")
    try:
        origin = importlib.util.find_spec(module).origin
        tree = ast.parse(open(origin, encoding="utf-8").read())
    except Exception:  # noqa: BLE001 - a third-party entry point we cannot read statically
        return target
    for node in tree.body:
        if isinstance(node, ast.ClassDef | ast.FunctionDef) and node.name == attr:
            doc = (ast.get_docstring(node) or "").strip().splitlines()
            return doc[0] if doc else target
    return target


T2I: Registry[Any] = Registry("t2i", ("repainter.backends.t2i",))
MLLM: Registry[Any] = Registry("mllm", ("repainter.backends.mllm",))
METRICS: Registry[Any] = Registry("metrics", ("repainter.backends.metrics",))
DATASETS: Registry[Any] = Registry("datasets", ("repainter.datasets", "repainter.world.dataset"))

# The simulation bench (repainter.sim): imported on first use.
T2I.register_lazy("sim", "repainter.sim.t2i:SimT2I")
MLLM.register_lazy("sim-describer", "repainter.sim.describer:SimDescriber")
METRICS.register_lazy("scene_truth", "repainter.sim.truth:SceneTruth")
METRICS.register_lazy("lab_layout", "repainter.backends.metrics.lab_layout:LabLayoutSimilarity")
METRICS.register_lazy("texture_energy",
                       "repainter.backends.metrics.texture_energy:TextureEnergySimilarity")
METRICS.register_lazy("region_match",
                       "repainter.backends.metrics.region_match:RegionMatchSimilarity")
