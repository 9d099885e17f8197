"""What the local weight files of a model hold, for cache keys: a replaced file is a new model.

The render and score caches key on a backend's ``identity()``. A path alone is not an identity: a
LoRA file replaced at the same path, a re-exported single-file checkpoint or an edited local
model folder would hit the old entries and return the old model's images and scores. So every
local path a component loads from is identified by its content, and every hub id by the commit
its local snapshot resolves to:

* a local file: the SHA-256 of its bytes (``{"sha256", "files": 1, "bytes"}``);
* a local folder: one SHA-256 over the sorted ``relative path, size, SHA-256`` lines of every
  file under it (hidden files and folders such as ``.git`` / ``.cache`` are left out: loaders
  never read them), with the number of files and their total size. Each file is hashed on its
  own (and memoised on its own); the identity holds the folder's digest, not one line per file,
  so that records stay small;
* a hub id: ``{"hub", "revision", "commit"}``, the commit read from the Hugging Face cache's
  ``refs`` (cheap, no network; ``None`` where the cache does not hold it).

The key holds content only: no path, inode, time or random part, so an unchanged file keeps its
key across processes and machines (a copied model still hits).

Why a memoised content hash rather than a (size, mtime, inode) fingerprint: a stat fingerprint
changes on a copy or a ``touch`` (a miss for identical weights) and can survive a replacement
(``cp -p`` keeps the mtime; a freed inode number is reused; an equal-size rewrite within one
timestamp tick keeps the mtime). A content hash has neither fault, but a multi-GB checkpoint
must not be re-read at every start (SHA-256 runs at about 1.2 GB/s: 6 s for 7 GB). So each file's
hash is memoised, in this process and in a small SQLite sidecar (``$REPAINTER_CACHE/
file-sha256.sqlite``), keyed on the file's full stat: real path, device, inode, size, mtime_ns
and ctime_ns. Any write to a file, an in-place copy, a rename onto it or a ``cp -p`` changes its
ctime, which no user call can set back, so a changed file never matches its old memo; a later run
re-reads only files whose stat changed. Two guards close the remaining gaps:

* a file whose mtime or ctime is within :data:`RACY_SECONDS` of the moment hashing began is
  hashed but not memoised (git's "racily clean" rule: a second write within the same coarse
  timestamp tick would keep the stat unchanged), so it is read again next time;
* the stat is taken again after hashing; a file that changed while it was read is hashed again.

Where the sidecar cannot be written (a read-only home), the memo stays in this process and a
warning says that files will be re-hashed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sqlite3
import threading
import time
from contextlib import closing
from pathlib import Path
from typing import Any

from repainter.weights import hf_cache_dir, looks_like_path

log = logging.getLogger(__name__)

#: A file changed less than this long before hashing began is not memoised (coarse timestamps:
#: FAT keeps 2 s, network file systems their server's clock).
RACY_SECONDS = 3.0
_HASH_TRIES = 3
_COMMIT = re.compile(r"^[0-9a-f]{40}$")

_memo: dict[tuple, str] = {}
_memo_lock = threading.Lock()
_sidecar_warned = False


def _stat_key(path: Path) -> tuple:
    """The stat fields any change of the file's content changes (real path included)."""
    real = os.path.realpath(path)
    st = os.stat(real)
    return (real, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def sidecar_path() -> Path:
    from repainter.fetch import cache_root

    return cache_root() / "file-sha256.sqlite"


def _sidecar(key: tuple, digest: str | None = None) -> str | None:
    """Read the memo of ``key`` from the sidecar, or write ``digest`` there; None on failure."""
    global _sidecar_warned
    text = json.dumps(list(key))
    try:
        path = sidecar_path()
        if digest is None and not path.is_file():
            return None  # nothing memoised yet: create nothing on a read
        path.parent.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(path, timeout=10)) as conn, conn:
            conn.execute("CREATE TABLE IF NOT EXISTS sha256 (stat TEXT PRIMARY KEY, digest TEXT)")
            if digest is None:
                row = conn.execute("SELECT digest FROM sha256 WHERE stat = ?", (text,)).fetchone()
                return row[0] if row else None
            conn.execute("INSERT OR REPLACE INTO sha256 VALUES (?, ?)", (text, digest))
            return digest
    except (OSError, sqlite3.Error) as exc:
        if not _sidecar_warned:
            _sidecar_warned = True
            log.warning("file hashes cannot be memoised on disk (%s: %s): local weight files "
                        "will be hashed again in every process", type(exc).__name__, exc)
        return None


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of a file's bytes, memoised on its stat (see the module docstring)."""
    path = Path(path)
    for _ in range(_HASH_TRIES):
        key = _stat_key(path)
        with _memo_lock:
            found = _memo.get(key)
        if found is None:
            found = _sidecar(key)
        if found is not None:
            with _memo_lock:
                _memo[key] = found
            return found
        began = time.time_ns()
        with open(key[0], "rb") as handle:
            digest = hashlib.file_digest(handle, "sha256").hexdigest()
        if _stat_key(path) != key:
            continue  # written while it was read: read it again
        if max(key[4], key[5]) < began - int(RACY_SECONDS * 1e9):
            with _memo_lock:
                _memo[key] = digest
            _sidecar(key, digest)
        return digest
    raise OSError(f"{path} kept changing while it was hashed; wait for the write to finish")


