"""Device busy share at default settings (issue 30): does the T2I device wait on the MLLM?

    python bench/device_busy.py                       # 64 references, render 0.25 s, ratios 0.5 3 10
    python bench/device_busy.py --render 1.0          # the issue's own latencies (slower)
    python bench/device_busy.py --write               # also into BENCHMARKS.md ("device-busy")

The built-in procedural T2I sleeps ``--render`` seconds per render call while it holds its
process's one simulated device slot; the MLLM is the OpenAI-compatible loopback server
(repainter.testing) answering every call after ``ratio x render`` seconds. Each ratio runs at the
defaults (``runtime.concurrency: auto``, the MLLM's ``concurrency: auto``), 2 rounds x 2
variants, no cache. The device busy share is run.json's ``pacing`` (wall time with a render in
flight over the stage's wall time). Then the acceptance case (ratio 3) runs again with
``runtime.concurrency: 1``, the old default, at the same latencies, and its records, results and
images are compared with the paced run's (timings apart). Latencies are simulated (sleeps), so
the figures measure the pipelining, not this machine's cores; the ratio is what matters.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from sections import write_section  # bench/ is sys.path[0] when run as a script

ROOT = Path(__file__).resolve().parents[1]
KEY_ENV = "BENCH_MLLM_KEY"
ACCEPTANCE_RATIO = 3.0


def _spec(folder: Path, references: int, render: float, url: str, concurrency):
    from repainter.spec import build_spec

    bundled = 32  # the world's bundled scenes; distractor scenes make up the rest
    return build_spec({
        "output_dir": str(folder),
        "dataset": {"limit": references,
                    "params": {"size": 64, "distractors": max(0, references - bundled)}},
        "t2i": [{"name": "procedural", "params": {"size": 64, "latency_s": render}}],
        "mllm": {"name": "openai", "params": {"model": "bench", "base_url": url,
                                              "api_key_env": KEY_ENV, "timeout": 120.0}},
        "metrics": ["ssim", "color_histogram"], "selection": {"ssim": 0.5, "color_histogram": 0.5},
        "loop": {"rounds": 2, "variants": 2},
        "runtime": {"cache": False, **({} if concurrency == "auto" else {"concurrency": concurrency})},
    })


def _run(folder: Path, references: int, render: float, ratio: float, concurrency="auto") -> dict:
    from repainter import runner
    from repainter.testing import OpenAICompatServer

    with OpenAICompatServer(latency=ratio * render) as server:
        started = time.perf_counter()
        result = runner.run(_spec(folder, references, render, server.url, concurrency))
        wall = time.perf_counter() - started
    assert result.info.cases.done == references, result.info.cases
    calls = result.info.backend["calls"]
    per_case = {kind: sum(n for key, n in calls.items() if key.startswith(kind)) / references
                for kind in ("t2i:", "mllm:")}
    pacing = result.info.pacing["procedural"]
    executor = result.info.executor
    row = {"ratio": ratio, "render_s": render, "mllm_s": ratio * render, "references": references,
           "concurrency": concurrency, "wall_s": wall, "device_s": pacing["device_busy_seconds"],
           "busy": pacing["device_busy_share"], "final": executor.get("concurrency_final"),
           "max_in_flight": executor.get("max_in_flight"), "mllm_limit": pacing["mllm"]["limit"],
           "mllm_in_flight": pacing["mllm"]["in_flight_avg"], "binding": pacing["binding"],
           "hint": pacing["hint"], "renders_per_case": per_case["t2i:"],
           "mllm_calls_per_case": per_case["mllm:"]}
    print(json.dumps(row), file=sys.stderr, flush=True)
    return row


def _table(rows: list[dict], sequential: dict, identical: bool, args) -> str:
    lines = [
        "## Device busy share at default settings (issue 30)",
        "",
        "`python bench/device_busy.py --write`",
        "",
        f"{args.references} references, 2 rounds x 2 variants, no cache: "
        f"{sequential['renders_per_case']:g} render calls and {sequential['mllm_calls_per_case']:g} "
        f"MLLM calls per case. The procedural T2I sleeps {args.render:g} s per render call under its "
        "one device slot; the loopback OpenAI-compatible server answers each call after "
        f"ratio x {args.render:g} s (the issue's render time of 1 s scaled to {args.render:g} s to "
        "fit the time; the ratio is what matters). Busy share: wall time with a render in flight "
        "over the stage's wall time "
        "(run.json `pacing`); fill and drain (a case's MLLM calls before its first render and "
        "after its last) are the idle rest. Simulated latencies (sleeps) on a shared 2-core "
        "machine: ratios are measured in one run, not absolute times.",
        "",
        "| MLLM / render latency | settings | device busy | wall s | device s | cases in flight "
        "(final target / max) | MLLM limit | MLLM in flight (avg) | binding |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in [*rows, sequential]:
        settings = ("defaults (`concurrency: auto`)" if r["concurrency"] == "auto"
                    else f"`runtime.concurrency: {r['concurrency']}` (the old default)")
        lines.append(
            f"| {r['ratio']:g} ({r['render_s']:g} s / {r['mllm_s']:g} s) | {settings} | "
            f"**{r['busy']:.1%}** | {r['wall_s']:.1f} | {r['device_s']:.1f} | "
            f"{r['final']} / {r['max_in_flight']} | {r['mllm_limit']} | {r['mllm_in_flight']:.1f} | "
            f"{r['binding']} |")
    accepted = next(r for r in rows if r["ratio"] == ACCEPTANCE_RATIO)
    met = "met" if accepted["busy"] >= 0.85 and identical else "NOT met"
    lines += [
        "",
        f"Acceptance (defaults, {args.references} references, MLLM 3x the render time): device "
        f"{accepted['busy']:.1%} busy (>= 85%), records, results.jsonl and images "
        f"{'byte-identical' if identical else 'DIFFERENT'} to `runtime.concurrency: 1` (timings "
        f"apart), {accepted['wall_s'] / sequential['wall_s']:.1%} of its wall time: **{met}**.",
    ]
    hints = sorted({r["hint"] for r in [*rows, sequential] if r["hint"]})
    lines += [f"Hint the run gave: {hint}." for hint in hints]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--references", type=int, default=64)
    p.add_argument("--render", type=float, default=0.25)
    p.add_argument("--ratios", type=float, nargs="+", default=[0.5, ACCEPTANCE_RATIO, 10.0])
    p.add_argument("--write", action="store_true", help="write the table into BENCHMARKS.md")
    args = p.parse_args(argv)
    if ACCEPTANCE_RATIO not in args.ratios:
        p.error(f"--ratios must include the acceptance ratio {ACCEPTANCE_RATIO:g}")
    from repainter.testing.run_outputs import run_outputs

    os.environ[KEY_ENV] = "bench-key"
    with tempfile.TemporaryDirectory() as tmp:
        folders = {ratio: Path(tmp) / f"auto-{ratio:g}" for ratio in args.ratios}
        rows = [_run(folders[ratio], args.references, args.render, ratio) for ratio in args.ratios]
        sequential = _run(Path(tmp) / "one", args.references, args.render, ACCEPTANCE_RATIO, 1)
        identical = run_outputs(folders[ACCEPTANCE_RATIO]) == run_outputs(Path(tmp) / "one")
    table = _table(rows, sequential, identical, args)
    print(table)
    if args.write:
        write_section(ROOT / "BENCHMARKS.md", "device-busy", table)


if __name__ == "__main__":
    main()
