"""Datasets: where references come from.

A dataset lists its items cheaply (ids, categories); each item's image is loaded on demand by
``DatasetItem.load``, so one broken file fails that case alone, with its reason, and the run goes
on. Problems with the dataset as a whole (missing folder, malformed manifest, duplicate ids, no
items) raise :class:`DatasetError` when it is listed.

Built-in datasets:

* ``world``: the offline procedural world (default; :mod:`repainter.world.dataset`);
* ``folder``: every image in a folder, sub-folder names as categories;
* ``manifest``: a JSONL or CSV list of images, by local ``path`` or by ``url`` (downloaded into a
  verified cache, see :mod:`repainter.fetch`);
* ``hf``: a Hugging Face ``datasets`` dataset (hub id or a local ``imagefolder``; ``hf`` extra);
* ``evalref-100``: the reference method's 100-image evaluation set, fetched on demand from the
  bundled manifest of URLs (``repainter fetch evalref-100``).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps

from repainter.backends.base import Reference
from repainter.fetch import (
    DEFAULT_TIMEOUT,
    DownloadError,
    FetchedItem,
    FetchReport,
    dataset_cache_dir,
    ensure_cached,
    normalize_sha256,
)
from repainter.images import (
    MAX_IMAGE_BYTES,
    MAX_MANIFEST_BYTES,
    decode_image,
    load_image,
    read_bytes_limited,
    to_rgb,
)
from repainter.registry import DATASETS

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
MANIFEST_FIELDS = ("id", "path", "url", "category", "license", "sha256", "width", "height")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class DatasetError(ValueError):
    """The dataset as a whole cannot be used (missing folder, malformed manifest, no items)."""


class ItemError(ValueError):
    """One item cannot be used (raised by ``DatasetItem.load``); the message says why."""


@dataclass
class DatasetItem:
    id: str
    loader: Callable[[], Reference] = field(repr=False)
    category: str = "default"
    source: str = ""

    def load(self) -> Reference:
        """Load the reference; raises with a readable reason if it cannot be used."""
        return self.loader()


class Dataset(ABC):
    license: str = ""

    @abstractmethod
    def items(self) -> list[DatasetItem]: ...

    def select(
        self,
        categories: list[str] | None = None,
        limit: int | None = None,
        *,
        offset: int = 0,
        ids: Iterable[str] | None = None,
    ) -> list[DatasetItem]:
        """The items in ``categories`` (all when None), from ``offset``, at most ``limit``.

        ``ids`` keeps only those ids (in the dataset's order); an unknown id is an error.
        """
        every = self.items()
        refuse_duplicate_ids([(i.id, i.source) for i in every])
        chosen = [i for i in every if categories is None or i.category in categories]
        if ids is not None:
            wanted = [str(i) for i in ids]
            known = {i.id for i in chosen}
            missing = [i for i in wanted if i not in known]
            if missing:
                raise DatasetError(f"unknown item ids{' in ' + str(categories) if categories else ''}: "
                                   f"{missing[:10]}")
            keep = set(wanted)
            chosen = [i for i in chosen if i.id in keep]
        if offset < 0:
            raise DatasetError("offset must be >= 0")
        chosen = chosen[offset:]
        if not chosen:
            raise DatasetError(
                "the dataset has no items" + (f" in categories {categories}" if categories else "")
                + (f" after offset {offset}" if offset else "")
            )
        return chosen[:limit] if limit else chosen


def refuse_duplicate_ids(ids_and_sources: list[tuple[str, str]]) -> None:
    """A dataset whose items share an id would silently drop records: refuse it, naming both.

    >>> refuse_duplicate_ids([("x__y", "x__y.png"), ("x__y", "x/y.png")])
    Traceback (most recent call last):
    ...
    repainter.datasets.DatasetError: duplicate item id 'x__y' (x__y.png and x/y.png); rename one
    """
    seen: dict[str, str] = {}
    for item_id, source in ids_and_sources:
        if item_id in seen:
            raise DatasetError(f"duplicate item id {item_id!r} ({seen[item_id]} and {source}); "
                               "rename one")
        seen[item_id] = source


# Kept under its old name for callers of repainter.datasets.
decode_image_bytes = decode_image


def _file_item(item_id: str, path: Path, category: str, license: str, **extra: Any) -> DatasetItem:
    def load() -> Reference:
        return Reference(
            id=item_id, image=load_image(path), category=category, source=str(path),
            license=license, **extra,
        )

    return DatasetItem(id=item_id, loader=load, category=category, source=str(path))


# -- folder ----------------------------------------------------------------------------------


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


# -- manifest --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ManifestEntry:
    """One validated manifest row."""

    id: str
    row: int
    category: str = "default"
    license: str = ""
    path: Path | None = None  # lexically normalised, not yet resolved through symlinks
    url: str = ""
    sha256: str | None = None
    width: int | None = None
    height: int | None = None
    #: Preceding story steps (GILL / VIST): ({"path": Path | None, "text": str}, ...).
    context: tuple[dict[str, Any], ...] = ()


def _text(value: Any, name: str, where: str) -> str:
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise DatasetError(f"{where}: {name!r} must be a string, not {type(value).__name__}")
    return str(value).strip()


def _dimension(value: Any, name: str, where: str) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number) or number != int(number) or number < 1:
        raise DatasetError(f"{where}: {name!r} must be a positive integer, not {value!r}")
    return int(number)


def _read_item(item_id: str, path: Path) -> bytes:
    """An item's file, its size checked before it is read (the failure is the item's)."""
    try:
        return read_bytes_limited(path, MAX_IMAGE_BYTES)
    except OSError as exc:
        raise ItemError(f"{item_id}: {exc}") from exc


@DATASETS.register("manifest")
class ManifestDataset(Dataset):
    """A JSONL or CSV manifest of images by local ``path`` or by ``url``.

    Columns: ``id``, ``path`` (relative to the manifest) or ``url`` (http/https, downloaded into
    ``cache_dir``), and optionally ``category``, ``license``, ``sha256`` (of the file's bytes),
    ``width`` and ``height``. Paths may not leave the manifest's folder, also not through
    symlinks, unless ``allow_outside_root`` is set.
    """

    def __init__(
        self,
        path: str,
        license: str = "",
        allow_outside_root: bool = False,
        cache_dir: str | None = None,
        allow_download: bool = True,
        timeout: float = DEFAULT_TIMEOUT,
        cache_name: str | None = None,
    ):
        self.path = Path(path).expanduser()
        self.license = license
        self.allow_outside_root = bool(allow_outside_root)
        self.allow_download = bool(allow_download)
        self.timeout = float(timeout)
        if not self.path.is_file():
            raise DatasetError(f"manifest {self.path} does not exist")
        self.root = self.path.parent.resolve()
        if cache_name is None:
            digest = hashlib.sha256(str(self.path.resolve()).encode()).hexdigest()[:10]
            folder = re.sub(r"[^A-Za-z0-9._-]+", "-", self.root.name).strip("-.") or "manifest"
            cache_name = f"manifest-{folder}-{digest}"
        self.cache_dir = dataset_cache_dir(cache_name, cache_dir)
        self.fetch_hint = f"run `repainter fetch {self.path}` with network access"

    # -- parsing ---------------------------------------------------------------------------

    def _rows(self) -> list[tuple[int, dict[str, Any]]]:
        try:
            text = read_bytes_limited(self.path, MAX_MANIFEST_BYTES).decode("utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise DatasetError(f"cannot read manifest {self.path}: {exc}") from exc
        if self.path.suffix.lower() == ".csv":
            try:
                reader = csv.DictReader(io.StringIO(text, newline=""))
                if reader.fieldnames is None:
                    return []
                fields = [f.strip() if f else f for f in reader.fieldnames]
                if "id" not in fields:
                    raise DatasetError(f"{self.path}: the CSV header needs an 'id' column "
                                       f"(has {fields})")
                reader.fieldnames = fields
                return [(reader.line_num, row) for row in reader
                        if any((v or "").strip() for k, v in row.items() if k is not None)]
            except csv.Error as exc:
                raise DatasetError(f"{self.path}: malformed CSV ({exc})") from exc
        rows = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{self.path}:{number}: not JSON ({exc.msg})") from exc
            if not isinstance(row, dict):
                raise DatasetError(f"{self.path}:{number}: each line must be a JSON object")
            rows.append((number, row))
        return rows

    def _resolve_path(self, rel: str, where: str) -> Path:
        if "\x00" in rel:
            raise DatasetError(f"{where}: path contains a NUL byte")
        candidate = Path(rel)  # no ~ expansion: "~x" is a file name here
        joined = Path(os.path.normpath(candidate if candidate.is_absolute() else self.root / candidate))
        if not self.allow_outside_root and not joined.is_relative_to(self.root):
            raise DatasetError(f"{where}: path {rel!r} leaves the manifest folder {self.root} "
                               "(set allow_outside_root to permit it)")
        if joined == self.root:
            raise DatasetError(f"{where}: path {rel!r} names the manifest folder, not a file")
        return joined

    def entries(self) -> list[ManifestEntry]:
        """Parse and validate every row; raises DatasetError for a malformed manifest."""
        entries: list[ManifestEntry] = []
        seen: dict[str, int] = {}
        for number, row in self._rows():
            where = f"{self.path}:{number}"
            item_id = _text(row.get("id"), "id", where)
            rel = _text(row.get("path"), "path", where)
            url = _text(row.get("url"), "url", where)
            if not item_id:
                raise DatasetError(f"{where}: the row needs an 'id'")
            if _CONTROL.search(item_id) or len(item_id) > 200:
                raise DatasetError(f"{where}: id {item_id!r} has control characters or is longer "
                                   "than 200 characters")
            if item_id in seen:
                raise DatasetError(f"{self.path}: duplicate id {item_id!r} (rows {seen[item_id]} "
                                   f"and {number})")
            seen[item_id] = number
            if bool(rel) == bool(url):
                raise DatasetError(f"{where}: row {item_id!r} needs exactly one of 'path' or 'url'")
            path = self._resolve_path(rel, where) if rel else None
            if url and (_CONTROL.search(url) or not re.match(r"^https?://[^/\s]+", url, re.IGNORECASE)):
                raise DatasetError(f"{where}: url {url!r} must be an http(s) URL")
            try:
                sha256 = normalize_sha256(row.get("sha256"))
            except ValueError as exc:
                raise DatasetError(f"{where}: {exc}") from exc
            entries.append(ManifestEntry(
                id=item_id, row=number,
                category=_text(row.get("category"), "category", where) or "default",
                license=_text(row.get("license"), "license", where) or self.license,
                path=path, url=url, sha256=sha256,
                width=_dimension(row.get("width"), "width", where),
                height=_dimension(row.get("height"), "height", where),
                context=self._context(row.get("context"), where),
            ))
        if not entries:
            raise DatasetError(f"manifest {self.path} lists no images")
        return entries

    def _context(self, value: Any, where: str) -> tuple[dict[str, Any], ...]:
        """A story's earlier steps: a list of {"path": image (optional), "text": caption}."""
        if value is None:
            return ()
        if not isinstance(value, list):
            raise DatasetError(f"{where}: 'context' must be a list of {{path, text}} steps")
        steps = []
        for i, step in enumerate(value):
            if not isinstance(step, dict):
                raise DatasetError(f"{where}: context step {i} must be an object")
            rel = _text(step.get("path"), "context path", where)
            text = _text(step.get("text"), "context text", where)
            if not rel and not text:
                raise DatasetError(f"{where}: context step {i} needs 'path' or 'text'")
            steps.append({"path": self._resolve_path(rel, where) if rel else None, "text": text})
        return tuple(steps)

    def items(self) -> list[DatasetItem]:
        items = []
        for entry in self.entries():
            source = entry.url or str(entry.path)
            items.append(DatasetItem(id=entry.id, loader=lambda e=entry: self.load_entry(e),
                                     category=entry.category, source=source))
        return items

    # -- loading one item ------------------------------------------------------------------

    def local_file(self, entry: ManifestEntry) -> tuple[Path, bytes]:
        """The verified local file of ``entry`` and its bytes (downloading a URL item if needed)."""
        if entry.url:
            cached = ensure_cached(
                entry.id, entry.url, self.cache_dir, expected_sha256=entry.sha256,
                allow_download=self.allow_download, timeout=self.timeout,
                fetch_hint=self.fetch_hint,
            )
            data = _read_item(entry.id, cached.path)
            if hashlib.sha256(data).hexdigest() != cached.sha256:
                raise ItemError(f"{entry.id}: {cached.path} changed while it was read")
            return cached.path, data
        assert entry.path is not None
        real = entry.path.resolve()
        if not self.allow_outside_root and not real.is_relative_to(self.root):
            raise ItemError(f"{entry.id}: {entry.path} resolves to {real}, outside the manifest "
                            f"folder {self.root} (a symlink?); set allow_outside_root to permit it")
        if not real.is_file():
            problem = "is not a regular file" if real.exists() else "not found"
            raise ItemError(f"{entry.id}: {entry.path} {problem} (row {entry.row} of {self.path})")
        data = _read_item(entry.id, real)
        if entry.sha256:
            actual = hashlib.sha256(data).hexdigest()
            if actual != entry.sha256:
                raise ItemError(f"{entry.id}: sha256 mismatch for {entry.path}: the file has "
                                f"{actual}, the manifest expects {entry.sha256}")
        return real, data

    def load_entry(self, entry: ManifestEntry) -> Reference:
        path, data = self.local_file(entry)
        image = decode_image_bytes(data, f"{entry.id} ({path})")
        if entry.width and entry.height and sorted(image.size) != sorted((entry.width, entry.height)):
            raise ItemError(f"{entry.id}: image is {image.size[0]}x{image.size[1]}, the manifest "
                            f"says {entry.width}x{entry.height}")
        context = []
        for step in entry.context:  # earlier story images obey the same path rules
            if step["path"] is not None:
                step_entry = ManifestEntry(id=f"{entry.id} (context)", row=entry.row, path=step["path"])
                step_path, step_data = self.local_file(step_entry)
                context.append({"image": decode_image_bytes(step_data, f"{entry.id} context ({step_path})"),
                                "text": step["text"]})
            else:
                context.append({"text": step["text"]})
        return Reference(id=entry.id, image=image, category=entry.category,
                         source=entry.url or str(entry.path), license=entry.license,
                         context=context)


# -- EvalRef-100 -----------------------------------------------------------------------------


EVALREF_LICENSE = "CC-BY-NC-4.0"


def evalref100_manifest() -> Path:
    from repainter.resources import resource_dir

    return resource_dir("datasets") / "evalref100" / "manifest.jsonl"


@DATASETS.register("evalref-100")
class EvalRef100Dataset(ManifestDataset):
    """EvalRef-100 (ImageRepainter, AAAI 2025): 100 images, fetched into the cache on demand."""

    categories = ("portrait", "object", "scene", "complex")

    def __init__(self, cache_dir: str | None = None, allow_download: bool = True,
                 timeout: float = DEFAULT_TIMEOUT, manifest: str | None = None):
        super().__init__(str(manifest or evalref100_manifest()), license=EVALREF_LICENSE,
                         cache_dir=cache_dir, allow_download=allow_download, timeout=timeout,
                         cache_name="evalref-100")
        self.fetch_hint = "run `repainter fetch evalref-100` with network access"


# -- Hugging Face datasets -------------------------------------------------------------------


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
            image = decode_image_bytes(value["bytes"], label)
        elif isinstance(value, dict) and value.get("path"):
            image = load_image(value["path"])
        elif isinstance(value, str) and value:
            image = load_image(value)
        elif isinstance(value, bytes):
            image = decode_image_bytes(value, label)
        else:
            raise ItemError(f"{label}: column {self.image_column!r} holds no image "
                            f"({type(value).__name__})")
        return Reference(id=item_id, image=image, category=category,
                         source=f"hf:{self.hf_path}[{self.split}][{index}]", license=self.license)


def load_dataset(name: str, params: dict[str, Any] | None = None) -> Dataset:
    return DATASETS.create(name, **(params or {}))


# -- fetching a whole manifest dataset ahead of a run (`repainter fetch`) ----------------------


def fetch_manifest(
    manifest: str | os.PathLike,
    cache_dir: str | os.PathLike | None = None,
    *,
    force: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    on_item: Callable[[FetchedItem], None] | None = None,
    **dataset_params: Any,
) -> FetchReport:
    """Download (or re-verify) every URL item of a manifest into its cache."""
    dataset = ManifestDataset(str(manifest), cache_dir=cache_dir, timeout=timeout, **dataset_params)
    return fetch_dataset_items(dataset, force=force, on_item=on_item)


def fetch_dataset(
    name: str,
    cache_dir: str | os.PathLike | None = None,
    *,
    force: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    on_item: Callable[[FetchedItem], None] | None = None,
) -> FetchReport:
    """Fetch a registered manifest dataset by name (``evalref-100``) or a manifest file path."""
    from repainter.registry import DATASETS

    if name in DATASETS:
        factory = DATASETS.get(name)
        if not (isinstance(factory, type) and issubclass(factory, ManifestDataset)):
            raise DatasetError(f"dataset {name!r} has nothing to fetch (not a manifest dataset); "
                               "give a manifest file instead")
        params: dict[str, Any] = {"timeout": timeout}
        if cache_dir:
            params["cache_dir"] = str(cache_dir)
        return fetch_dataset_items(load_dataset(name, params), force=force, on_item=on_item)
    if Path(name).is_file():
        return fetch_manifest(name, cache_dir, force=force, timeout=timeout, on_item=on_item)
    raise DatasetError(f"unknown dataset {name!r}: give a registered manifest dataset "
                       "(evalref-100) or the path of a manifest file")


def fetch_dataset_items(dataset, *, force: bool = False,
                        on_item: Callable[[FetchedItem], None] | None = None) -> FetchReport:
    report = FetchReport(dataset=str(dataset.path), cache_dir=str(dataset.cache_dir))
    for entry in dataset.entries():
        if entry.url:
            try:
                cached = ensure_cached(
                    entry.id, entry.url, dataset.cache_dir, expected_sha256=entry.sha256,
                    allow_download=dataset.allow_download, force=force, timeout=dataset.timeout,
                    fetch_hint=dataset.fetch_hint,
                )
                item = FetchedItem(entry.id, cached.status, entry.url, str(cached.path),
                                   cached.sha256)
            except DownloadError as exc:
                item = FetchedItem(entry.id, "failed", entry.url, error=str(exc))
        else:
            item = FetchedItem(entry.id, "local", path=str(entry.path))
        report.items.append(item)
        if on_item:
            on_item(item)
    return report
