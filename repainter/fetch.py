"""Download manifest images into a local cache, verified, with a trust-on-first-use lock.

A manifest row with a ``url`` (instead of a ``path``) is downloaded once into the dataset's cache
folder and read from there afterwards. Every download is checked:

* the HTTP status must be 200 and the body no larger than ``max_bytes``;
* the body must be an image: a ``text/*`` / JSON / XML content type, an HTML document or a Git LFS
  pointer (what a wrong "blob" link or an LFS-tracked file gives) fails the item with that reason;
* when the manifest gives a ``sha256`` the file's bytes must match it;
* the checksum of what was downloaded is written to the cache's lock file (``lock.json``), and a
  cached file that no longer matches the lock (or the manifest) is reported as tampered.

Cache location: ``cache_dir`` if given, else ``$REPAINTER_CACHE/datasets/<name>``, else
``$XDG_CACHE_HOME/repainter/datasets/<name>`` (``~/.cache/repainter/...``). With
``REPAINTER_OFFLINE=1`` (or ``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE``, see
:mod:`repainter.network`) nothing is downloaded: a file missing from the cache fails its item
with a message that says how to fetch it.

``repainter.datasets.fetch_manifest`` (behind ``repainter fetch``) downloads every URL item of a
manifest ahead of a run; fetching again is a no-op that re-verifies the cached files against the
lock.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from repainter.images import atomic_write_bytes
from repainter.network import is_offline, offline_reason
from repainter.url_policy import URLRefused, check_peer, check_url, private_allowed

#: Refuse downloads larger than this (bytes); reference images are a few MB at most.
MAX_DOWNLOAD_BYTES = 100 * 1024 * 1024
DEFAULT_TIMEOUT = 60.0
LOCK_FILE = "lock.json"
LOCK_VERSION = 1
USER_AGENT = "repainter-fetch/0.1 (+https://github.com/)"

_TEXT_TYPES = ("text/", "application/json", "application/xml", "application/xhtml",
               "application/javascript")
_IMAGE_MAGIC = (
    b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*",
)
_SHA256_RE = re.compile(r"^[0-9a-fA-F]{64}$")


class DownloadError(ValueError):
    """One file could not be downloaded or verified; the message says why."""


class OfflineError(DownloadError):
    """The file is not cached and downloads are switched off."""


# -- locations and switches ------------------------------------------------------------------


def cache_root() -> Path:
    """``$REPAINTER_CACHE``, else ``$XDG_CACHE_HOME/repainter``, else ``~/.cache/repainter``."""
    if os.environ.get("REPAINTER_CACHE"):
        return Path(os.environ["REPAINTER_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "repainter"


def dataset_cache_dir(name: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """Where the downloads of dataset ``name`` live (``cache_dir`` wins when given)."""
    if cache_dir:
        return Path(cache_dir).expanduser()
    return cache_root() / "datasets" / name


def normalize_sha256(value: Any) -> str | None:
    """A manifest's ``sha256`` as lowercase hex, None when absent; ValueError when malformed."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    text = str(value).strip()
    if text.lower().startswith("sha256:"):
        text = text[7:]
    if not _SHA256_RE.match(text):
        raise ValueError(f"sha256 {value!r} is not 64 hexadecimal digits")
    return text.lower()


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def cache_file_name(item_id: str, url: str) -> str:
    """A readable, collision-free cache file name: ``<id>-<hash of url><suffix>``."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", item_id).strip("-.")[:80] or "item"
    suffix = Path(urllib.request.urlparse(url).path).suffix.lower()
    if not re.fullmatch(r"\.[a-z0-9]{1,5}", suffix):
        suffix = ""
    return f"{stem}-{hashlib.sha256(url.encode()).hexdigest()[:12]}{suffix}"


# -- the lock file ---------------------------------------------------------------------------


class ChecksumLock:
    """``<cache>/lock.json``: id -> url, sha256, size and time of the first download.

    Trust on first use: the first download of an item records its checksum; later reads verify
    the cached file against it. Writes are atomic and serialised within a process.
    """

    _mutex = threading.Lock()

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def read(self) -> dict[str, dict[str, Any]]:
        if not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise DownloadError(f"lock file {self.path} is unreadable ({exc}); delete it and "
                                "fetch again to re-trust the cached files") from exc
        items = data.get("items") if isinstance(data, dict) else None
        if not isinstance(items, dict):
            raise DownloadError(f"lock file {self.path} has no 'items' mapping")
        return items

    def get(self, item_id: str) -> dict[str, Any] | None:
        return self.read().get(item_id)

    def record(self, item_id: str, entry: dict[str, Any]) -> None:
        with self._mutex:
            items = self.read()
            items[item_id] = entry
            payload = {"version": LOCK_VERSION, "items": dict(sorted(items.items()))}
            text = json.dumps(payload, indent=2, ensure_ascii=False) + "\n"
            atomic_write_bytes(self.path, text.encode("utf-8"))


# -- downloading one URL ---------------------------------------------------------------------


def _looks_like_text(body: bytes) -> str | None:
    head = body[:512].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html", b"<head", b"<body")):
        return "an HTML page"
    if head.startswith(b"version https://git-lfs"):
        return "a Git LFS pointer file (the real file is stored in LFS)"
    if head.startswith((b"{", b"[")) and not body.startswith(_IMAGE_MAGIC):
        return "a JSON document"
    return None


def _is_image_bytes(body: bytes) -> bool:
    if body.startswith(_IMAGE_MAGIC) or (body[:4] == b"RIFF" and body[8:12] == b"WEBP"):
        return True
    try:  # anything else PIL recognises
        import io

        from PIL import Image

        with Image.open(io.BytesIO(body)) as img:
            img.verify()
        return True
    except Exception:  # noqa: BLE001 - any decoder failure means "not an image"
        return False


class _Deadline:
    """A total time limit for one download: when it passes, every socket the download opened is
    shut down, which ends any blocking read at once (a server that sends one byte a second
    never lets a per-read timeout fire)."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._guard = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()

    def watch(self, sock: socket.socket) -> None:
        with self._guard:
            self._sockets.append(sock)
            expired = self.expired
        if expired:
            self._shutdown(sock)

    def _expire(self) -> None:
        with self._guard:
            self.expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            self._shutdown(sock)

    @staticmethod
    def _shutdown(sock: socket.socket) -> None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed


