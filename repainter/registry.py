"""Name -> component registries, extensible by third-party packages through entry points.

Built-in components register themselves with a decorator when their module is imported::

    @METRICS.register("ssim")
    class SSIM(Metric): ...

A third-party package adds its own through the entry-point group named after the registry
(``repainter.t2i``, ``repainter.mllm``, ``repainter.metrics``, ``repainter.datasets`` ...)::

    [project.entry-points."repainter.t2i"]
    my-model = "my_pkg.backend:MyT2I"

or, for several components at once (and traits), through a *plugin*: a callable taking no
argument, named in the ``repainter.plugins`` group, called once per process the first time any
registry is read. It registers through this module's public API, without importing the
components it names::

    [project.entry-points."repainter.plugins"]
    my-pkg = "my_pkg:register"

    def register():
        T2I.register_lazy("my-model", "my_pkg.backend:MyT2I", traits={"bench"})

The simulation bench (:mod:`repainter.bench`) is such a plugin. A plugin that fails is reported
(logged once, and named in every "unknown component" error) instead of breaking the others.

A registration may carry *traits*, read without importing the component: ``bench`` (part of
the simulation bench, not a model of the real world: its scores say nothing about real models),
``draws_scene`` (a T2I model that reports the scene it drew), ``needs_drawn_scene`` (a metric
that grades those scenes) and ``truth_scenes`` (a dataset whose references come with the scene
they show). Specs read them to pick defaults that fit the models named
(:func:`repainter.presets.real_components`) and to refuse combinations that cannot score.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable, Iterable
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

T = TypeVar("T")

logger = logging.getLogger(__name__)

#: The entry-point group of plugins: callables that register components (see the module doc).
PLUGIN_GROUP = "repainter.plugins"
#: Plugins that raised while registering: entry-point name -> what went wrong.
PLUGIN_ERRORS: dict[str, str] = {}
_plugins_state = "new"  # "loading" while the plugins register, then "done"
_plugins_lock = threading.RLock()


def load_plugins() -> None:
    """Call every ``repainter.plugins`` entry point, once per process (later calls do nothing).

    A plugin that raises is logged and kept in :data:`PLUGIN_ERRORS`; the others still load.
    """
    global _plugins_state
    if _plugins_state == "done":
        return
    with _plugins_lock:  # another thread waits here until every plugin has registered
        if _plugins_state != "new":  # done, or a plugin of this thread reading a registry
            return
        _plugins_state = "loading"
        try:
            for ep in sorted(entry_points(group=PLUGIN_GROUP), key=lambda e: e.name):
                try:
                    ep.load()()
                except Exception as exc:  # noqa: BLE001 - one broken plugin must not hide the rest
                    PLUGIN_ERRORS[ep.name] = f"{ep.value}: {type(exc).__name__}: {exc}"
                    logger.warning("repainter plugin %r failed to register its components (%s)",
                                   ep.name, PLUGIN_ERRORS[ep.name])
        finally:
            _plugins_state = "done"


def plugin_problems() -> str:
    """`` (plugins that failed to load: ...)`` where some did, else an empty string."""
    if not PLUGIN_ERRORS:
        return ""
    return " (plugins that failed to load: " + "; ".join(
        f"{name}: {why}" for name, why in sorted(PLUGIN_ERRORS.items())) + ")"


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
        load_plugins()  # first: a registry is complete only once every plugin has registered
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
            raise UnknownComponentError(
                f"unknown {self.kind} {name!r}; registered: {known}{plugin_problems()}")
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
DATASETS: Registry[Any] = Registry("datasets", ("repainter.datasets",))

# -- extension points of the core's gallery and description readers ---------------------------
# Plugins add readers for their own kind of image (the bench's world registers its own); each
# registry is found by its name and extended like the ones above (entry-point group
# ``repainter.<kind>`` or a plugin's register_lazy).

#: Image embeddings of a gallery, for the ``identification`` metric's and DAR's ``embedding``:
#: an object with ``name``, ``identity()``, ``embed(images) -> (N, D) array`` and
#: ``similarities(queries, gallery) -> (Q, N) array``. A name not registered here is read as a
#: metric with an image embedding (``clip_i``, ``dinov2``).
EMBEDDINGS: Registry[Any] = Registry("embeddings")
EMBEDDINGS.register_lazy("colour_layout",
                         "repainter.backends.metrics.identification:ColourLayoutEmbedding")
EMBEDDINGS.register_lazy("color_layout",
                         "repainter.backends.metrics.identification:ColourLayoutEmbedding")
#: Prompt-to-gallery matchers of the ``retrieval`` T2I backend's ``method`` (besides its own
#: ``clip``): an object with ``identity()`` (of its features), ``features(ids, references) ->
#: dict of arrays`` (computed once per gallery, stored) and ``scores(prompts, features) ->
#: (len(prompts), N) array`` (higher = better match).
RETRIEVAL_METHODS: Registry[Any] = Registry("retrieval_methods")
#: DAR text scorers (query text vs. each gallery image): an object with ``name``,
#: ``fit(ids, references)``, ``scores(query) -> (N,) array`` and ``identity()``.
DAR_TEXT_SCORERS: Registry[Any] = Registry("dar_text_scorers")
DAR_TEXT_SCORERS.register_lazy("clip", "repainter.dar.scoring:ClipTextScorer")
#: DAR's built-in dialogues, by the name of the dataset whose ground truth they are written
#: from: a function ``(items, *, seed) -> list[Dialogue]``.
DAR_DIALOGUES: Registry[Any] = Registry("dar_dialogues")
#: Readers of the background colour a description names (the ``self_feedback`` metric's
#: background question): a function ``(text) -> colour name or None``.
BACKGROUND_READERS: Registry[Any] = Registry("background_readers")
