"""Logs and progress for every place a run is watched: a terminal, a pipe, nohup, Slurm.

* every run appends to ``RUN/logs/run.log`` (timestamps, one line per finished case, warnings,
  the outcome), whatever the terminal shows;
* outside a terminal the CLI prints a progress line every ``REPAINTER_PROGRESS_SECONDS`` seconds
  (default 10) instead of a progress bar, so ``repainter run | tee log`` and Slurm logs show how
  far a run is;
* ``--verbose`` shows INFO messages on stderr, ``--quiet`` only errors.

    >>> import io
    >>> out = io.StringIO()
    >>> lines = ProgressLines(out, interval=0)
    >>> lines({"event": "start", "total": 2, "models": ["m"]})
    >>> lines({"event": "case", "model": "m", "case_id": "c1", "status": "done", "selection": 0.5})
    >>> out.getvalue().splitlines()[1].split(" ", 1)[1]
    'progress 1/2 cases (0 failed) · last: m c1 done selection 0.500 · mean selection 0.500'
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

LOGGER = "repainter"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
DEFAULT_PROGRESS_SECONDS = 10.0

progress_logger = logging.getLogger("repainter.progress")


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at emit time (test runners swap it)."""

    _repainter_cli = True

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):  # StreamHandler.__init__ assigns it; the property wins
        pass


def configure_cli_logging(verbosity: int) -> None:
    """stderr shows warnings (0), INFO and up (1, --verbose) or only errors (-1, --quiet)."""
    level = {-1: logging.ERROR, 0: logging.WARNING}.get(verbosity, logging.INFO)
    logger = logging.getLogger(LOGGER)
    for handler in [h for h in logger.handlers if getattr(h, "_repainter_cli", False)]:
        logger.removeHandler(handler)
    handler = _StderrHandler()
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger.addHandler(handler)
    if level < logging.WARNING and (logger.level == logging.NOTSET or logger.level > level):
        logger.setLevel(level)  # --verbose: let INFO records be made at all


@contextmanager
def run_log(root: Path) -> Iterator[Path]:
    """Append INFO and up from every ``repainter.*`` logger to ``root/logs/run.log``."""
    path = Path(root) / "logs" / "run.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logger = logging.getLogger(LOGGER)
    previous = logger.level
    if previous == logging.NOTSET or previous > logging.INFO:
        logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield path
    finally:
        logger.removeHandler(handler)
        handler.close()
        logger.setLevel(previous)


def describe_event(event: dict[str, Any]) -> str | None:
    """One log line for a runner event (None for events not worth a line)."""
    kind = event.get("event")
    if kind == "start":
        return f"start: {event['total']} case(s) over {len(event['models'])} model(s)"
    if kind == "case":
        score = event.get("selection")
        text = f"case {event.get('model')} {event.get('case_id')} {event.get('status')}"
        if event.get("reused"):
            text += " (reused)"
        if score is not None:
            text += f" selection {score:.3f}"
        if event.get("status") == "failed" and event.get("error"):
            text += f": {event['error']}"
        return text
    return None


def logging_events(on_event: Callable[[dict[str, Any]], None] | None):
    """Wrap an event callback so every case also goes to the run log."""

    def emit(event: dict[str, Any]) -> None:
        line = describe_event(event)
        if line:
            progress_logger.info(line)
        if on_event is not None:
            on_event(event)

    return emit


class ProgressLines:
    """Progress as plain lines (for pipes and batch logs): at most one per ``interval`` seconds,
    plus the first and the last case."""

    def __init__(self, stream: TextIO | None = None, interval: float | None = None):
        self.stream = stream or sys.stderr
        if interval is None:
            interval = float(os.environ.get("REPAINTER_PROGRESS_SECONDS", DEFAULT_PROGRESS_SECONDS))
        self.interval = interval
        self.total = 0
        self.seen = 0
        self.failed = 0
        self.scores: list[float] = []
        self.started = time.monotonic()
        self.last_print = float("-inf")

    def __call__(self, event: dict[str, Any]) -> None:
        if event.get("event") == "start":
            self.total = event["total"]
            self._print(f"start: {self.total} case(s), models {', '.join(event['models'])}")
            return
        if event.get("event") != "case":
            return
        self.seen += 1
        self.failed += event.get("status") == "failed"
        if event.get("selection") is not None:
            self.scores.append(event["selection"])
        now = time.monotonic()
        if self.seen in (1, self.total) or now - self.last_print >= self.interval:
            mean = (f" · mean selection {sum(self.scores) / len(self.scores):.3f}"
                    if self.scores else "")
            last = describe_event(event).removeprefix("case ")
            self._print(f"progress {self.seen}/{self.total} cases ({self.failed} failed) · "
                        f"last: {last}{mean}")

    def _print(self, text: str) -> None:
        elapsed = time.monotonic() - self.started
        stamp = f"[{int(elapsed // 60):02d}:{elapsed % 60:04.1f}]"
        print(f"{stamp} {text}", file=self.stream, flush=True)
        self.last_print = time.monotonic()
