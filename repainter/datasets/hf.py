"""The ``hf`` dataset: a Hugging Face ``datasets`` dataset (a hub id, or ``imagefolder`` with
``data_dir``), its images decoded when an item loads (``hf`` extra)."""

from __future__ import annotations

import os
from typing import Any

from PIL import Image, ImageOps

from repainter.datasets.base import Dataset, DatasetError, DatasetItem, ItemError
from repainter.images import decode_image, load_image, to_rgb
from repainter.references import Reference
from repainter.registry import DATASETS


def _import_hf_datasets():
    """The Hugging Face ``datasets`` package (not the repository's ``datasets/`` folder)."""
    try:
        import datasets as hf
    except ImportError as exc:
        raise DatasetError("the 'hf' dataset needs Hugging Face datasets: "
                           "pip install 'repainter[hf]'") from exc
    if not hasattr(hf, "load_dataset"):  # a namespace package, e.g. ./datasets in the cwd
        raise DatasetError("the 'hf' dataset needs Hugging Face datasets: "
                           "pip install 'repainter[hf]'")
    return hf


@DATASETS.register("hf")
class HFImageDataset(Dataset):
    """A Hugging Face ``datasets`` dataset: a hub id, or ``imagefolder`` with ``data_dir``."""

    def __init__(
        self,
        path: str,
        split: str = "train",
        image_column: str = "image",
        id_column: str | None = None,
        category_column: str | None = None,
        license: str = "",
        **load_kwargs: Any,
    ):
        self.hf_path = path
        self.split = split
        self.image_column = image_column
        self.id_column = id_column
        self.category_column = category_column
        self.license = license
        self.load_kwargs = load_kwargs
        self._ds = None

    def _describe(self) -> str:
        extra = ", ".join(f"{k}={v!r}" for k, v in self.load_kwargs.items())
        return f"{self.hf_path!r} (split {self.split!r}{', ' + extra if extra else ''})"

    def _dataset(self):
        if self._ds is not None:
            return self._ds
        hf = _import_hf_datasets()
        try:
            ds = hf.load_dataset(self.hf_path, split=self.split, **self.load_kwargs)
        except Exception as exc:  # hub / network / missing files: all dataset-level
            offline = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("HF_DATASETS_OFFLINE")
            hint = (
                "Hugging Face is offline (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE is set), so only "
                "datasets already in the HF cache load; " if offline else ""
            ) + (
                f"download it once with network (python -c \"import datasets; "
                f"datasets.load_dataset({self.hf_path!r}, split={self.split!r})\"), or save the "
                "images to a folder and use path: imagefolder with data_dir: <folder>"
            )
            raise DatasetError(f"cannot load Hugging Face dataset {self._describe()}: "
                               f"{type(exc).__name__}: {exc}. {hint}") from exc
        if not hasattr(ds, "column_names") or not hasattr(ds, "__getitem__"):
            raise DatasetError(f"Hugging Face dataset {self._describe()} is not a map-style "
                               "Dataset (streaming is not supported)")
        for column in (self.image_column, self.id_column, self.category_column):
            if column and column not in ds.column_names:
                raise DatasetError(f"Hugging Face dataset {self._describe()} has no column "
                                   f"{column!r}; columns: {ds.column_names}")
        feature = ds.features.get(self.image_column)
        if isinstance(feature, hf.Image) and feature.decode:
            ds = ds.cast_column(self.image_column, hf.Image(decode=False))  # decode lazily
        if not self.license:
            self.license = str(getattr(ds.info, "license", "") or "")
        self._ds = ds
        return ds

    def _column(self, ds, name: str) -> list[Any]:
        values = list(ds[name])
        feature = ds.features.get(name)
        if hasattr(feature, "int2str"):  # ClassLabel: names instead of numbers
            values = [feature.int2str(v) if isinstance(v, int) and v >= 0 else v for v in values]
        return values

    def items(self) -> list[DatasetItem]:
        ds = self._dataset()
        n = len(ds)
        if n == 0:
            raise DatasetError(f"Hugging Face dataset {self._describe()} has no rows")
        width = max(5, len(str(n - 1)))
        ids = ([str(v) for v in self._column(ds, self.id_column)] if self.id_column
               else [f"{i:0{width}d}" for i in range(n)])
        seen: dict[str, int] = {}
        for index, item_id in enumerate(ids):
            if item_id in seen:
                raise DatasetError(f"Hugging Face dataset {self._describe()}: duplicate id "
                                   f"{item_id!r} in column {self.id_column!r} (rows "
                                   f"{seen[item_id]} and {index})")
            seen[item_id] = index
        categories = ([str(v) if v is not None else "default"
                       for v in self._column(ds, self.category_column)]
                      if self.category_column else ["default"] * n)
        source = f"hf:{self.hf_path}"
        items = []
        for index, (item_id, category) in enumerate(zip(ids, categories, strict=True)):
            items.append(DatasetItem(
                id=item_id, category=category, source=f"{source}[{self.split}][{index}]",
                loader=lambda i=index, c=category, k=item_id: self._load(i, k, c),
            ))
        return items

    def _load(self, index: int, item_id: str, category: str) -> Reference:
        value = self._dataset()[index][self.image_column]
        label = f"{item_id} ({self.hf_path}[{self.split}][{index}])"
        if isinstance(value, Image.Image):
            image = to_rgb(ImageOps.exif_transpose(value))
        elif isinstance(value, dict) and value.get("bytes"):
            image = decode_image(value["bytes"], label)
        elif isinstance(value, dict) and value.get("path"):
            image = load_image(value["path"])
        elif isinstance(value, str) and value:
            image = load_image(value)
        elif isinstance(value, bytes):
            image = decode_image(value, label)
        else:
            raise ItemError(f"{label}: column {self.image_column!r} holds no image "
                            f"({type(value).__name__})")
        return Reference(id=item_id, image=image, category=category,
                         source=f"hf:{self.hf_path}[{self.split}][{index}]", license=self.license)

