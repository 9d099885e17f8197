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
    return json.loads(path.read_text(encoding="utf-8"))


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
            if not self.has_cases() and not self.checkpoint_path.exists():
                # a start that failed before any case ran: the folder holds nothing to keep
                atomic_write_bytes(existing, spec.to_yaml().encode("utf-8"))
                return False
            raise RunFolderError(
                f"{self.root} holds a run of a different spec "
                f"({previous.fingerprint()} vs {spec.fingerprint()}); choose another "
                "output_dir, or delete the folder to start over"
            )
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(existing, spec.to_yaml().encode("utf-8"))
        return False

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
        if not path.exists():
            save_png(image, path)

    def _description_path(self, case_id: str) -> Path:
        return self.root / "descriptions" / f"{slug(case_id)}.json"

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

    # -- case records ----------------------------------------------------------------------

    def _record_path(self, model: str, case_id: str) -> Path:
        return self.root / "cases" / slug(model) / f"{slug(case_id)}.json"

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