def _opener(deadline: _Deadline, allow_private: bool) -> urllib.request.OpenerDirector:
    """A urllib opener whose connections register their sockets with ``deadline`` and, unless
    ``allow_private``, refuse non-public peers and redirects (see :mod:`repainter.url_policy`)."""
    checked_hosts: set[str] = set()  # the URL hosts checked: a proxy's own host is not a peer

    def watched(base: type[http.client.HTTPConnection]) -> type[http.client.HTTPConnection]:
        class Watched(base):  # type: ignore[misc, valid-type]
            def connect(self) -> None:
                super().connect()
                deadline.watch(self.sock)
                if not allow_private and self.host in checked_hosts:
                    check_peer(self.sock, self.host)

        return Watched

    class HTTP(urllib.request.HTTPHandler):
        def http_open(self, req):
            return self.do_open(watched(http.client.HTTPConnection), req)

    class HTTPS(urllib.request.HTTPSHandler):
        def https_open(self, req):
            return self.do_open(watched(http.client.HTTPSConnection), req,
                                context=self._context)

    class Redirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, req, fp, code, msg, headers, newurl):
            check_url(newurl, allow_private)  # every hop: http(s) only, a public host
            checked_hosts.add(urllib.parse.urlsplit(newurl).hostname or "")
            return super().redirect_request(req, fp, code, msg, headers, newurl)

    opener = urllib.request.build_opener(HTTP, HTTPS, Redirect)
    opener.checked_hosts = checked_hosts  # type: ignore[attr-defined]
    return opener


