"""Framework share of a 2 x 2 run on the built-in world (issue 28, item 4); writes BENCHMARKS.md.

    python bench/framework_share.py            # 32 and 64 references, then BENCHMARKS.md

The framework is what a run spends outside backend calls: loop - setup - release - time a backend
call was in flight (run.json ``framework_seconds``); its share is of the per-case loop (loop -
setup - release). The built-in world's backends take milliseconds, so this is the harshest case:
with real-size models the same framework seconds are a far smaller share (BENCHMARKS.md's
real-size row). Cache off, so every call runs. Each size runs ``--repeats`` times in the one
process and the row is the run of median share (the machine is shared: one run can land on a
busy moment); the range of the shares is shown beside it.

A fresh case steps through the graph's nodes without LangGraph's runtime and saves its state
after every node (repainter.graph.build.SequentialGraph, issue 28); the run's writer thread
(renders, states, records) and the reference hash run beside the loop, on their own threads.
"""

from __future__ import annotations

import argparse
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sections import write_section  # noqa: E402  (bench/ is sys.path[0] as a script)

from repainter import run  # noqa: E402
from repainter.spec import build_spec  # noqa: E402

TARGET = 0.03


def measure(references: int) -> dict:
    out = tempfile.mkdtemp(prefix="repainter-fw-")
    try:
        spec = build_spec({"output_dir": out, "dataset": {
            "params": {"variants": max(0, references // 32 - 1)}, "limit": references},
            "loop": {"rounds": 2, "variants": 2}, "runtime": {"cache": False}})
        cpu = time.process_time()
        result = run(spec)
        info = result.info
        loop = info.loop_seconds - info.setup_seconds - info.release_seconds
        return {"references": references, "cases": len(result.records), "loop": loop,
                "backend": info.backend_busy_seconds, "framework": info.framework_seconds,
                "share": info.framework_seconds / loop, "cpu": time.process_time() - cpu}
    finally:
        shutil.rmtree(out, ignore_errors=True)


def median_run(references: int, repeats: int) -> dict:
    """The run of median framework share out of ``repeats``, with the range of the shares."""
    runs = sorted((measure(references) for _ in range(repeats)), key=lambda r: r["share"])
    row = dict(runs[len(runs) // 2])
    row["range"] = (runs[0]["share"], runs[-1]["share"])
    row["repeats"] = repeats
    return row


def markdown(rows: list[dict]) -> str:
    lines = ["## Framework share of a 2 x 2 run on the built-in world (issue 28)", "",
             "`python bench/framework_share.py` on "
             f"{platform.system()} {platform.machine()}, Python {platform.python_version()}, "
             "2 shared CPUs: the default world run with 2 rounds x 2 variants and the cache off, "
             "all runs in one process. framework = loop - setup - release - time "
             "inside backend calls (run.json `framework_seconds`); share = framework / "
             "(loop - setup - release). The world's backends take milliseconds, so the "
             "framework's share here is its largest. Each size ran "
             f"{rows[0]['repeats'] if rows else 0} times: the row is the run of median share, "
             "the range is over the runs.", "",
             "| references | cases | loop s | in backends s | framework s | share | share range "
             "| target |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        met = "met" if r["share"] < TARGET else "**not met**"
        low, high = r["range"]
        lines.append(f"| {r['references']} | {r['cases']} | {r['loop']:.2f} | {r['backend']:.2f} "
                     f"| {r['framework']:.2f} | {r['share']:.1%} | {low:.1%} - {high:.1%} "
                     f"| < {TARGET:.0%}: {met} |")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return "\n".join(lines + ["", f"Peak RSS of the process: {peak:.0f} MiB."])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--references", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", default=str(ROOT / "BENCHMARKS.md"))
    args = parser.parse_args(argv)
    measure(8)  # warm-up: imports and first-call costs are not the loop's
    body = markdown([median_run(n, args.repeats) for n in args.references])
    write_section(Path(args.output), "framework-share", body)
    print(body)


if __name__ == "__main__":
    main()
