"""The ``world`` dataset: the bundled procedural scenes, rendered on load.

Each line of the scene file (default: the bundled ``datasets/world/scenes.jsonl``) holds an
``id``, a ``category``, the generator ``seed`` and the ``scene`` (a :class:`SceneSpec`). Loading
an item renders the scene; ``Reference.ground_truth`` is the scene as a JSON-able dict, which
ground-truth metrics such as ``object_f1`` compare against.

>>> items = WorldDataset().items()
>>> len(items) >= 24, sorted({i.category for i in items})
(True, ['crowded', 'pair', 'single', 'styled'])
>>> ref = items[0].load()
>>> ref.image.size, sorted(ref.ground_truth)
((256, 256), ['background', 'objects'])
"""

from __future__ import annotations

import json
from pathlib import Path

from repainter.backends.base import Reference
from repainter.datasets import Dataset, DatasetError, DatasetItem
from repainter.registry import DATASETS
from repainter.world.generator import default_bundle_path
from repainter.world.scene import SceneSpec, render_scene


@DATASETS.register("world")
class WorldDataset(Dataset):
    """The built-in offline world: procedural scenes with ground truth (default dataset)."""

    license = "CC0-1.0"

    def __init__(self, path: str | None = None, size: int = 256):
        self.path = Path(path) if path else default_bundle_path()
        if not self.path.is_file():
            raise DatasetError(f"world scene file {self.path} does not exist")
        if not 16 <= int(size) <= 2048:
            raise DatasetError("world size must be between 16 and 2048 pixels")
        self.size = int(size)

    def _rows(self) -> list[dict]:
        rows, seen = [], set()
        for number, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), 1):
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
                         "scene": scene})
        return rows

    def items(self) -> list[DatasetItem]:
        items = []
        for row in self._rows():
            source = f"{self.path}#{row['id']}"

            def load(row=row, source=source) -> Reference:
                scene: SceneSpec = row["scene"]
                return Reference(
                    id=row["id"], image=render_scene(scene, self.size), category=row["category"],
                    ground_truth=scene.model_dump(mode="json"), source=source,
                    license=self.license,
                )

            items.append(DatasetItem(id=row["id"], loader=load, category=row["category"],
                                     source=source))
        return items