def download(url: str, *, timeout: float = DEFAULT_TIMEOUT, max_bytes: int = MAX_DOWNLOAD_BYTES,
             allow_private: bool = False) -> tuple[bytes, str]:
    """GET ``url``; return (body, content type) or raise DownloadError saying why not.

    ``timeout`` bounds the whole download (connection, headers and body together), not only
    each read: a server that trickles bytes cannot stretch it. Loopback, link-local and private
    hosts (also as a redirect hop) are refused unless ``allow_private`` (:mod:`repainter.url_policy`).
    """
    allow_private = private_allowed(allow_private)
    try:
        check_url(url, allow_private)
    except URLRefused as exc:
        raise DownloadError(f"{url}: refused: {exc}") from None
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT,
                                                   "Accept": "image/*,*/*;q=0.5"})
    started = time.monotonic()
    with _Deadline(timeout) as deadline:
        try:
            body, content_type = _fetch(request, url, timeout, max_bytes, deadline, allow_private)
        except DownloadError:
            raise
        except URLRefused as exc:
            raise DownloadError(f"{url}: refused: {exc}") from None
        except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
            if deadline.expired or time.monotonic() - started >= timeout:
                raise DownloadError(f"{url}: download took longer than the {timeout:g} s "
                                    "limit") from exc
            if isinstance(exc, urllib.error.HTTPError):
                raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
            reason = getattr(exc, "reason", exc)
            raise DownloadError(f"{url}: download failed ({reason})") from exc
    if len(body) > max_bytes:
        raise DownloadError(f"{url}: larger than the {max_bytes}-byte limit")
    if not body:
        raise DownloadError(f"{url}: empty response")
    if content_type.startswith(_TEXT_TYPES):
        sniffed = _looks_like_text(body) or f"a {content_type} document"
        raise DownloadError(f"{url}: served {content_type!r}, not an image ({sniffed}); "
                            "the URL probably points to a web page, not the raw file")
    sniffed = _looks_like_text(body)
    if sniffed:
        raise DownloadError(f"{url}: the response is {sniffed}, not an image")
    if not content_type.startswith("image/") and not _is_image_bytes(body):
        raise DownloadError(f"{url}: served {content_type or 'no content type'!r} and the bytes "
                            "are not a recognised image format")
    return body, content_type


