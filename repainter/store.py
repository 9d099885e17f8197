"""The run folder: the one place a run's files are laid out, all written atomically.

    RUN/
      spec.yaml                    the run spec (reproduce with: repainter run --spec RUN/spec.yaml)
      run.json                     status, versions, timings, counts, backend usage
      checkpoints.sqlite           LangGraph checkpoints: an interrupted case resumes from here
      references/<case>.png        each reference as the loop saw it
      descriptions/<case>.json     the MLLM's Image Understanding Tree, shared by all models
      images/<model>/<case>/r<round>_v<variant>.png
      cases/<model>/<case>.json    the full record of one case x model (repainter.records.CaseRecord)
      results.jsonl                one line per case x model (rebuilt from the records)
      cases.index                  a cache of the records' summaries (repainter.record_index)
      leaderboard.{json,csv,md}
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from PIL import Image
from pydantic import ValidationError

from repainter.images import atomic_write_bytes, fsync_folder, make_durable, png_bytes
from repainter.records.base import RecordVersionError, dump_record, finite_or_none, load_record
from repainter.records.case import CaseRecord, ResultLine, load_case_record
from repainter.records.run_info import RunInfo
from repainter.spec import RunSpec, SpecError, build_spec, load_run_spec, strategy_change_hint
from repainter.writer import BackgroundWriter

logger = logging.getLogger(__name__)

SPEC_FILE = "spec.yaml"
LOCK_FILE = ".repainter.lock"


class RunFolderError(RuntimeError):
    """The run folder cannot be used for this spec."""


class RunFolderBusyError(RunFolderError):
    """Another process is writing to the run folder."""


# Run folders this process holds, with how many nested writers hold each: a run writes its report
# under the same lock, so the lock is re-entrant within one process.
_HELD: dict[str, list[Any]] = {}
_HELD_GUARD = threading.Lock()


@contextmanager
def run_folder_lock(root: str | Path, command: str, *, create: bool = True) -> Iterator[None]:
    """Hold the run folder for one writing command (run, compare, rescore, report ...).

    An exclusive ``flock`` on ``RUN/.repainter.lock``, taken without waiting: a second writer is
    refused with the holder's pid and command. The operating system drops the lock when its
    process dies, so a crashed or killed run never leaves a stale lock behind. Without ``fcntl``
    (Windows) no lock is taken. With ``create=False`` a missing folder is not created (the
    command then reports it is no run folder).
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    root = Path(root)
    key = str(root.resolve())
    with _HELD_GUARD:
        held = _HELD.get(key)
        if held is not None:
            held[1] += 1
    if held is not None:
        try:
            yield
        finally:
            with _HELD_GUARD:
                held[1] -= 1
        return
    if not root.is_dir() and not create:
        yield
        return
    root.mkdir(parents=True, exist_ok=True)
    handle = open(root / LOCK_FILE, "a+", encoding="utf-8")  # noqa: SIM115 - held until release
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise RunFolderBusyError(
            f"{root} is in use by {holder}; wait until it finishes (two writers would corrupt "
            "run.json and the results), or use another output folder") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} ({command}: {' '.join(sys.argv[:3])})\n")
    handle.flush()
    entry = [handle, 1]
    with _HELD_GUARD:
        _HELD[key] = entry
    try:
        yield
    finally:
        with _HELD_GUARD:
            entry[1] -= 1
            if entry[1] == 0:
                del _HELD[key]
                handle.truncate(0)
                handle.close()  # closing drops the flock


#: Longest file-name stem a slug may take (file systems allow 255 bytes per name; suffixes such
#: as ``.json`` and ``.tmp`` temp names must still fit).
MAX_SLUG_CHARS = 120
_SAFE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")


