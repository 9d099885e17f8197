"""Scaling benchmarks for issue 14 (executors, model-at-a-time, run-folder costs).

    python bench/scaling.py throughput --cases 32 --workers 1 2 4 8 --joined 4 8  # Ray vs local
    python bench/scaling.py memory                                    # 3 tiny pipelines
    python bench/scaling.py large --references 5000 --models 4        # re-run and report
    python bench/scaling.py layout --references 8                     # bytes per case
    (add --baseline /path/to/old/checkout to `layout` for today's layout side by side)

Each prints a Markdown table (the rows BENCHMARKS.md shows). Simulated latencies: the built-in
T2I sleeps ``latency_s`` per render call while holding its process's one simulated GPU slot,
and the MLLM is the OpenAI-compatible loopback server (repainter.testing) answering every call
after 200 ms; so the throughput figures measure the executor, not this machine's 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KEY_ENV = "BENCH_MLLM_KEY"


def _throughput_spec(folder: Path, cases: int, latency: float, url: str, executor: str,
                     workers: int, concurrency: int = 1):
    from repainter.spec import build_spec

    return build_spec({
        "output_dir": str(folder), "dataset": {"limit": cases},
        "t2i": [{"name": "procedural", "params": {"size": 64, "latency_s": latency}}],
        "mllm": {"name": "openai", "params": {"model": "bench", "base_url": url,
                                              "api_key_env": KEY_ENV, "timeout": 30.0}},
        "metrics": ["ssim", "color_histogram"], "selection": {"ssim": 0.5, "color_histogram": 0.5},
        "loop": {"rounds": 1, "variants": 2},
        "runtime": {"executor": executor, "cache": False, "concurrency": concurrency,
                    "ray": {"num_workers": workers, "num_cpus_per_worker": 1}},
    })


def throughput(args) -> None:
    """Each setting as its own command, as a user runs it (a fresh process; Ray rows start their
    own private cluster and pool, or join one started before with ``ray start --head``), timed
    from the command's start to its exit; and its rate after warm-up (the cases after the first
    wave), which says what a longer run gains."""
    from repainter.testing import OpenAICompatServer

    rows = []
    with OpenAICompatServer(latency=args.mllm_latency) as server, \
            tempfile.TemporaryDirectory() as tmp:
        settings = [("local", 1, 1, None), ("local", 1, 8, None)] + [
            ("ray", n, 1, None) for n in args.workers]
        with _standing_cluster(max(args.workers)) as address:
            settings += [("ray", n, 1, address) for n in args.joined]
            for cases in args.cases:
                for executor, workers, concurrency, joined in settings:
                    rows.append(_time_command(Path(tmp), server.url, cases, executor, workers,
                                              concurrency, joined, args))
                    print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    for cases in args.cases:
        _throughput_table([r for r in rows if r["cases"] == cases])


@contextmanager
def _standing_cluster(cpus: int):
    """A cluster started once with ``ray start --head`` (private temp dir, free ports), as on a
    machine that keeps one up; stopped by its temp dir only."""
    from repainter.executors.ray_cluster import clean_up

    temp_dir = tempfile.mkdtemp(prefix="rpb-", dir="/tmp")
    ports = [_free_port() for _ in range(4)]
    command = [str(Path(sys.executable).parent / "ray"), "start", "--head", "--temp-dir",
               temp_dir, "--port", str(ports[0]), "--num-cpus", str(cpus),
               "--include-dashboard=false", "--dashboard-agent-listen-port", str(ports[1]),
               "--metrics-export-port", str(ports[2]), "--ray-client-server-port",
               str(ports[3]), "--disable-usage-stats"]
    try:
        subprocess.run(command, check=True, capture_output=True, env=_env())
        yield Path(temp_dir, "ray_current_cluster").read_text().strip()
    finally:
        clean_up(temp_dir)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _time_command(tmp: Path, url: str, cases: int, executor: str, workers: int,
                  concurrency: int, joined: str | None, args) -> dict:
    folder = tmp / f"{executor}-{workers}-{concurrency}-{cases}-{bool(joined)}"
    env = {k: v for k, v in _env().items() if k != "RAY_ADDRESS"}  # a private cluster ...
    if joined:
        env["RAY_ADDRESS"] = joined  # ... or the standing one
    env[KEY_ENV] = "bench-key"
    launched = time.time()
    out = subprocess.run([sys.executable, __file__, "_throughput_one", "--folder", str(folder),
                          "--url", url, "--executor", executor, "--workers", str(workers),
                          "--concurrency", str(concurrency), "--cases", str(cases),
                          "--latency", str(args.latency)],
                         capture_output=True, text=True, env=env)
    ended = time.time()
    if out.returncode != 0:
        raise SystemExit(out.stderr[-3000:])
    child = json.loads(out.stdout.strip().splitlines()[-1])
    first_wave = min(cases - 1, workers * concurrency)  # cases that ran while warming up
    done = sorted(child["done"])
    warm = done[-1] - done[first_wave - 1] if first_wave else done[-1] - launched
    return {"executor": executor, "workers": workers, "concurrency": concurrency,
            "joined": bool(joined), "cases": cases, "command_s": ended - launched,
            "pool_start_s": child["start_seconds"], "first_case_s": done[0] - launched,
            "warm_cases_per_s": (cases - first_wave) / warm}


def _throughput_one(args) -> None:
    """One setting, in this fresh process: the timestamps of its finished cases."""
    from repainter import runner

    done: list[float] = []

    def on_event(event) -> None:
        if event["event"] == "case" and not event.get("reused"):
            done.append(time.time())

    spec = _throughput_spec(Path(args.folder), args.cases, args.latency, args.url,
                            args.executor, args.workers, args.concurrency)
    result = runner.run(spec, on_event=on_event)
    assert result.info.cases.done == args.cases, result.info.cases
    print(json.dumps({"done": done,
                      "start_seconds": (result.info.executor or {}).get("start_seconds")}))


def _throughput_table(rows: list[dict]) -> None:
    """Speed-ups against the local executor one case at a time: whole command, and warm."""
    base = next(r for r in rows if r["executor"] == "local" and r["concurrency"] == 1)
    best_local = next(r for r in rows if r["executor"] == "local" and r["concurrency"] > 1)
    print(f"\n{rows[0]['cases']} cases\n")
    print("| executor | workers | command s | pool start s: cluster + first worker (all) "
          "| first case done at s | warm cases/s | speed-up, whole command | speed-up, warm "
          "| beats local c8 from |\n|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        label = (f"local, concurrency {r['concurrency']}" if r["executor"] == "local"
                 else "ray, joined a running cluster" if r["joined"] else "ray, own cluster")
        start = r["pool_start_s"] or {}
        pool = (f"{start['cluster']:.1f} + {start['first_worker']:.1f} "
                f"({start['all_workers'] or float('nan'):.1f})" if start else "–")
        beats = _break_even(r, best_local) if r["executor"] == "ray" else "–"
        print(f"| {label} | {r['workers']} | {r['command_s']:.1f} | {pool} | "
              f"{r['first_case_s']:.1f} | {r['warm_cases_per_s']:.3f} | "
              f"{base['command_s'] / r['command_s']:.2f}x | "
              f"{r['warm_cases_per_s'] / base['warm_cases_per_s']:.2f}x | {beats} |")


def _break_even(row: dict, other: dict) -> str:
    """Cases from which ``row``'s command ends before ``other``'s (fixed cost + cases / rate,
    each fitted on its own run)."""
    fixed = row["command_s"] - row["cases"] / row["warm_cases_per_s"]
    fixed_other = other["command_s"] - other["cases"] / other["warm_cases_per_s"]
    gain = 1 / other["warm_cases_per_s"] - 1 / row["warm_cases_per_s"]
    if gain <= 0:
        return "never (slower when warm)"
    return f"{max(0.0, (fixed - fixed_other) / gain):.0f} cases"


# -- model-at-a-time memory ----------------------------------------------------------------------


def memory(args) -> None:
    """Peak bytes of live pipeline weights (and process RSS) for 3 tiny pipelines, each schedule
    in its own subprocess."""
    sys.path.insert(0, str(ROOT))
    with tempfile.TemporaryDirectory() as tmp:
        from tests.backends.tiny_models import build_tiny_sd_pipeline

        base = build_tiny_sd_pipeline(Path(tmp) / "base")
        rows = []
        for schedule in ("model_major", "case_major"):
            out = subprocess.run([sys.executable, __file__, "_memory_one", "--folder", tmp,
                                  "--base", str(base), "--schedule", schedule],
                                 capture_output=True, text=True, check=True, env=_env())
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print("| schedule | models | pipelines loaded | most alive at once | one model MiB "
          "| peak live pipeline MiB | peak RSS MiB |\n|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['schedule']} | 3 | {r['loaded']} | {r['max_alive']} | "
              f"{r['model_bytes'] / 2**20:.1f} | {r['peak_bytes'] / 2**20:.1f} | "
              f"{r['rss_mib']:.0f} |")


def _memory_one(args) -> None:
    import gc
    import shutil
    import weakref

    from repainter import runner
    from repainter.backends.t2i.diffusers import DiffusersT2I
    from repainter.spec import build_spec

    folder = Path(args.folder) / args.schedule
    models = {f"m{i}": shutil.copytree(args.base, folder / f"m{i}") for i in range(3)}
    live: list[weakref.ref] = []
    stats = {"max_alive": 0, "peak_bytes": 0, "model_bytes": 0}
    load, generate = DiffusersT2I._load, DiffusersT2I.generate

    def size(pipe) -> int:
        return sum(t.numel() * t.element_size() for c in pipe.components.values()
                   if hasattr(c, "parameters") for t in [*c.parameters(), *c.buffers()])

    def tracked_load(self):
        pipe = load(self)
        stats["model_bytes"] = size(pipe)
        live.append(weakref.ref(pipe))
        return pipe

    def tracked_generate(self, prompts, seeds):
        gc.collect()
        alive = [r() for r in live if r() is not None]
        stats["max_alive"] = max(stats["max_alive"], len(alive))
        stats["peak_bytes"] = max(stats["peak_bytes"], sum(size(p) for p in alive))
        del alive
        return generate(self, prompts, seeds)

    DiffusersT2I._load, DiffusersT2I.generate = tracked_load, tracked_generate
    spec = build_spec({
        "preset": "world",  # the built-in world's MLLM and metrics around the tiny pipelines
        "output_dir": str(folder / "run"), "dataset": {"limit": 2}, "judge": False,
        "loop": {"rounds": 1, "variants": 2}, "runtime": {"schedule": args.schedule},
        "t2i": [{"name": "diffusers", "label": label,
                 "params": {"model": str(path), "device": "cpu", "steps": 2, "width": 32,
                            "height": 32}} for label, path in models.items()],
    })
    runner.run(spec)
    print(json.dumps({"schedule": args.schedule, "loaded": len(live), **stats,
                      "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


# -- 5,000 references x 4 models: re-run and report -----------------------------------------------


def _synthetic_run(folder: Path, references: int, models: int, rounds: int = 3,
                   variants: int = 3) -> None:
    """A finished run folder of synthetic records (world scenes repeated under new ids)."""
    import random

    from repainter.bench.world.generator import default_bundle_path
    from repainter.spec import build_spec
    from repainter.store import RunStore, write_json

    rows = [json.loads(line) for line in default_bundle_path().read_text().splitlines() if line]
    scenes = folder / "scenes.jsonl"
    folder.mkdir(parents=True, exist_ok=True)
    with scenes.open("w") as out:
        for n in range(references):
            row = dict(rows[n % len(rows)])
            row["id"] = f"s{n:05d}"
            out.write(json.dumps(row) + "\n")
    labels = [f"model-{m}" for m in range(models)]
    spec = build_spec({"preset": "world", "output_dir": str(folder / "run"), "judge": False,
                       "dataset": {"name": "world", "params": {"path": str(scenes)}},
                       "t2i": [{"name": "procedural", "label": label} for label in labels],
                       "loop": {"rounds": rounds, "variants": variants}})
    store = RunStore(spec.run_dir)
    store.init(spec)
    rng = random.Random(0)
    for n in range(references):
        case_id = f"s{n:05d}"
        for label in labels:
            best_ever, history = 0.0, []
            for r in range(1, rounds + 1):
                cands = []
                for v in range(variants):
                    scores = {"ssim": rng.random(), "color_histogram": rng.random(),
                              "object_f1": rng.random()}
                    cands.append({"round": r, "variant": v, "seed": rng.randrange(2**31),
                                  "prompt": f"a red circle, variant {v} of round {r}",
                                  "image": store.candidate_path(label, case_id, r, v),
                                  "flagged": None, "scores": scores,
                                  "selection": (scores["ssim"] + scores["color_histogram"]) / 2})
                best = max(cands, key=lambda c: c["selection"])
                best_ever = max(best_ever, best["selection"])
                history.append({"round": r, "prompt": "a red circle", "candidates": cands,
                                "round_best": best["variant"],
                                "round_best_selection": best["selection"],
                                "best_ever_selection": best_ever, "critique": None,
                                "revised_prompt": None})
            top = max((c for h in history for c in h["candidates"]), key=lambda c: c["selection"])
            write_json(store._record_path(label, case_id), {
                "case_id": case_id, "model": label, "category": "synthetic", "status": "done",
                "error": None, "reference": store.reference_relpath(case_id), "source": "bench",
                "license": "CC0-1.0", "ground_truth": None, "iut": None,
                "draft_prompt": "d", "initial_prompt": "a red circle", "rounds": history,
                "round1_best": max(history[0]["candidates"], key=lambda c: c["selection"]),
                "best": top, "best_ever_by_round": [h["best_ever_selection"] for h in history],
                "stop_reason": "round_limit", "judgement": None,
                "final_scores": {**top["scores"], "selection": top["selection"]},
                "t2i": {"backend": "procedural"}, "timings": {"generate": 1.0},
                "mllm_usage": {}, "decision": None,
            })


def large(args) -> None:
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        _synthetic_run(folder, args.references, args.models)
        print(f"synthetic run folder written in {time.perf_counter() - started:.1f} s",
              file=sys.stderr)
        rows = []
        # "finish": the end of the run that finished the last case (first leaderboard, stats
        # and report over all records); then a re-run of the finished run, then `report`
        for what in ("finish", "rerun", "report"):
            out = subprocess.run([sys.executable, __file__, "_large_one", "--folder", tmp,
                                  "--what", what], capture_output=True, text=True, env=_env())
            if out.returncode != 0:
                print(out.stderr[-3000:], file=sys.stderr)
                raise SystemExit(out.returncode)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    names = {"finish": "end of the finishing run (leaderboard, statistics, report: first build)",
             "rerun": "re-run of the finished run (`repainter run` again)",
             "report": "`repainter report` (rebuild the HTML report)"}
    print("| what | records | wall s (incl. imports) | peak RSS MiB |\n|---|---|---|---|")
    for r in rows:
        print(f"| {names[r['what']]} | {r['records']} | {r['seconds']:.1f} | {r['rss_mib']:.0f} |")


def _large_one(args) -> None:
    run_dir = Path(args.folder) / "run"
    started = time.perf_counter()
    if args.what in ("finish", "rerun"):
        from repainter import runner

        result = runner.run(run_dir / "spec.yaml")
        records = len(result.records)
        assert result.info.cases.reused == records and not result.info.backend
    else:
        from repainter.report.html import write_report

        write_report(run_dir)
        seconds = time.perf_counter() - started
        records = len(list((run_dir / "cases").glob("*/*.json")))
        print(json.dumps({"what": args.what, "records": records, "seconds": seconds,
                          "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
        return
    seconds = time.perf_counter() - started
    print(json.dumps({"what": args.what, "records": records, "seconds": seconds,
                      "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


# -- run-folder bytes per case --------------------------------------------------------------------


def layout(args) -> None:
    """A real small run (3 rounds x 3 variants) with this checkout, and with ``--baseline``."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, checkout in [("this branch", ROOT)] + (
                [("baseline", Path(args.baseline))] if args.baseline else []):
            folder = Path(tmp) / name.replace(" ", "-")
            subprocess.run([sys.executable, "-m", "repainter.cli", "run", "-q", "--json",
                            "--limit", str(args.references), "-o", str(folder),
                            "--set", "loop.rounds=3", "--set", "loop.variants=3"],
                           check=True, capture_output=True, env=_env(checkout), cwd=checkout)
            sizes: dict[str, int] = {}
            for path in folder.rglob("*"):
                if path.is_file():  # a SQLite file with its -wal / -shm companions
                    top = path.relative_to(folder).parts[0].split("-")[0]
                    sizes[top] = sizes.get(top, 0) + path.stat().st_size
            rows.append((name, sizes))
    keys = ["images", "cache.sqlite", "checkpoints.sqlite", "cases", "references", "report"]
    print("| layout | " + " | ".join(f"{k} KB/case" for k in keys) + " | total KB/case |")
    print("|---|" + "---|" * (len(keys) + 1))
    for name, sizes in rows:
        per = {k: sizes.get(k, 0) / args.references / 1024 for k in keys}
        total = sum(sizes.values()) / args.references / 1024
        print(f"| {name} | " + " | ".join(f"{per[k]:.1f}" for k in keys) + f" | {total:.1f} |")


