"""Check seeds drawn by rule (``repainter meta-eval --seeds auto``), and which seeds tuned what.

A held-out check is only held out once: seeds a session has looked at while choosing something
are no longer fresh. ``auto`` draws the check's seeds from a hash of the git commit of the code
being checked (or of a given string outside git), so every commit gets seeds nobody chose, the
same commit gets the same seeds (the check can be re-run), and seeds any earlier check used are
skipped. VALIDITY.md lists :data:`SEED_HISTORY` beside the seeds it ran on.

>>> draw_check_seeds("example") == draw_check_seeds("example")
True
>>> set(draw_check_seeds("example")) & USED_SEEDS
set()
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from typing import Any

#: Seeds the project has used, and what for (datasets/sim/README.md, validity/).
SEED_HISTORY: tuple[tuple[tuple[int, ...], str], ...] = (
    ((0, 1, 2), "acceptance: the default selection and its thresholds were chosen and judged "
                "on them (tuned on)"),
    ((9, 10, 11), "held out at first, then used to re-pick stored candidates while the default "
                  "selection was chosen (tuned on)"),
    ((12, 13, 14), "held out: run once, after the default selection was chosen"),
    ((40, 41, 42), "issue 26's measurements of refine vs best_of_n and of new ladders (looked "
                   "at, not tuned on)"),
    ((100, 101), "the adaptive loop's split rule was designed on them (tuned on)"),
    ((8992, 8993), "bench/loop_vs_best_of_n.py at commit ea98471 (16 scenes; looked at, then the "
                   "full 32-scene check was run on new seeds)"),
    ((3850, 3851), "bench/loop_vs_best_of_n.py at commit ed2905a: the 32-scene check of issue "
                   "26's acceptance (ADAPTIVE_LOOP.md)"),
    ((0, 1, 2, 3), "issue 26, second design: the adaptive loop's critique of several renders and "
                   "the describer's plainer rephrasing were designed on 0-1 (tuned on; 2-3 "
                   "looked at in a stand-alone simulation)"),
    ((6902, 6903, 6904), "bench/loop_vs_best_of_n.py at commit 742dbf0: the 32-scene check of "
                         "issue 26's second design (ADAPTIVE_LOOP.md)"),
)
USED_SEEDS = frozenset(seed for seeds, _ in SEED_HISTORY for seed in seeds)
#: Drawn seeds lie in [SEED_FLOOR, SEED_CEILING): clear of the small seeds people pick by hand.
SEED_FLOOR, SEED_CEILING = 1_000, 1_000_000
AUTO = "auto"


def git_commit(folder: str | Path | None = None) -> str | None:
    """HEAD of the git checkout holding ``folder`` (default: the one holding repainter's code),
    None outside git or without a git executable."""
    if folder is None:
        import repainter

        folder = Path(repainter.__file__).resolve().parent
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True,
                              text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and commit else None


def draw_check_seeds(source: str, count: int = 3) -> list[int]:
    """``count`` distinct seeds from a hash of ``source``, none of :data:`USED_SEEDS`."""
    seeds: list[int] = []
    block = 0
    while len(seeds) < count:
        digest = hashlib.sha256(f"repainter meta-eval check seeds {block}: {source}".encode())
        for start in range(0, 32, 4):
            seed = SEED_FLOOR + int.from_bytes(digest.digest()[start:start + 4], "big") % (
                SEED_CEILING - SEED_FLOOR)
            if seed not in USED_SEEDS and seed not in seeds and len(seeds) < count:
                seeds.append(seed)
        block += 1
    return sorted(seeds)


def resolve_auto_seeds(data: dict[str, Any]) -> dict[str, Any]:
    """A meta-eval config's data with ``seeds: auto`` replaced by the drawn seeds and
    ``seeds_drawn_from`` saying from what; other data as it is. ValueError where there is
    nothing to draw from (no ``seed_rule`` and no git checkout)."""
    if data.get("seeds") != AUTO:
        return data
    rule = data.get("seed_rule")
    if rule is not None:
        source = f"seed_rule {rule!r}"
    else:
        commit = git_commit()
        if commit is None:
            raise ValueError("seeds: auto draws the seeds from the git commit of the code, and "
                             "repainter is not in a git checkout here; give seed_rule (any "
                             "string, e.g. a release tag) to draw them from")
        rule, source = commit, f"git commit {commit}"
    return {**data, "seeds": draw_check_seeds(str(rule)), "seeds_drawn_from": source}


def seed_history_lines(config: dict[str, Any]) -> list[str]:
    """VALIDITY.md's table of which seeds tuned what, this run's seeds last."""
    drawn = config.get("seeds_drawn_from")
    mine = ", ".join(str(s) for s in config.get("seeds") or [])
    how = (f"this check, drawn by rule from {drawn} (seeds: auto): no one chose them"
           if drawn else "this check, chosen by hand")
    rows = [(", ".join(map(str, seeds)), what) for seeds, what in SEED_HISTORY]
    return ["", "## Seeds: which tuned what", "",
            "| seeds | used for |", "|---|---|",
            *(f"| {seeds} | {what} |" for seeds, what in rows),
            f"| {mine} | {how} |", ""]
