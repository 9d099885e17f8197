"""The ``world`` dataset: the bundled procedural scenes, rendered on load.

Each line of the scene file (default: the bundled ``datasets/world/scenes.jsonl``) holds an
``id``, a ``category``, the generator ``seed`` and the ``scene`` (a :class:`SceneSpec`). Loading
an item renders the scene; ``Reference.ground_truth`` is the scene as a JSON-able dict, which
ground-truth metrics such as ``object_f1`` compare against.

``renderer: painterly`` draws the references with the second renderer
(:mod:`~repainter.bench.world.painterly`, seed 0) instead of the flat one; the scenes and their
ground truth do not change.

Hard negatives, for galleries that retrieval can be fooled by (all off by default):

* ``variants: K`` adds, after the file's scenes, K near variants of each scene
  (:func:`~repainter.bench.world.generator.scene_variants`: one object moved, recoloured, reshaped or
  resized, two colours swapped, another background, one object dropped or added), with ids
  ``{scene_id}~v{k}`` (k from 0) and category ``variant``; :meth:`WorldDataset.variant_kinds`
  says which scene each one varies and how;
* ``distractors: N`` adds N more random scenes (:func:`~repainter.bench.world.generator.generate_scene`,
  the four categories in turn), ids ``distractor-{k:03d}``, category ``distractor``.

Both are drawn from ``seed`` (and the scene id), so the same parameters always give the same
items; every added item has its scene as ground truth like the file's.

>>> items = WorldDataset().items()
>>> len(items) >= 24, sorted({i.category for i in items})
(True, ['crowded', 'pair', 'single', 'styled'])
>>> ref = items[0].load()
>>> ref.image.size, sorted(ref.ground_truth)
((256, 256), ['background', 'objects'])
>>> extra = WorldDataset(variants=2, distractors=3).items()
>>> len(extra) - len(items), extra[len(items)].id, extra[-1].id
(67, 'single-00~v0', 'distractor-002')
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any

from repainter.bench.world.generator import (
    CATEGORIES,
    default_bundle_path,
    generate_scene,
    scene_variants,
)
from repainter.bench.world.renderers import check_renderer, draw
from repainter.bench.world.scene import SceneSpec
from repainter.datasets import Dataset, DatasetError, DatasetItem
from repainter.images import MAX_MANIFEST_BYTES, read_bytes_limited
from repainter.references import Reference

#: Upper bounds of the hard-negative parameters (per scene / in all).
MAX_VARIANTS = 32
MAX_DISTRACTORS = 100_000
#: Distractor k of dataset seed s is ``generate_scene(..., DISTRACTOR_SEED * (s + 1) + k)``:
#: never one of the bundle's seeds (1000-4999), never shared by two (seed, k).
DISTRACTOR_SEED = 1_000_000


def _count(name: str, value: Any, upper: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= upper:
        raise DatasetError(f"world {name} must be an integer from 0 to {upper}, not {value!r}")
    return value


class WorldDataset(Dataset):
    """The built-in offline world: procedural scenes with ground truth (default dataset)."""

    license = "CC0-1.0"

    def __init__(self, path: str | None = None, size: int = 256, variants: int = 0,
                 distractors: int = 0, seed: int = 0, renderer: str = "flat"):
        self.path = Path(path) if path else default_bundle_path()
        if not self.path.is_file():
            raise DatasetError(f"world scene file {self.path} does not exist")
        if not 16 <= int(size) <= 2048:
            raise DatasetError("world size must be between 16 and 2048 pixels")
        self.size = int(size)
        try:
            self.renderer = check_renderer(renderer)
        except ValueError as exc:
            raise DatasetError(str(exc)) from None
        self.variants = _count("variants", variants, MAX_VARIANTS)
        self.distractors = _count("distractors", distractors, MAX_DISTRACTORS)
        self.seed = _count("seed", seed, 2**31 - 1)
        self._variant_kinds: dict[str, tuple[str, str]] = {}

    def _file_rows(self) -> list[dict]:
        rows, seen = [], set()
        try:
            text = read_bytes_limited(self.path, MAX_MANIFEST_BYTES).decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise DatasetError(f"cannot read world manifest {self.path}: {exc}") from exc
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                scene = SceneSpec.model_validate(row["scene"])
                item_id = str(row["id"])
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                raise DatasetError(f"{self.path}:{number}: not a world scene row ({exc})") from exc
            if item_id in seen:
                raise DatasetError(f"{self.path}:{number}: duplicate id {item_id!r}")
            seen.add(item_id)
            rows.append({"id": item_id, "category": str(row.get("category") or "default"),
                         "scene": scene, "source": f"{self.path}#{item_id}"})
        return rows

    def _rows(self) -> list[dict]:
        """The file's scenes, then their near variants, then the distractors."""
        rows = self._file_rows()
        kinds: dict[str, tuple[str, str]] = {}
        if self.variants:
            for row in list(rows):
                # seeded by the scene's id, so a scene's variants do not depend on the file order
                seed = (self.seed << 32) | zlib.crc32(row["id"].encode("utf-8"))
                try:
                    made = scene_variants(row["scene"], self.variants, seed)
                except ValueError as exc:
                    raise DatasetError(f"world scene {row['id']!r}: {exc}") from exc
                for k, (kind, scene) in enumerate(made):
                    item_id = f"{row['id']}~v{k}"
                    kinds[item_id] = (row["id"], kind)
                    rows.append({"id": item_id, "category": "variant", "scene": scene,
                                 "source": f"{row['source']}~v{k}:{kind}"})
        for k in range(self.distractors):
            category = CATEGORIES[k % len(CATEGORIES)]
            seed = DISTRACTOR_SEED * (self.seed + 1) + k
            rows.append({"id": f"distractor-{k:03d}", "category": "distractor",
                         "scene": generate_scene(category, seed),
                         "source": f"repainter.bench.world.generator:generate_scene({category}, {seed})"})
        ids = [row["id"] for row in rows]
        if len(set(ids)) != len(ids):
            clash = sorted({i for i in ids if ids.count(i) > 1})
            raise DatasetError(f"{self.path}: ids of added scenes clash with the file's: {clash[:5]}")
        self._variant_kinds = kinds
        return rows

    def variant_kinds(self) -> dict[str, tuple[str, str]]:
        """Variant id -> (id of the scene it varies, kind of change); empty without variants."""
        if self.variants and not self._variant_kinds:
            self._rows()
        return dict(self._variant_kinds)

    def items(self) -> list[DatasetItem]:
        items = []
        for row in self._rows():

            def load(row=row) -> Reference:
                scene: SceneSpec = row["scene"]
                return Reference(
                    id=row["id"], image=draw(scene, self.size, self.renderer), category=row["category"],
                    ground_truth=scene.model_dump(mode="json"), source=row["source"],
                    license=self.license,
                )

            items.append(DatasetItem(id=row["id"], loader=load, category=row["category"],
                                     source=row["source"]))
        return items