def _env(checkout: Path = ROOT) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(checkout)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("throughput")
    p.add_argument("--cases", type=int, nargs="+", default=[32])
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4, 8])
    p.add_argument("--joined", type=int, nargs="*", default=[4, 8],
                   help="worker counts also run on a cluster started before the command")
    p.add_argument("--latency", type=float, default=1.0)
    p.add_argument("--mllm-latency", type=float, default=0.2)
    p = sub.add_parser("_throughput_one")
    for name in ("--folder", "--url", "--executor"):
        p.add_argument(name)
    for name in ("--workers", "--concurrency", "--cases"):
        p.add_argument(name, type=int)
    p.add_argument("--latency", type=float)
    sub.add_parser("memory")
    p = sub.add_parser("_memory_one")
    p.add_argument("--folder")
    p.add_argument("--base")
    p.add_argument("--schedule")
    p = sub.add_parser("large")
    p.add_argument("--references", type=int, default=5000)
    p.add_argument("--models", type=int, default=4)
    p.add_argument("--tmp", default=None)
    p = sub.add_parser("_large_one")
    p.add_argument("--folder")
    p.add_argument("--what")
    p = sub.add_parser("layout")
    p.add_argument("--references", type=int, default=8)
    p.add_argument("--baseline", default=None)
    args = parser.parse_args()
    {"throughput": throughput, "_throughput_one": _throughput_one, "memory": memory, "_memory_one": _memory_one, "large": large,
     "_large_one": _large_one, "layout": layout}[args.command](args)


if __name__ == "__main__":
    main()