def _folder_files(folder: Path) -> list[Path]:
    """Every non-hidden file under ``folder`` (links followed, each real folder once)."""
    found: list[Path] = []
    seen: set[tuple[int, int]] = set()
    for root, dirs, files in os.walk(folder, followlinks=True):
        st = os.stat(root)
        if (st.st_dev, st.st_ino) in seen:
            dirs[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__pycache__")
        found.extend(Path(root, f) for f in sorted(files) if not f.startswith("."))
    return [f for f in found if f.is_file()]


def path_fingerprint(path: str | os.PathLike) -> dict[str, Any]:
    """Content identity of a local file or folder: ``{"sha256", "files", "bytes"}``.

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "w.bin").write_bytes(b"abc")
    >>> path_fingerprint(folder / "w.bin")["sha256"][:12]
    'ba7816bf8f01'
    >>> path_fingerprint(folder)["files"]
    1
    """
    path = Path(os.path.expanduser(os.fspath(path)))
    if path.is_file():
        return {"sha256": file_sha256(path), "files": 1, "bytes": path.stat().st_size}
    if not path.is_dir():
        raise FileNotFoundError(f"no such file or folder {str(path)!r}")
    lines, total = [], 0
    for file in _folder_files(path):
        size = file.stat().st_size
        total += size
        lines.append(f"{file.relative_to(path).as_posix()}\t{size}\t{file_sha256(file)}\n")
    digest = hashlib.sha256("".join(lines).encode()).hexdigest()
    return {"sha256": digest, "files": len(lines), "bytes": total}


# -- hub ids ------------------------------------------------------------------------------------


def _hub_cache() -> Path:
    """The hub cache folder huggingface_hub uses (the environment's, read now)."""
    named = hf_cache_dir()
    if named:
        return Path(named)
    try:  # its own default (legacy variables included), read when it was imported
        from huggingface_hub import constants

        return Path(constants.HF_HUB_CACHE)
    except ImportError:  # a base install: huggingface_hub's default layout
        pass
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "huggingface" / "hub"


def hub_commit(repo_id: str, revision: str | None = None,
               cache_dir: str | os.PathLike | None = None) -> str | None:
    """The commit a hub model at ``revision`` (default: main) resolves to in the local cache.

    >>> hub_commit("org/model", "0123456789abcdef0123456789abcdef01234567")
    '0123456789abcdef0123456789abcdef01234567'
    """
    revision = revision or "main"
    if _COMMIT.match(revision):
        return revision
    folder = Path(cache_dir) if cache_dir else _hub_cache()
    ref = folder / f"models--{repo_id.replace('/', '--')}" / "refs" / revision
    try:
        text = ref.read_text().strip()
    except OSError:
        return None
    return text if _COMMIT.match(text) else None


def hub_snapshot(path: str | os.PathLike) -> dict[str, Any] | None:
    """``{"hub", "commit"}`` of a file inside a hub cache snapshot, else None.

    >>> hub_snapshot("/c/models--org--m/snapshots/" + "a" * 40 + "/w.bin")["hub"]
    'org/m'
    """
    parts = Path(path).parts
    for i in range(len(parts) - 2):
        if parts[i].startswith("models--") and parts[i + 1] == "snapshots" \
                and _COMMIT.match(parts[i + 2]):
            return {"hub": parts[i][len("models--"):].replace("--", "/"), "commit": parts[i + 2]}
    return None


# -- what a component identifies its sources by ---------------------------------------------------


def is_local(name: str) -> bool:
    """Whether a loader takes ``name`` as a local path (rather than a hub id)."""
    return looks_like_path(name)


def local_identity(name: str, weight_name: str | None = None) -> dict[str, Any]:
    """Content identity of a local path (``weight_name``: the one file read inside a folder);
    ``{"missing": True}`` where nothing is there (the loader then raises its own error)."""
    path = Path(os.path.expanduser(name))
    if weight_name and path.is_dir():
        path = path / weight_name
    if not path.exists():
        return {"missing": True}
    ident = path_fingerprint(path)
    return {"weight_name": weight_name, **ident} if weight_name else ident


def source_identity(name: str, revision: str | None = None,
                    weight_name: str | None = None) -> dict[str, Any]:
    """What ``name`` holds: content of a local path, or the cached commit of a hub id."""
    if is_local(name):
        return local_identity(name, weight_name)
    ident: dict[str, Any] = {"hub": name, "revision": revision,
                             "commit": hub_commit(name, revision)}
    if weight_name:
        ident["weight_name"] = weight_name
    return ident


def weights_identity(sources: list[tuple[str, str | None, str | None]],
                     hub: bool) -> dict[str, dict[str, Any]]:
    """``{name: identity}`` of a component's ``(path or hub id, revision, weight_name)`` sources:
    its local ones (``hub=False``: taken before loading, so they key the per-process model cache
    too) or its hub ids (``hub=True``: read after loading, when the cache holds the snapshot)."""
    out: dict[str, dict[str, Any]] = {}
    for name, revision, weight_name in sources:
        if is_local(name) == hub:
            continue
        label = f"{name}/{weight_name}" if weight_name else name
        out[label] = source_identity(name, revision, weight_name)
    return out