def slug(text: str) -> str:
    """An injective, file-name-safe form of a model label or case id (stable, readable).

    A name that is already safe (ASCII letters, digits, ``._-``, not starting with ``.`` or
    ``-``, at most :data:`MAX_SLUG_CHARS` characters) is kept as it is, so existing run folders
    stay readable. Any other becomes a readable part plus ``~`` and a short hash of the whole
    name: ``~`` never occurs in a kept name, so two different names never share a file.

    >>> slug("case_01.png")
    'case_01.png'
    >>> slug("a b"), slug("a/b"), slug("a-b")
    ('a-b~c8687a08aa', 'a-b~c14cddc033', 'a-b')
    >>> slug("猫") != slug("犬")
    True
    >>> len(slug("x" * 240)) <= MAX_SLUG_CHARS
    True
    """
    if len(text) <= MAX_SLUG_CHARS and _SAFE.fullmatch(text) and not text.endswith("."):
        return text
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    readable = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")[: MAX_SLUG_CHARS - 11]
    return f"{readable.rstrip('-.') or '_'}~{digest}"


def check_distinct_names(kind: str, names: list[str]) -> None:
    """Refuse names that would share a file: true duplicates, or names whose file names differ
    only in letter case (one file on case-insensitive file systems).

    >>> check_distinct_names("case id", ["a", "b"])
    >>> check_distinct_names("case id", ["Cat", "cat"])
    Traceback (most recent call last):
    ...
    repainter.store.RunFolderError: case ids 'Cat' and 'cat' would share a file name ('cat'); rename one
    """
    seen: dict[str, str] = {}
    for name in names:
        key = slug(name).casefold()
        if key in seen:
            other = seen[key]
            problem = f"{kind}s {other!r} and {name!r} would share a file name ({key!r})"
            if other == name:
                problem = f"{kind} {name!r} is given twice"
            raise RunFolderError(f"{problem}; rename one")
        seen[key] = name


def json_safe(data: Any) -> Any:
    """``data`` with every non-finite float (NaN, inf) as None, for statistics: a statistic over
    an empty set (two models sharing no finished case) is "no value", not a crash. Records keep
    refusing non-finite numbers (:func:`write_json`): there one means a bug upstream.

    >>> json_safe({"p": float("nan"), "xs": [1.0, float("inf")], "n": 3})
    {'p': None, 'xs': [1.0, None], 'n': 3}
    """
    if isinstance(data, float):
        return finite_or_none(data)
    if isinstance(data, dict):
        return {k: json_safe(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [json_safe(v) for v in data]
    return data


def json_bytes(data: Any) -> bytes:
    text = json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False, default=str)
    return (text + "\n").encode("utf-8")


def write_json(path: Path, data: Any) -> None:
    atomic_write_bytes(path, json_bytes(data))


def read_json(path: Path) -> Any:
    return _loads(path.read_bytes())


try:  # orjson (already installed with langgraph) parses records about 2.5x faster
    from orjson import loads as _loads
except ImportError:  # pragma: no cover
    _loads = json.loads


#: Names a run writes at the top of its folder: a folder holding only these is repainter's own.
RUN_FOLDER_NAMES = frozenset({
    SPEC_FILE, "run.json", LOCK_FILE, "checkpoints.sqlite", "checkpoints.sqlite-wal",
    "checkpoints.sqlite-shm", "references", "descriptions", "images", "cases", "results.jsonl",
    "leaderboard.json", "leaderboard.csv", "leaderboard.md", "leaderboard.tex", "report", "logs",
    "cache.sqlite", "validity.json", "seeds.json", "compare.json", "cases.index",
    "sanity.json", "SANITY.md", "sanity",  # repainter sanity (repainter/sanity/)
})


def foreign_entries(root: Path, allowed: frozenset[str] = frozenset({LOCK_FILE})) -> list[str]:
    """Names at the top of ``root`` that are not in ``allowed`` (none: missing or empty)."""
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.name not in allowed)


def refuse_blank_output_dir(output_dir: str | Path, what: str = "output_dir") -> None:
    """An empty ``output_dir`` would mean the current folder: refuse it (say ``.`` for that).

    >>> refuse_blank_output_dir(" ")
    Traceback (most recent call last):
    ...
    repainter.store.RunFolderError: output_dir is empty; name a folder (or "." for the current one)
    """
    if not str(output_dir).strip():
        raise RunFolderError(f'{what} is empty; name a folder (or "." for the current one)')


