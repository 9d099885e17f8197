"""The ``folder`` dataset: every image file in a folder, sub-folder names as categories."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from repainter.datasets.base import Dataset, DatasetError, DatasetItem, refuse_duplicate_ids
from repainter.images import load_image
from repainter.references import Reference
from repainter.registry import DATASETS

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


def _file_item(item_id: str, path: Path, category: str, license: str, **extra: Any) -> DatasetItem:
    def load() -> Reference:
        return Reference(
            id=item_id, image=load_image(path), category=category, source=str(path),
            license=license, **extra,
        )

    return DatasetItem(id=item_id, loader=load, category=category, source=str(path))


@DATASETS.register("folder")
class FolderDataset(Dataset):
    """Every image file in ``path`` (sub-folder names become categories)."""

    def __init__(self, path: str, license: str = "", recursive: bool = True):
        self.root = Path(path)
        self.license = license
        if not self.root.is_dir():
            raise DatasetError(f"dataset folder {self.root} does not exist")
        self.recursive = recursive

    def items(self) -> list[DatasetItem]:
        pattern = "**/*" if self.recursive else "*"
        files = sorted(
            p for p in self.root.glob(pattern)
            if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
            and not any(part.startswith(".") for part in p.relative_to(self.root).parts)
        )
        rels = [p.relative_to(self.root) for p in files]
        stems = [rel.with_suffix("").as_posix().replace("/", "__") for rel in rels]
        items = []
        for path, rel, stem in zip(files, rels, stems, strict=True):
            category = rel.parts[0] if len(rel.parts) > 1 else "default"
            # "a.png" and "a.jpg" side by side keep their suffix so that ids stay unique
            item_id = stem if stems.count(stem) == 1 else rel.as_posix().replace("/", "__")
            items.append(_file_item(item_id, path, category, self.license))
        # "x__y.png" and "x/y.png" both map to "x__y": a true duplicate, refused by name
        refuse_duplicate_ids([(i.id, str(rel)) for i, rel in zip(items, rels, strict=True)])
        if not items:
            raise DatasetError(f"dataset folder {self.root} holds no images "
                               f"({', '.join(sorted(IMAGE_SUFFIXES))})")
        return items

