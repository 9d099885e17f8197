"""The ``folder`` dataset: every image file in a folder, sub-folder names as categories."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from repainter.datasets.base import (
    Dataset,
    DatasetError,
    DatasetItem,
    ItemError,
    refuse_duplicate_ids,
)
from repainter.images import load_image
from repainter.references import Reference
from repainter.registry import DATASETS

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


def readable(text: str) -> str:
    """``text`` with the bytes of a non-UTF-8 file name (decoded by Python as surrogates) as
    ``\\xNN`` escapes: ``latin\\xe9.png``, text that JSON and every record can hold."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _file_item(item_id: str, path: Path, category: str, license: str,
               root: Path | None = None, **extra: Any) -> DatasetItem:
    """An item for one image file; with ``root``, a file that resolves outside it (a symlink)
    fails to load."""
    source = readable(str(path))

    def load() -> Reference:
        if source != str(path):
            raise ItemError(f"{item_id}: the file name {source} is not valid UTF-8 (it cannot be "
                            "recorded as text); rename the file")
        if root is not None:
            real = path.resolve()
            if not real.is_relative_to(root):
                raise ItemError(f"{item_id}: {path} resolves to {real}, outside the dataset "
                                f"folder {root} (a symlink?); set allow_outside_root to permit it")
        return Reference(
            id=item_id, image=load_image(path), category=category, source=source,
            license=license, **extra,
        )

    return DatasetItem(id=item_id, loader=load, category=category, source=source)


@DATASETS.register("folder")
class FolderDataset(Dataset):
    """Every image file in ``path`` (sub-folder names become categories).

    Files may not leave the folder, also not through symlinks (``../outside.png``, a link to
    ``/etc/passwd``): such an item fails with the reason, unless ``allow_outside_root`` is set.
    A file whose name is not valid UTF-8 fails its item (the name says how to fix it).
    """

    def __init__(self, path: str, license: str = "", recursive: bool = True,
                 allow_outside_root: bool = False):
        self.root = Path(path)
        self.license = license
        self.allow_outside_root = bool(allow_outside_root)
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
        stems = [readable(rel.with_suffix("").as_posix()).replace("/", "__") for rel in rels]
        root = None if self.allow_outside_root else self.root.resolve()
        items = []
        for path, rel, stem in zip(files, rels, stems, strict=True):
            category = readable(rel.parts[0]) if len(rel.parts) > 1 else "default"
            # "a.png" and "a.jpg" side by side keep their suffix so that ids stay unique
            item_id = stem if stems.count(stem) == 1 else readable(rel.as_posix()).replace("/", "__")
            items.append(_file_item(item_id, path, category, self.license, root))
        # "x__y.png" and "x/y.png" both map to "x__y": a true duplicate, refused by name
        refuse_duplicate_ids([(i.id, str(rel)) for i, rel in zip(items, rels, strict=True)])
        if not items:
            raise DatasetError(f"dataset folder {self.root} holds no images "
                               f"({', '.join(sorted(IMAGE_SUFFIXES))})")
        return items

