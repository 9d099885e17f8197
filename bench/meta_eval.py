"""Cost of the statistics and of ``repainter meta-eval``; writes a section of BENCHMARKS.md.

    python bench/meta_eval.py            # statistics timings + peak memory
    python bench/meta_eval.py --validity runs/meta-eval/validity.json   # + meta-eval part times

Bootstrap intervals and sign-flip tests draw their resamples in chunks (repainter.report.stats),
so peak memory stays flat as the number of cases grows; this script measures both (peak memory
by tracemalloc, which numpy reports its buffers to).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import tracemalloc
from pathlib import Path

import numpy as np
from sections import write_section  # bench/ is sys.path[0] when run as a script

ROOT = Path(__file__).resolve().parents[1]


def _measure(fn):
    """(seconds of a plain call, peak traced bytes of a second call): tracing slows numpy down."""
    started = time.perf_counter()
    fn()
    seconds = time.perf_counter() - started
    tracemalloc.start()
    try:
        fn()
        return seconds, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def statistics_rows(sizes=(100, 1_000, 20_000)) -> list[str]:
    from repainter.report.stats import bootstrap_ci, sign_flip_p_value

    rows = ["| cases n | bootstrap_ci (10,000 resamples) | peak MB | sign_flip_p_value (20,000) | peak MB |",
            "|---|---|---|---|---|"]
    for n in sizes:
        values = np.random.default_rng(0).uniform(size=n)
        t_boot, m_boot = _measure(lambda v=values: bootstrap_ci(v))
        t_flip, m_flip = _measure(lambda v=values: sign_flip_p_value(v - 0.5))
        rows.append(f"| {n:,} | {t_boot:.2f} s | {m_boot / 2**20:.1f} | {t_flip:.2f} s | "
                    f"{m_flip / 2**20:.1f} |")
    return rows


def meta_eval_rows(path: Path) -> list[str]:
    data = json.loads(path.read_text(encoding="utf-8"))
    config = data["config"]
    rows = [f"`{data.get('command')}` ({data['bench']} bench; {config['scenes']} scenes, seeds "
            f"{config['seeds']}, {config['rounds']} x {config['variants']}): {data['seconds']} s in all.",
            "", "| part | seconds |", "|---|---|"]
    for name, ladder in (data.get("ladders") or {}).items():
        rows.append(f"| ladder {name} ({len(ladder['models'])} models) | {ladder['seconds']} |")
    for part in ("degradations", "baselines"):
        if data.get(part):
            rows.append(f"| {part} | {data[part]['seconds']} |")
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--validity", type=Path, help="validity.json of a meta-eval run")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    lines = ["## Statistics and meta-eval", "",
             f"`python bench/meta_eval.py{' --validity ' + str(args.validity) if args.validity else ''}`"
             f" on {platform.processor() or platform.machine()}, Python {platform.python_version()}.", "",
             "Chunked resampling: time and peak memory per call (one-array resampling at n = 20,000 "
             "would need 1.6 GB for the bootstrap).", "", *statistics_rows()]
    if args.validity:
        lines += ["", *meta_eval_rows(args.validity)]
    section = "\n".join(lines)
    print(section)
    if not args.no_write:
        write_section(ROOT / "BENCHMARKS.md", "meta-eval", section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