def is_run_folder(root: str | Path) -> bool:
    """Whether ``root`` is a folder a repainter run made: it holds ``spec.yaml`` and either a
    ``run.json`` that repainter wrote (it names a version or a spec fingerprint) or nothing but
    the files a run writes. A ``spec.yaml`` among the user's own files does not make one."""
    root = Path(root)
    if not (root / SPEC_FILE).is_file():
        return False
    if started_by_a_run(root):
        return True
    # an interrupted seeds run: spec.yaml and its seed-<s>/ run folders, no run.json yet
    return all(re.fullmatch(r"seed-\d+", name) and is_run_folder(root / name)
               for name in foreign_entries(root, RUN_FOLDER_NAMES))


def started_by_a_run(root: Path) -> bool:
    """Whether ``root`` holds a ``run.json`` a run wrote (it names a version or a fingerprint)."""
    try:
        info = read_json(root / "run.json")
    except (OSError, ValueError):
        return False
    return isinstance(info, dict) and ("repainter_version" in info or "spec_fingerprint" in info)


def refuse_foreign_folder(root: Path) -> None:
    """Refuse to start a run in an existing folder that holds something other than a run.

    A run writes many files into its folder; pointed (``-o``) at a folder of the user's own
    files it would overwrite them. An empty folder, one holding only the lock, or a run folder
    (:func:`is_run_folder`) is fine.
    """
    if not root.exists():
        return
    if not root.is_dir():
        raise RunFolderError(f"{root} exists and is not a folder; choose another output folder")
    others = foreign_entries(root)
    if others and not is_run_folder(root):
        shown = ", ".join(others[:5]) + (" ..." if len(others) > 5 else "")
        raise RunFolderError(
            f"{root} is not empty and is not a repainter run folder (no {SPEC_FILE} and "
            f"run.json written by repainter; it holds {shown}); refusing to write into it: "
            "choose a new or empty output folder")


