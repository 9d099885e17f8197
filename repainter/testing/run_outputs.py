"""What two runs of one spec must agree on, timings apart: for checks that a setting changes
no result (``runtime.concurrency: auto`` against 1, in ``tests/`` and ``bench/device_busy.py``).

>>> without_timings({"a": 1, "timings": {"x": 2}, "wall_seconds": 3, "b": [{"latency_s": 1}]})
{'a': 1, 'b': [{}]}
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def without_timings(value: Any) -> Any:
    """``value`` with every ``timings`` key and every key naming seconds or latency left out."""
    if isinstance(value, dict):
        return {k: without_timings(v) for k, v in value.items()
                if k != "timings" and "seconds" not in k and "latency" not in k}
    if isinstance(value, list):
        return [without_timings(v) for v in value]
    return value


def run_outputs(run_dir: Path) -> dict[str, Any]:
    """Case records, results.jsonl (order kept) and every image's bytes, timings apart, by
    run-folder path."""
    out: dict[str, Any] = {}
    for path in sorted((run_dir / "cases").rglob("*.json")) + [run_dir / "results.jsonl"]:
        text = path.read_text(encoding="utf-8")
        values = ([json.loads(line) for line in text.splitlines()] if path.suffix == ".jsonl"
                  else json.loads(text))
        out[str(path.relative_to(run_dir))] = without_timings(values)
    for path in sorted(run_dir.rglob("*.png")):
        out[str(path.relative_to(run_dir))] = path.read_bytes()
    return out
