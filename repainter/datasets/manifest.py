"""The ``manifest`` dataset: a JSONL or CSV list of images by local ``path`` (kept inside the
manifest's folder) or by ``url`` (downloaded into a verified cache, :mod:`repainter.fetch`),
each row validated when the dataset is listed and each file checked when its item loads.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from repainter.datasets.base import Dataset, DatasetError, DatasetItem, ItemError
from repainter.fetch import DEFAULT_TIMEOUT, dataset_cache_dir, ensure_cached, normalize_sha256
from repainter.images import MAX_IMAGE_BYTES, MAX_MANIFEST_BYTES, decode_image, read_bytes_limited
from repainter.references import Reference
from repainter.registry import DATASETS

MANIFEST_FIELDS = ("id", "path", "url", "category", "license", "sha256", "width", "height")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


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
    symlinks, unless ``allow_outside_root`` is set. URLs on loopback, link-local or private
    addresses (also as a redirect hop) are refused unless ``allow_private_urls`` is set
    (:mod:`repainter.url_policy`).
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
        allow_private_urls: bool = False,
    ):
        self.path = Path(path).expanduser()
        self.license = license
        self.allow_outside_root = bool(allow_outside_root)
        self.allow_download = bool(allow_download)
        self.allow_private_urls = bool(allow_private_urls)
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
                fetch_hint=self.fetch_hint, allow_private=self.allow_private_urls,
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
        image = decode_image(data, f"{entry.id} ({path})")
        if entry.width and entry.height and sorted(image.size) != sorted((entry.width, entry.height)):
            raise ItemError(f"{entry.id}: image is {image.size[0]}x{image.size[1]}, the manifest "
                            f"says {entry.width}x{entry.height}")
        context = []
        for step in entry.context:  # earlier story images obey the same path rules
            if step["path"] is not None:
                step_entry = ManifestEntry(id=f"{entry.id} (context)", row=entry.row, path=step["path"])
                step_path, step_data = self.local_file(step_entry)
                context.append({"image": decode_image(step_data, f"{entry.id} context ({step_path})"),
                                "text": step["text"]})
            else:
                context.append({"text": step["text"]})
        return Reference(id=entry.id, image=image, category=entry.category,
                         source=entry.url or str(entry.path), license=entry.license,
                         context=context)

