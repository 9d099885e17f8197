"""The run folder: the one place a run's files are laid out, all written atomically.

    RUN/
      spec.yaml                    the run spec (reproduce with: repainter run --spec RUN/spec.yaml)
      run.json                     status, versions, timings, counts, backend usage
      checkpoints.sqlite           LangGraph checkpoints: an interrupted case resumes from here
      references/<case>.png        each reference as the loop saw it
      descriptions/<case>.json     the MLLM's Image Understanding Tree, shared by all models
      images/<model>/<case>/r<round>_v<variant>.png
      cases/<model>/<case>.json    the full record of one case x model
      results.jsonl                one line per case x model (rebuilt from the records)
      leaderboard.{json,csv,md}
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from PIL import Image

from repainter.images import atomic_write_bytes, save_png
from repainter.spec import RunSpec, load_spec

SPEC_FILE = "spec.yaml"


class RunFolderError(RuntimeError):
    """The run folder cannot be used for this spec."""


def slug(text: str) -> str:
    """A file-name-safe form of a model label or case id (stable, readable)."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")
    return cleaned or "_"


def write_json(path: Path, data: Any) -> None:
    text = json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False, default=str)
    atomic_write_bytes(path, (text + "\n").encode("utf-8"))


def read_json(path: Path) -> Any:
    return _loads(path.read_bytes())


try:  # orjson (already installed with langgraph) parses records about 2.5x faster
    from orjson import loads as _loads
except ImportError:  # pragma: no cover
    _loads = json.loads


class RunStore:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    # -- spec ------------------------------------------------------------------------------

    def init(self, spec: RunSpec) -> bool:
        """Create the folder for ``spec``; return True when it resumes an earlier run of it."""
        existing = self.root / SPEC_FILE
        if existing.exists():
            previous = load_spec(existing)
            if previous.fingerprint() == spec.fingerprint():
                if previous != spec:  # only runtime settings differ: keep the file current
                    atomic_write_bytes(existing, spec.to_yaml().encode("utf-8"))
                return True
            if spec.extends(previous):  # models added to a comparison: only they run
                atomic_write_bytes(existing, spec.to_yaml().encode("utf-8"))
                return True
            raise RunFolderError(
                f"{self.root} holds a run of a different spec "
                f"({previous.fingerprint()} vs {spec.fingerprint()}); choose another "
                "output_dir, or delete the folder to start over"
            )
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(existing, spec.to_yaml().encode("utf-8"))
        return False

    @property
    def checkpoint_path(self) -> Path:
        return self.root / "checkpoints.sqlite"

    # -- references and descriptions -------------------------------------------------------

    def reference_relpath(self, case_id: str) -> str:
        return f"references/{slug(case_id)}.png"

    def save_reference(self, case_id: str, image: Image.Image) -> None:
        path = self.root / self.reference_relpath(case_id)
        if not path.exists():
            save_png(image, path)

    def description_relpath(self, case_id: str) -> str:
        return f"descriptions/{slug(case_id)}.json"

    def _description_path(self, case_id: str) -> Path:
        return self.root / self.description_relpath(case_id)

    def load_description(self, case_id: str) -> dict[str, Any] | None:
        path = self._description_path(case_id)
        return read_json(path) if path.exists() else None

    def save_description(self, case_id: str, iut: dict[str, Any]) -> None:
        write_json(self._description_path(case_id), iut)

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

    def write_case_record(self, record: dict[str, Any]) -> None:
        write_json(self._record_path(record["model"], record["case_id"]), record)

    def read_case_record(self, model: str, case_id: str) -> dict[str, Any] | None:
        path = self._record_path(model, case_id)
        return read_json(path) if path.exists() else None

    def is_done(self, model: str, case_id: str) -> bool:
        record = self.read_case_record(model, case_id)
        return record is not None and record.get("status") == "done"

    def records(self) -> list[dict[str, Any]]:
        return [read_json(p) for p in sorted((self.root / "cases").glob("*/*.json"))]

    def records_digest(self, models: list[str], cases: list[tuple[str, str]]) -> str:
        """A fingerprint of the records of ``cases`` ((model, case id) pairs) as files (size,
        modification time) and of the model order: a leaderboard or report built at the same
        digest is current. One stat per record, no read."""
        digest = hashlib.sha256("\n".join(models).encode())
        for model, case_id in sorted(cases):
            path = self._record_path(model, case_id)
            try:
                info = path.stat()
            except FileNotFoundError:
                continue
            digest.update(f"{model}\0{case_id}:{info.st_size}:{info.st_mtime_ns}\n".encode())
        return digest.hexdigest()[:16]

    def finished_records(self) -> dict[tuple[str, str], dict[str, Any]]:
        """The records with status "done", by (model, case id): the cases a run reuses."""
        return {(r["model"], r["case_id"]): r for r in self.records() if r.get("status") == "done"}

    # -- run-level files -------------------------------------------------------------------

    def write_results_jsonl(self, records: list[dict[str, Any]]) -> None:
        lines = [json.dumps(result_line(r), ensure_ascii=False, allow_nan=False) for r in records]
        atomic_write_bytes(self.root / "results.jsonl", ("\n".join(lines) + "\n").encode("utf-8"))

    def write_run_info(self, info: dict[str, Any]) -> None:
        write_json(self.root / "run.json", info)

    def read_run_info(self) -> dict[str, Any]:
        path = self.root / "run.json"
        return read_json(path) if path.exists() else {}


def result_line(record: dict[str, Any]) -> dict[str, Any]:
    """The flat summary of one case record written to results.jsonl."""
    round1 = record.get("round1_best") or {}
    return {
        "case_id": record["case_id"],
        "model": record["model"],
        "category": record.get("category"),
        "status": record.get("status"),
        "error": record.get("error"),
        "rounds": len(record.get("rounds") or []),
        "stop_reason": record.get("stop_reason"),
        "round1_selection": round1.get("selection"),
        "round1_scores": round1.get("scores", {}),
        "final_scores": record.get("final_scores", {}),
        "best_prompt": (record.get("best") or {}).get("prompt"),
        "best_image": (record.get("best") or {}).get("image"),
    }
