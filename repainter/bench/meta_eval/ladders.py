"""Ladders: T2I models whose true order is known, ordered best -> worst.

The independent simulation bench (``repainter.bench.sim.zoo``) supplies them where installed: nested
ladders (each rung one more failure mode) and a non-nested zoo whose order comes from the
models' known true quality. Without it, :func:`procedural_ladders` builds ladders of the
built-in world's ``procedural`` model (``ignore`` attributes), whose order is known only by
construction (nested) or by the number of ignored attributes (non-nested, an assumption); and
the world's truth (``object_f1``) shares the describer's detector, so the fallback is weaker
evidence. Any ladder can also be passed as data::

    {"name": "mine", "nested": true, "models": [{"name": "procedural"}, ...]}
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Ladder:
    name: str
    description: str
    nested: bool
    models: tuple[dict, ...]  # ComponentSpec dicts ordered BEST -> WORST
    #: False: a stress ladder, reported apart from the acceptance (e.g. the bench's zoo-close)
    required: bool = True

    @classmethod
    def from_data(cls, name: str, data: Any) -> Ladder:
        """A ladder from a mapping (or an object with the same attributes, e.g. the zoo's)."""
        get = data.get if isinstance(data, dict) else lambda key, default=None: getattr(data, key, default)
        given = get("models", ())
        if not isinstance(given, list | tuple) or not all(isinstance(m, dict | str) for m in given):
            raise ValueError(f"ladder {name!r}: models must be a list of model names or "
                             f"{{name, params}} mappings, best first; got {given!r}")
        models = tuple(dict(m) if isinstance(m, dict) else {"name": m} for m in given)
        if len(models) < 2:
            raise ValueError(f"ladder {name!r} needs at least two models, best first")
        if not all(isinstance(m.get("name"), str) and m["name"] for m in models):
            raise ValueError(f"ladder {name!r}: every model needs a name")
        return cls(name=str(get("name", name) or name), description=str(get("description", "") or ""),
                   nested=bool(get("nested", False)), models=models,
                   required=bool(get("required", True)))


def _procedural(ignore: list[str]) -> dict:
    return {"name": "procedural", "params": {"ignore": ignore}}


def _nested(order: list[str]) -> tuple[dict, ...]:
    return tuple(_procedural(order[:i]) for i in range(len(order) + 1))


def procedural_ladders() -> dict[str, Ladder]:
    """Two nested ladders and one non-nested zoo of the built-in ``procedural`` model."""
    return {
        "nested-background-first": Ladder(
            "nested-background-first", "procedural: ignore background, then colour, position, "
            "shape, size (one more per rung)", True,
            _nested(["background", "color", "position", "shape", "size"])),
        "nested-size-first": Ladder(
            "nested-size-first", "procedural: ignore size, then shape, count, style, colour",
            True, _nested(["size", "shape", "count", "style", "color"])),
        "zoo-disjoint": Ladder(
            "zoo-disjoint", "procedural: 0-4 ignored attributes, different ones per model (order "
            "assumed from the number ignored)", False,
            (_procedural([]), _procedural(["style"]), _procedural(["count", "background"]),
             _procedural(["position", "shape", "style"]),
             _procedural(["color", "size", "background", "count"]))),
    }


def bench_zoo():
    """The simulation bench's zoo module, or None (with the reason logged) where absent."""
    try:
        from repainter.bench.sim import zoo  # noqa: PLC0415 - optional, merged separately
    except ImportError as exc:
        logger.info("repainter.bench.sim.zoo is not available (%s); using procedural ladders", exc)
        return None
    return zoo


def default_ladders() -> tuple[dict[str, Ladder], str]:
    """The bench's ladders where ``repainter.bench.sim.zoo`` exists, else the procedural ones; and
    which of the two it is."""
    zoo = bench_zoo()
    if zoo is not None:
        return ({name: Ladder.from_data(name, ladder) for name, ladder in zoo.ladders().items()},
                "sim")
    return procedural_ladders(), "procedural"


def labelled(ladder: Ladder) -> list[dict]:
    """The ladder's models as T2I entries labelled ``r0-<name>`` (best) ... ``rK-<name>``."""
    entries = []
    for rung, model in enumerate(ladder.models):
        entry = {k: v for k, v in model.items() if k != "label"}
        entry["label"] = f"r{rung}-{model.get('label') or model['name']}"
        entries.append(entry)
    return entries
