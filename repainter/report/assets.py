"""The report's files besides its pages: thumbnails of large images and the plots.

    RUN/report/plots/*.png       matplotlib (Agg) plots
    RUN/report/thumbs/...        downscaled copies of images larger than THUMB_SOURCE_MAX
"""

from __future__ import annotations

import io
import os
import struct
from pathlib import Path, PurePosixPath
from typing import Any

from PIL import Image

from repainter.images import atomic_write_bytes
from repainter.records import CaseRecord
from repainter.report.plots import plot_categories, plot_progress
from repainter.report.tables import ReportTables

#: The report's folder inside a run folder.
REPORT_DIR = "report"
#: Images whose longer side is at most this many pixels are shown as they are; larger ones get a
#: thumbnail (JPEG, THUMB_SIZE px) under report/thumbs/.
THUMB_SOURCE_MAX = 400
THUMB_SIZE = 320


class ReportImages:
    """Relative URLs of run-folder images as seen from report/index.html, thumbnailed if big."""

    def __init__(self, run_dir: Path, report_dir: Path):
        self.run_dir = run_dir
        self.report_dir = report_dir
        self._cache: dict[str, dict[str, Any] | None] = {}

    def __call__(self, relpath: Any) -> dict[str, Any] | None:
        if not isinstance(relpath, str) or not relpath:
            return None
        if relpath not in self._cache:
            self._cache[relpath] = self._resolve(relpath)
        return self._cache[relpath]

    def _resolve(self, relpath: str) -> dict[str, Any] | None:
        parts = relpath.split("/")
        # only plain relative paths inside the run folder (records are data, not trusted URLs)
        if relpath.startswith("/") or ".." in parts or ":" in relpath or "\\" in relpath:
            return None
        # as PurePosixPath spells it, in string operations: a 5,000 x 4 report resolves 25,000
        posix = "/".join(part for part in parts if part not in ("", ".")) or "."
        path = os.path.join(self.run_dir, posix)
        size = _png_size(path)
        if size is None and not os.path.isfile(path):
            return {"src": None, "href": None, "missing": relpath}
        href = "../" + posix
        if size is not None and max(size) <= THUMB_SOURCE_MAX:  # most renders: no decoder opened
            return {"src": href, "href": href, "missing": None}
        return self._thumbnail(relpath, posix, href)

    def _thumbnail(self, relpath: str, posix: str, href: str) -> dict[str, Any]:
        """The image as shown: itself where it is small, else a thumbnail made once."""
        pure, source = PurePosixPath(posix), self.run_dir / posix
        try:
            with Image.open(source) as img:
                width, height = img.size
                if max(width, height) <= THUMB_SOURCE_MAX:
                    return {"src": href, "href": href, "missing": None}
                thumb = self.report_dir / "thumbs" / pure.with_suffix(".jpg")
                if not thumb.exists() or thumb.stat().st_mtime < source.stat().st_mtime:
                    img.load()
                    small = img.convert("RGB")
                    small.thumbnail((THUMB_SIZE, THUMB_SIZE), Image.Resampling.LANCZOS)
                    buffer = io.BytesIO()
                    small.save(buffer, format="JPEG", quality=85)
                    atomic_write_bytes(thumb, buffer.getvalue())
        except OSError:
            return {"src": None, "href": href, "missing": relpath}
        return {"src": "thumbs/" + pure.with_suffix(".jpg").as_posix(), "href": href, "missing": None}


_PNG = b"\x89PNG\r\n\x1a\n"


def _png_size(path: str) -> tuple[int, int] | None:
    """Width and height from a PNG's header (24 bytes, no decoder); None for anything else."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(24)
    except OSError:
        return None
    if len(head) < 24 or head[:8] != _PNG or head[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", head[16:24])


def write_plots(run_dir: Path, records: list[CaseRecord], models: list[str],
                tables: ReportTables) -> list[dict[str, str]]:
    """Draw the report's plots under report/plots/; return the ones drawn (src, alt)."""
    report_dir = run_dir / REPORT_DIR
    plots: list[dict[str, str]] = []

    def plotted(name: str, draw) -> bool:
        """Draw a plot, unless it was drawn after leaderboard.json was written from these very
        records (then it shows them already)."""
        path = report_dir / "plots" / name
        leaderboard_file = run_dir / "leaderboard.json"
        current = (tables.saved and path.exists()
                   and path.stat().st_mtime_ns >= leaderboard_file.stat().st_mtime_ns)
        return current or draw(path)

    if records:
        if plotted("progress.png", lambda path: plot_progress(records, models, path)):
            plots.append({"src": "plots/progress.png", "alt": "best-ever selection score per round"})
        if len(tables.category_names()) > 1 and plotted(
                "categories.png", lambda path: plot_categories(tables.categories, models, path)):
            plots.append({"src": "plots/categories.png", "alt": "final selection score by category"})
    return plots
