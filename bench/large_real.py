"""5,000 references x 4 models at real record size (issue 28 item 5); writes its BENCHMARKS.md section.

    python bench/large_real.py                       # 5,000 x 4, then BENCHMARKS.md
    python bench/large_real.py --references 500 --no-write   # a smaller check, printed only

The records are real: a 4-model run of the built-in world (default loop, metrics and MLLM) runs
its first few references for real, and its records are cycled under new case ids until every
(model, reference) pair has one. Then each command runs in its own process, as a user runs it:

* ``finish``: ``repainter run`` over the folder whose records are all there (the end of the run
  that finished the last case: results, leaderboard, statistics, report, first build);
* ``rerun``: ``repainter run`` again (nothing changed: everything is reused);
* ``report``: ``repainter report RUN``.

CPU seconds are the child's user + system time (``os.wait4``), peak RSS its ``ru_maxrss``; both
include starting Python and importing the library.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sections import write_section  # bench/ is sys.path[0] when run as a script

ROOT = Path(__file__).resolve().parents[1]
COMMAND = "python bench/large_real.py"
SECTION = "large_real"
#: Targets of issue 28 item 5: CPU seconds and peak RSS MiB per command.
TARGETS = {"finish": (None, 1024), "rerun": (5.0, 600), "report": (5.0, 400)}


def _case_id(n: int) -> str:
    return f"s{n:05d}"


def build_folder(folder: Path, references: int, models: int, real: int) -> dict:
    """A finished run folder: ``real`` references run for real, the rest cycled from them."""
    from repainter import run
    from repainter.bench.world.generator import default_bundle_path
    from repainter.spec import build_spec

    rows = [json.loads(line) for line in default_bundle_path().read_text().splitlines() if line]
    scenes = folder / "scenes.jsonl"
    with scenes.open("w", encoding="utf-8") as out:
        for n in range(references):
            out.write(json.dumps({**rows[n % len(rows)], "id": _case_id(n)}) + "\n")
    spec = build_spec({
        "output_dir": str(folder / "run"),
        "dataset": {"name": "world", "params": {"path": str(scenes)}},
        "t2i": [{"name": "sim", "label": f"model-{m}"} for m in range(models)],
    })
    started = time.process_time()
    result = run(spec, case_ids=[_case_id(n) for n in range(real)])
    real_seconds = time.process_time() - started
    run_dir = folder / "run"
    cases = run_dir / "cases"
    sizes = []
    for model_dir in sorted(p for p in cases.iterdir() if p.is_dir()):
        texts = {n: (model_dir / f"{_case_id(n)}.json").read_text(encoding="utf-8")
                 for n in range(real)}
        sizes += [len(t.encode("utf-8")) for t in texts.values()]
        for n in range(real, references):
            source = n % real  # the case ids are unique strings: replacing them renames the case
            text = texts[source].replace(_case_id(source), _case_id(n))
            (model_dir / f"{_case_id(n)}.json").write_text(text, encoding="utf-8")
    _link_images(run_dir, references, real)
    return {"real_cases": len(result.records), "real_cpu_seconds": real_seconds,
            "record_kb": sum(sizes) / len(sizes) / 1024, "records": references * models}


def _link_images(run_dir: Path, references: int, real: int) -> None:
    """The cycled cases' reference and renders: hard links to their source case's files, so
    the report finds (and sizes) every image it shows, as in a real run."""
    for n in range(real, references):
        pairs = [(run_dir / "references" / f"{_case_id(n % real)}.png",
                  run_dir / "references" / f"{_case_id(n)}.png")]
        for model_dir in (run_dir / "images").iterdir():
            source = model_dir / _case_id(n % real)
            pairs += [(png, model_dir / _case_id(n) / png.name) for png in source.glob("*.png")]
        for source, target in pairs:
            if source.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                os.link(source, target)


def _measure(argv: list[str]) -> dict:
    """Run ``argv`` in a child process: its CPU seconds, peak RSS and wall time."""
    started = time.perf_counter()
    process = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               env={**os.environ, "PYTHONPATH": str(ROOT)})
    stderr = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    if status != 0:
        sys.stderr.write(stderr.decode(errors="replace")[-3000:])
        raise SystemExit(f"{' '.join(argv[2:])} failed (status {status})")
    return {"cpu_seconds": usage.ru_utime + usage.ru_stime, "rss_mib": usage.ru_maxrss / 1024,
            "wall_seconds": wall}


def measure(folder: Path) -> dict:
    run_dir = folder / "run"
    cli = [sys.executable, "-m", "repainter.cli"]
    steps = {}
    for what, argv in (("finish", [*cli, "run", "-q", "--spec", str(run_dir / "spec.yaml")]),
                       ("rerun", [*cli, "run", "-q", "--spec", str(run_dir / "spec.yaml")]),
                       ("report", [*cli, "report", str(run_dir)])):
        steps[what] = _measure(argv)
        if what != "report":  # what the run itself recorded of the same command
            info = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
            steps[what]["recorded_wall_seconds"] = info["wall_seconds"]
            steps[what]["reused"] = info["cases"]["reused"]
        print(what, json.dumps(steps[what]), file=sys.stderr, flush=True)
    return steps


def markdown(built: dict, steps: dict, references: int, models: int) -> str:
    names = {"finish": "end of the finishing run: results, leaderboard, statistics, report "
                       "(first build; `repainter run`)",
             "rerun": "re-run of the finished run (`repainter run` again)",
             "report": "`repainter report RUN` (rebuild the HTML report)"}
    lines = [
        f"## {references:,} references x {models} models at real record size",
        "",
        f"`{COMMAND}` on {platform.system()} {platform.machine()}, {os.cpu_count()} CPUs "
        f"(shared with other jobs), Python {platform.python_version()}.",
        "",
        f"{built['records']:,} case records of {built['record_kb']:.1f} KB on average: a real "
        f"{models}-model run of the built-in world (default loop 3 x 3, metrics and simulated "
        f"MLLM) ran its first {built['real_cases'] // models} references "
        f"({built['real_cpu_seconds']:.1f} CPU s), and its records were cycled under new case "
        "ids (their reference and renders hard links to the source case's files, so the report "
        "finds and sizes every image it shows). Each command runs in its own process; CPU s is its user + system time and "
        "peak RSS its own, both including Python's start and the imports; \"run.json wall s\" "
        "is what the command recorded as its `wall_seconds`.",
        "",
        "| command | CPU s | peak RSS MiB | wall s | run.json wall s | target |",
        "|---|---|---|---|---|---|",
    ]
    for what in ("finish", "rerun", "report"):
        step, (cpu_target, rss_target) = steps[what], TARGETS[what]
        met = (cpu_target is None or step["cpu_seconds"] < cpu_target) \
            and step["rss_mib"] < rss_target
        target = (f"< {cpu_target:g} CPU s, " if cpu_target else "") + f"< {rss_target} MiB"
        recorded = step.get("recorded_wall_seconds")
        lines.append(
            f"| {names[what]} | {step['cpu_seconds']:.1f} | {step['rss_mib']:.0f} | "
            f"{step['wall_seconds']:.1f} | {'-' if recorded is None else f'{recorded:.1f}'} | "
            f"{target}: {'met' if met else '**not met**'} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--references", type=int, default=5000)
    parser.add_argument("--models", type=int, default=4)
    parser.add_argument("--real", type=int, default=4, help="references run for real")
    parser.add_argument("--tmp", default=None)
    parser.add_argument("--no-write", action="store_true", help="print, do not touch BENCHMARKS.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.tmp, prefix="repainter-large-") as tmp:
        built = build_folder(Path(tmp), args.references, args.models, args.real)
        print("built", json.dumps(built), file=sys.stderr, flush=True)
        steps = measure(Path(tmp))
    text = markdown(built, steps, args.references, args.models)
    print(text)
    if not args.no_write:
        write_section(ROOT / "BENCHMARKS.md", SECTION, text)


if __name__ == "__main__":
    main()