def _fetch(request: urllib.request.Request, url: str, timeout: float, max_bytes: int,
           deadline: _Deadline, allow_private: bool) -> tuple[bytes, str]:
    """The response body, read in chunks until done, over ``max_bytes``, or the deadline."""
    opener = _opener(deadline, allow_private)
    opener.checked_hosts.add(urllib.parse.urlsplit(url).hostname or "")
    with opener.open(request, timeout=timeout) as response:
        status = getattr(response, "status", 200)
        if status != 200:
            raise DownloadError(f"{url}: HTTP {status}")
        content_type = (response.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        length = response.headers.get("Content-Length")
        if length and length.isdigit() and int(length) > max_bytes:
            raise DownloadError(f"{url}: {int(length)} bytes exceeds the {max_bytes}-byte limit")
        chunks, size = [], 0
        while size <= max_bytes:
            chunk = response.read(min(1 << 16, max_bytes + 1 - size))
            if deadline.expired:
                raise DownloadError(f"{url}: download took longer than the {timeout:g} s limit")
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    return b"".join(chunks), content_type


@dataclass
class CachedFile:
    path: Path
    sha256: str
    #: "cached" (verified, nothing downloaded) or "downloaded".
    status: str


def ensure_cached(
    item_id: str,
    url: str,
    cache_dir: str | os.PathLike,
    *,
    expected_sha256: str | None = None,
    allow_download: bool = True,
    force: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    max_bytes: int = MAX_DOWNLOAD_BYTES,
    fetch_hint: str = "",
    allow_private: bool = False,
) -> CachedFile:
    """Return the verified local copy of ``url``, downloading it when needed and allowed.

    The file is checked against the manifest's ``expected_sha256`` (when given) and against the
    lock's checksum from the first download (when the lock has one for this id and URL). A
    mismatch raises DownloadError and leaves the file in place for inspection.
    """
    cache_dir = Path(cache_dir)
    target = cache_dir / "files" / cache_file_name(item_id, url)
    lock = ChecksumLock(cache_dir / LOCK_FILE)
    entry = lock.get(item_id)
    if entry is not None and entry.get("url") != url:
        entry = None  # the manifest now points elsewhere: trust the new URL afresh
    locked = entry.get("sha256") if entry else None

    if target.exists() and not force:
        actual = file_sha256(target)
        _check_cached(item_id, target, actual, expected_sha256, locked, lock.path)
        if not locked:
            lock.record(item_id, _lock_entry(url, actual, target, content_type=None))
        return CachedFile(target, actual, "cached")

    if not allow_download or is_offline():
        why = (f"downloads are off ({offline_reason()})" if is_offline()
               else "downloads are off (allow_download: false)")
        hint = fetch_hint or "fetch it with network first"
        raise OfflineError(f"{item_id}: {url} is not in the cache ({target}) and {why}; {hint}")

    body, content_type = download(url, timeout=timeout, max_bytes=max_bytes,
                                  allow_private=allow_private)
    actual = hashlib.sha256(body).hexdigest()
    _check_download(item_id, url, actual, expected_sha256, locked, lock.path)
    atomic_write_bytes(target, body)
    if not locked or force:
        lock.record(item_id, _lock_entry(url, actual, target, content_type))
    return CachedFile(target, actual, "downloaded")


def _check_cached(item_id: str, target: Path, actual: str, expected: str | None,
                  locked: str | None, lock_path: Path) -> None:
    """A cached file must match the manifest's checksum and the lock's (first download's)."""
    if expected and actual != expected:
        raise DownloadError(
            f"{item_id}: cached file {target} has sha256 {actual}, but the manifest expects "
            f"{expected}; delete it and fetch again"
        )
    if locked and actual != locked:
        raise DownloadError(
            f"{item_id}: cached file {target} was modified: sha256 {actual} differs from "
            f"{locked} recorded in {lock_path} at its first download; delete the file and "
            "fetch again (or delete the lock entry to trust the new file)"
        )


def _check_download(item_id: str, url: str, actual: str, expected: str | None,
                    locked: str | None, lock_path: Path) -> None:
    """A download must match the manifest's checksum and the lock's; else it is not cached."""
    if expected and actual != expected:
        raise DownloadError(f"{item_id}: {url} has sha256 {actual}, but the manifest expects "
                            f"{expected}; not cached")
    if locked and actual != locked:
        raise DownloadError(
            f"{item_id}: {url} now has sha256 {actual}, but {lock_path} recorded {locked} at the "
            "first download; the file changed upstream (not cached; delete the lock entry to "
            "trust the new version)"
        )


def _lock_entry(url: str, sha256: str, target: Path, content_type: str | None) -> dict[str, Any]:
    return {
        "url": url,
        "sha256": sha256,
        "bytes": target.stat().st_size if target.exists() else None,
        "file": target.name,
        "content_type": content_type,
        "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


# -- fetching a whole manifest ---------------------------------------------------------------


@dataclass
class FetchedItem:
    id: str
    status: str  # "downloaded" | "cached" | "local" | "failed"
    url: str = ""
    path: str = ""
    sha256: str = ""
    error: str = ""


@dataclass
class FetchReport:
    dataset: str
    cache_dir: str
    items: list[FetchedItem] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for item in self.items if item.status == status)

    @property
    def ok(self) -> bool:
        return self.count("failed") == 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset, "cache_dir": self.cache_dir,
            "counts": {s: self.count(s) for s in ("downloaded", "cached", "local", "failed")},
            "items": [asdict(item) for item in self.items],
        }