class RunStore:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        #: Case record files found unreadable (corrupt JSON, not a record, an invalid or newer
        #: record), relative paths; :attr:`unreadable_reasons` says why for each.
        self.unreadable: list[str] = []
        self.unreadable_reasons: dict[str, str] = {}
        #: While a run executes (:meth:`writing_in_background`): the thread that writes its
        #: case files; None: every write is made, durably, before the call returns.
        self.writer: BackgroundWriter | None = None
        self._unsynced: dict[str, list[Path]] = {}  # case id -> its files not fsynced yet
        self._queued_records: dict[tuple[str, str], CaseRecord] = {}

    # -- writing in the background ---------------------------------------------------------

    @contextmanager
    def writing_in_background(self) -> Iterator[BackgroundWriter]:
        """Case files (renders, references, descriptions, records) are written by a background
        thread while this holds (:mod:`repainter.writer`); on exit everything queued is written,
        and a write that failed is raised (unless the body is already raising)."""
        writer = self.writer = BackgroundWriter()
        try:
            yield writer
        except BaseException:
            self.writer = None
            try:
                writer.close()
            except Exception as exc:  # noqa: BLE001 - the body's error is the one to report
                logger.error("%s", exc)
            raise
        self.writer = None
        writer.close()

    def settle(self, relative: str) -> None:
        """Wait until the file ``relative`` (run-folder path) is written, if it is queued."""
        if self.writer is not None:
            self.writer.settle(str(self.root / relative))

    def _write_case_file(self, path: Path, encode, case_id: str) -> None:
        """Write ``encode()`` to ``path``: queued without fsync while a writer runs (made
        durable when the case's record is committed), else at once and durably."""
        if self.writer is None:
            atomic_write_bytes(path, encode())
            return

        def job() -> None:  # runs in the writer thread, the only one touching _unsynced
            atomic_write_bytes(path, encode(), durable=False)
            self._unsynced.setdefault(case_id, []).append(path)

        self.writer.submit([str(path)], job)

    def save_render(self, relative: str, image: Image.Image, case_id: str) -> None:
        """Store a render as PNG (encoded in the writer thread when one runs)."""
        self._write_case_file(self.root / relative, lambda: png_bytes(image), case_id)

    # -- spec ------------------------------------------------------------------------------

    def init(self, spec: RunSpec) -> bool:
        """Create the folder for ``spec``; return True when it resumes an earlier run of it."""
        existing = self.root / SPEC_FILE
        refuse_foreign_folder(self.root)  # a spec.yaml among the user's files: not ours
        if existing.exists():
            previous = load_run_spec(existing)
            if previous.fingerprint() == spec.fingerprint():
                if previous != spec:  # only runtime settings differ: keep the file current
                    atomic_write_bytes(existing, spec.to_yaml().encode("utf-8"))
                # a folder set up without a case (repainter sanity first) resumes no run
                return self.has_cases() or self.checkpoint_path.exists()
            if spec.extends(previous):  # models added to a comparison: only they run
                atomic_write_bytes(existing, spec.to_yaml().encode("utf-8"))
                return True
            if not self.has_cases() and not self.checkpoint_path.exists():
                if not started_by_a_run(self.root):  # the user's own file: never overwritten
                    raise RunFolderError(
                        f"{self.root} holds a {SPEC_FILE} of another spec that no run started "
                        "from (your own file?); refusing to overwrite it: choose another "
                        "output folder")
                # a start that failed before any case ran: the folder holds nothing to keep
                atomic_write_bytes(existing, spec.to_yaml().encode("utf-8"))
                return False
            raise RunFolderError(
                f"{self.root} holds a run of a different spec "
                f"({previous.fingerprint()} vs {spec.fingerprint()}){strategy_change_hint(previous, spec)}; "
                "choose another output_dir, or delete the folder to start over"
            )
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(existing, spec.to_yaml().encode("utf-8"))
        return False

    def with_rescored_metrics(self, spec: RunSpec) -> RunSpec:
        """``spec`` plus the metrics ``repainter rescore`` added to this folder's run, where the
        folder's spec is exactly that: the original command then resumes its rescored run (and
        scores the cases still to run with the added metrics too). A rescore that changed the
        selection (``--reselect``) changed what the run chose: then ``spec`` is returned as it
        is, and only ``--spec RUN/spec.yaml`` resumes."""
        path = self.root / SPEC_FILE
        rescored = self.read_run_info().rescored if (self.root / "run.json").exists() else None
        if not rescored or not path.exists() or any(e.get("reselect") for e in rescored):
            return spec
        previous = load_run_spec(path)
        added = {label for entry in rescored for label in entry.get("metrics") or []}
        own = {m.display_name for m in spec.metrics}
        extra = [m for m in previous.metrics if m.display_name in added - own]
        if previous.fingerprint() == spec.fingerprint() or not extra:
            return spec
        data = spec.model_dump(mode="json")
        data["metrics"] = data["metrics"] + [m.model_dump(mode="json") for m in extra]
        try:
            merged = build_spec(data)
        except SpecError:
            return spec
        if merged.fingerprint() != previous.fingerprint():
            return spec
        logger.warning("%s was rescored with %s: resuming it with those metrics added", self.root,
                       ", ".join(m.display_name for m in extra))
        return merged

    def has_cases(self) -> bool:
        """Whether any case of this folder's run has a record (done or failed)."""
        return any((self.root / "cases").glob("*/*.json"))

    @property
    def checkpoint_path(self) -> Path:
        return self.root / "checkpoints.sqlite"

    # -- references and descriptions -------------------------------------------------------

    def reference_relpath(self, case_id: str) -> str:
        return f"references/{slug(case_id)}.png"

    def save_reference(self, case_id: str, image: Image.Image) -> None:
        path = self.root / self.reference_relpath(case_id)
        if self.writer is not None and self.writer.pending(str(path)):
            return
        if not path.exists():
            self._write_case_file(path, lambda: png_bytes(image), case_id)

    def description_relpath(self, case_id: str) -> str:
        return f"descriptions/{slug(case_id)}.json"

    def forget_reference(self, case_id: str) -> None:
        """Drop a case's saved reference and shared description (its reference changed)."""
        for relative in (self.reference_relpath(case_id), self.description_relpath(case_id)):
            self.settle(relative)
            (self.root / relative).unlink(missing_ok=True)

    def _description_path(self, case_id: str) -> Path:
        return self.root / self.description_relpath(case_id)

    def load_description(self, case_id: str) -> dict[str, Any] | None:
        self.settle(self.description_relpath(case_id))
        path = self._description_path(case_id)
        return read_json(path) if path.exists() else None

    def save_description(self, case_id: str, iut: dict[str, Any]) -> None:
        self._write_case_file(self._description_path(case_id), lambda: json_bytes(iut), case_id)

    #: Pixel hashes of local reference files by (path, size, mtime): a re-run checks that no
    #: finished case's reference changed with one ``stat`` per file, not one image decode.
    SOURCE_DIGESTS = "references/.source-digests.json"

    def read_source_digests(self) -> dict[str, list[Any]]:
        try:
            memo = read_json(self.root / self.SOURCE_DIGESTS)
        except (OSError, ValueError):
            return {}
        return memo if isinstance(memo, dict) else {}

    def write_source_digests(self, memo: dict[str, list[Any]]) -> None:
        write_json(self.root / self.SOURCE_DIGESTS, memo)

    # -- images ----------------------------------------------------------------------------

    def candidate_path(self, model: str, case_id: str, round_number: int, variant: int) -> str:
        return f"images/{slug(model)}/{slug(case_id)}/r{round_number}_v{variant}.png"

    def retrieved_path(self, model: str, case_id: str) -> str:
        """The retriever's answer to a case's best prompt (retrieve-or-generate decision)."""
        return f"images/{slug(model)}/{slug(case_id)}/retrieved.png"

    def case_files(self, model: str, case_id: str) -> list[str]:
        """Run-folder paths of the files a case wrote: reference, description and renders."""
        shared = [self.reference_relpath(case_id), self.description_relpath(case_id)]
        renders = (self.root / self.candidate_path(model, case_id, 1, 0)).parent
        own = sorted(p.relative_to(self.root).as_posix() for p in renders.glob("*")) \
            if renders.is_dir() else []
        return [p for p in shared if (self.root / p).exists()] + own

    def remove_case_files(self, model: str, case_id: str) -> None:
        """Delete a case's files and record (a worker's scratch folder, once shipped)."""
        for relative in self.case_files(model, case_id):
            (self.root / relative).unlink(missing_ok=True)
        self._record_path(model, case_id).unlink(missing_ok=True)

    # -- case records ----------------------------------------------------------------------

    def record_relpath(self, model: str, case_id: str) -> str:
        return f"cases/{slug(model)}/{slug(case_id)}.json"

    def _record_path(self, model: str, case_id: str) -> Path:
        return self.root / self.record_relpath(model, case_id)

    def write_case_record(self, record: CaseRecord) -> None:
        """Commit a case: with a writer, queued after the case's files, which are made durable
        first (one commit per case), so a record never names a file a power cut could lose."""
        path = self._record_path(record.model, record.case_id)
        if self.writer is None:
            write_json(path, dump_record(record))
            return
        key = (record.model, record.case_id)
        self._queued_records[key] = record  # read back from memory until it is written

        def commit() -> None:
            make_durable(self._unsynced.pop(record.case_id, []))
            write_json(path, dump_record(record))
            fsync_folder(path.parent)
            if self._queued_records.get(key) is record:
                del self._queued_records[key]

        self.writer.submit([str(path)], commit)

    def read_case_record(self, model: str, case_id: str) -> CaseRecord | None:
        """The case's record; None when there is none, or it is unreadable (then the case is
        redone, and the file named in a warning)."""
        queued = self._queued_records.get((model, case_id))
        if queued is not None:
            return queued
        self.settle(self.record_relpath(model, case_id))
        path = self._record_path(model, case_id)
        return self._read_record(path) if path.exists() else None

    def _read_record(self, path: Path) -> CaseRecord | None:
        relative = path.relative_to(self.root).as_posix()
        try:
            return load_case_file(path, relative)
        except (OSError, ValueError) as exc:  # JSON, version and validation errors included
            if relative not in self.unreadable:
                self.unreadable.append(relative)
                self.unreadable_reasons[relative] = str(exc)
                logger.warning("skipping unreadable case record %s (the case is redone on the "
                               "next run)", exc)
            return None

    def is_done(self, model: str, case_id: str) -> bool:
        record = self.read_case_record(model, case_id)
        return record is not None and record.done

    def record_paths(self) -> list[Path]:
        """The case record files, in run-folder order."""
        return sorted((self.root / "cases").glob("*/*.json"))

    def iter_records(self) -> Iterator[CaseRecord]:
        """Every readable case record, one at a time (unreadable files: :meth:`_read_record`)."""
        return (r for r in map(self._read_record, self.record_paths()) if r is not None)

    def records(self) -> list[CaseRecord]:
        return list(self.iter_records())  # every readable case record, held in a list

    def records_digest(self, models: list[str], cases: list[tuple[str, str]]) -> str:
        """A fingerprint of the records of ``cases`` ((model, case id) pairs) as files (size,
        modification time) and of the model order: a leaderboard or report built at the same
        digest is current. One stat per record, no read."""
        digest = hashlib.sha256("\n".join(models).encode())
        root = str(self.root)  # strings, not Paths: a 5,000 x 4 run stats 20,000 files
        for model, case_id in sorted(cases):
            try:
                info = os.stat(os.path.join(root, self.record_relpath(model, case_id)))
            except FileNotFoundError:
                continue
            digest.update(f"{model}\0{case_id}:{info.st_size}:{info.st_mtime_ns}\n".encode())
        return digest.hexdigest()[:16]

    # -- run-level files -------------------------------------------------------------------

    def write_results_jsonl(self, records: list[CaseRecord]) -> None:
        lines = [json.dumps(result_line(r), ensure_ascii=False, allow_nan=False) for r in records]
        atomic_write_bytes(self.root / "results.jsonl", ("\n".join(lines) + "\n").encode("utf-8"))

    def write_run_info(self, info: RunInfo) -> None:
        """Write ``run.json`` (the typed :class:`repainter.records.run_info.RunInfo`)."""
        write_json(self.root / "run.json", dump_record(info))

    def read_run_info(self) -> RunInfo:
        """``run.json`` (an older version migrated); an empty record where there is none yet."""
        path = self.root / "run.json"
        return load_record(RunInfo, read_json(path)) if path.exists() else RunInfo()


