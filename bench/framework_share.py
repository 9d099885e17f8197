"""Framework share of a 2 x 2 run on the built-in world (issue 28, item 4); writes BENCHMARKS.md.

    python bench/framework_share.py            # 32 and 64 references, then BENCHMARKS.md

The framework is what a run spends outside backend calls: loop - setup - release - time a backend
call was in flight (run.json ``framework_seconds``); its share is of the per-case loop (loop -
setup - release). The built-in world's backends take milliseconds, so this is the harshest case:
with real-size models the same framework seconds are a far smaller share (BENCHMARKS.md's
real-size row). Cache off, so every call runs.
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


def markdown(rows: list[dict]) -> str:
    lines = ["## Framework share of a 2 x 2 run on the built-in world (issue 28)", "",
             "`python bench/framework_share.py` on "
             f"{platform.system()} {platform.machine()}, Python {platform.python_version()}, "
             "2 shared CPUs: the default world run with 2 rounds x 2 variants and the cache off, "
             "one run per size in one process. framework = loop - setup - release - time "
             "inside backend calls (run.json `framework_seconds`); share = framework / "
             "(loop - setup - release). The world's backends take milliseconds, so the "
             "framework's share here is its largest.", "",
             "| references | cases | loop s | in backends s | framework s | share | target |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        met = "met" if r["share"] < TARGET else "**not met**"
        lines.append(f"| {r['references']} | {r['cases']} | {r['loop']:.2f} | {r['backend']:.2f} "
                     f"| {r['framework']:.2f} | {r['share']:.1%} | < {TARGET:.0%}: {met} |")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return "\n".join(lines + ["", f"Peak RSS of the process: {peak:.0f} MiB."])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--references", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--output", default=str(ROOT / "BENCHMARKS.md"))
    args = parser.parse_args(argv)
    measure(8)  # warm-up: imports and first-call costs are not the loop's
    body = markdown([measure(n) for n in args.references])
    write_section(Path(args.output), "framework-share", body)
    print(body)


if __name__ == "__main__":
    main()
