"""Name -> component registries, extensible by third-party packages through entry points.

Built-in components register themselves with a decorator when their module is imported::

    @T2I.register("procedural")
    class ProceduralT2I(T2IBackend): ...

A third-party package adds its own through the entry-point group named after the registry
(``repainter.t2i``, ``repainter.mllm``, ``repainter.metrics``, ``repainter.datasets``)::

    [project.entry-points."repainter.t2i"]
    my-model = "my_pkg.backend:MyT2I"

A registration may carry *traits*, read without importing the component: ``bench`` (part of
the simulation bench, not a model of the real world: its scores say nothing about real models),
``draws_scene`` (a T2I model that reports the scene it drew), ``needs_drawn_scene`` (a metric
that grades those scenes) and ``truth_scenes`` (a dataset whose references come with the scene
they show). Specs read them to pick defaults that fit the models named
(:func:`repainter.presets.real_components`) and to refuse combinations that cannot score.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
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
        self._traits: dict[str, frozenset[str]] = {}
        self._loaded = False

    def register(self, name: str, *, traits: Iterable[str] = ()
                 ) -> Callable[[Callable[..., T]], Callable[..., T]]:
        def decorator(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._factories and self._factories[name] is not factory:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._factories[name] = factory
            self._add_traits(name, traits)
            return factory

        return decorator

    def register_lazy(self, name: str, target: str, *, traits: Iterable[str] = ()) -> None:
        """Register ``"module:attr"`` without importing it (for components with heavy imports)."""
        self._lazy[name] = target
        self._add_traits(name, traits)

    def _add_traits(self, name: str, traits: Iterable[str]) -> None:
        if traits:
            self._traits[name] = self._traits.get(name, frozenset()) | frozenset(traits)

    def traits(self, name: str) -> frozenset[str]:
        """The traits ``name`` was registered with (none for an unknown name); nothing imported
        but the registry's own built-in modules.

            >>> sorted(T2I.traits("sim")), sorted(T2I.traits("diffusers"))
            (['bench', 'draws_scene'], [])
        """
        self._load()
        return self._traits.get(name, frozenset())

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

    def target(self, name: str) -> str | None:
        """The ``"module:attr"`` a lazily registered ``name`` points at (None for one registered
        by its class), so it can be read without being imported."""
        self._load()
        return self._lazy.get(name)

    def create(self, name: str, **params: Any) -> T:
        return self.get(name)(**params)

    def describe(self) -> list[tuple[str, str]]:
        """(name, one-line summary) pairs, for ``repainter ls``; lazy entries stay unimported."""
        self._load()
        rows = []
        for name in self.names():
            if name in self._factories:
                doc = (self._factories[name].__doc__ or "").strip().splitlines()
                summary = doc[0] if doc else ""
            else:
                summary = _lazy_summary(self._lazy[name])
            # the bench's parts say so where users pick components
            rows.append((name, f"[bench] {summary}" if "bench" in self.traits(name) else summary))
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

# The simulation bench (repainter.sim): imported on first use. Its weight-free scene metrics
# were made and tuned for its flat-coloured object scenes (VALIDITY.md part b): ``bench``.
T2I.register_lazy("sim", "repainter.sim.t2i:SimT2I", traits={"bench", "draws_scene"})
MLLM.register_lazy("sim-describer", "repainter.sim.describer:SimDescriber", traits={"bench"})
METRICS.register_lazy("scene_truth", "repainter.sim.truth:SceneTruth",
                      traits={"bench", "needs_drawn_scene"})
METRICS.register_lazy("lab_layout", "repainter.backends.metrics.lab_layout:LabLayoutSimilarity",
                      traits={"bench"})
METRICS.register_lazy("texture_energy",
                      "repainter.backends.metrics.texture_energy:TextureEnergySimilarity",
                      traits={"bench"})
METRICS.register_lazy("region_match",
                      "repainter.backends.metrics.region_match:RegionMatchSimilarity",
                      traits={"bench"})