def result_line(record: CaseRecord) -> dict[str, Any]:
    """The flat summary of one case record written to results.jsonl."""
    return dump_record(ResultLine.of(record))


def load_case_file(path: Path, name: str | None = None) -> CaseRecord:
    """The case record in ``path``, migrated to the current version.

    Raises :class:`~repainter.records.RecordVersionError` (a newer or unknown version) or
    ``ValueError`` (not JSON, not a case record, a field missing or of the wrong type), each
    naming the file (``name``, default the path) and the reason in one line.
    """
    name = name or str(path)
    try:
        data = read_json(path)
    except ValueError as exc:
        raise ValueError(f"{name}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict) or "case_id" not in data or "model" not in data:
        raise ValueError(f"{name}: not a case record (no case_id / model)")
    try:
        return load_case_record(data)
    except RecordVersionError as exc:
        raise RecordVersionError(f"{name}: {exc}") from exc
    except ValidationError as exc:
        raise ValueError(f"{name}: not a valid case record: {validation_summary(exc)}") from exc


def validation_summary(exc: ValidationError, limit: int = 3) -> str:
    """The first few problems of a pydantic error on one line: ``rounds.0.round: Field required``."""
    problems = [f"{'.'.join(str(p) for p in e['loc']) or 'record'}: {e['msg']}"
                for e in exc.errors()[:limit]]
    more = exc.error_count() - len(problems)
    return "; ".join(problems) + (f" (and {more} more)" if more > 0 else "")
