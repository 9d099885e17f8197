"""Benchmarks for issue 6, measured in one run on this machine; writes BENCHMARKS.md.

    python bench/run_benchmarks.py            # all scenarios, then BENCHMARKS.md
    python bench/run_benchmarks.py --scenario world --json   # one scenario (used internally)

Each scenario runs in its own subprocess so its peak RSS is its own. Model-backed scenarios use
real-size architectures with RANDOM weights (open_clip ViT-B-32, DINOv2-base, LPIPS AlexNet):
timings only, never scores. Nothing here needs a network or a GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sections import write_section  # bench/ is sys.path[0] when run as a script

ROOT = Path(__file__).resolve().parents[1]
COMMAND = "python bench/run_benchmarks.py"


# -- helpers -------------------------------------------------------------------------------------


def _median_seconds(fn, repeats: int = 3) -> float:
    fn()  # warm-up (first call allocates, compiles kernels, fills caches)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _random_real_size_models(folder: Path) -> dict:
    """Real-size architectures with random weights, saved where users keep theirs."""
    import open_clip
    import torch
    from torchvision.models import alexnet
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    torch.manual_seed(0)
    clip_path = folder / "vit-b-32-random.pt"
    torch.save(open_clip.create_model("ViT-B-32", pretrained=None).state_dict(), clip_path)
    dino_path = folder / "dinov2-base-random"
    Dinov2Model(Dinov2Config()).save_pretrained(dino_path)  # the default config is dinov2-base
    BitImageProcessor(size={"shortest_edge": 256}, crop_size={"height": 224, "width": 224},
                      do_center_crop=True, image_mean=[0.485, 0.456, 0.406],
                      image_std=[0.229, 0.224, 0.225]).save_pretrained(dino_path)
    alex_path = folder / "alexnet-random.pth"
    torch.save(alexnet(weights=None).state_dict(), alex_path)
    return {
        "clip_i": {"model": "ViT-B-32", "pretrained": None, "checkpoint": str(clip_path),
                   "device": "cpu"},
        "dinov2": {"model": str(dino_path), "device": "cpu"},
        "lpips": {"net": "alex", "backbone_weights": str(alex_path), "device": "cpu"},
    }


def _run_summary(result) -> dict:
    info = result.info
    rounds = sum(len(r.rounds) for r in result.records)
    backend = info.backend
    return {
        "cases": len(result.records),
        "case_rounds": rounds,
        "wall_seconds": info.wall_seconds,
        "loop_seconds": info.loop_seconds,
        "setup_seconds": info.setup_seconds,
        "release_seconds": info.release_seconds,
        "backend_seconds": backend["total_seconds"],
        "framework_seconds": info.framework_seconds,
        # share of the per-case loop (loading and releasing models, one-time, are apart)
        "framework_share": info.framework_seconds / (info.loop_seconds - info.setup_seconds
                                                     - info.release_seconds),
        "framework_ms_per_case_round": 1000 * info.framework_seconds / max(rounds, 1),
        "backend_calls": sum(backend["calls"].values()),
        "cache": info.cache,
    }


# -- scenarios (each runs in its own process) -----------------------------------------------------


def scenario_world(workdir: Path) -> dict:
    """The whole bundled world, 3 rounds x 3 variants, built-in backends, no cache."""
    from repainter import run
    from repainter.spec import build_spec

    spec = build_spec({"output_dir": str(workdir / "world"), "runtime": {"cache": False}})
    return _run_summary(run(spec))


def scenario_rerun(workdir: Path) -> dict:
    """A finished run started again (same folder), and the same spec into a new folder that
    shares the first one's cache: backend calls and wall time of each."""
    from repainter import run
    from repainter.spec import build_spec

    shared = {"cache_dir": str(workdir / "cache")}
    first = build_spec({"output_dir": str(workdir / "a"), "runtime": shared})
    run(first)
    started = time.perf_counter()
    again = run(first)
    same_folder = time.perf_counter() - started
    started = time.perf_counter()
    fresh = run(build_spec({"output_dir": str(workdir / "b"), "runtime": shared}))
    new_folder = time.perf_counter() - started
    def model_calls(result) -> int:  # MLLM and T2I calls (not metrics, not dataset decoding)
        # a re-run of a finished run executes nothing, so it records no backend section at all
        calls = (result.info.backend or {}).get("calls", {})
        return sum(n for key, n in calls.items() if key.startswith(("mllm:", "t2i:")))

    return {
        "same_folder_seconds": same_folder,
        "same_folder_backend_calls": model_calls(again),
        "new_folder_seconds": new_folder,
        "new_folder_backend_calls": model_calls(fresh),
        "new_folder_cache": fresh.info.cache,
        "cases": len(fresh.records),
    }


def scenario_models(workdir: Path) -> dict:
    """The loop with real-size random-init metric models (the paper's selection metrics)."""
    from repainter import run
    from repainter.spec import build_spec

    params = _random_real_size_models(workdir)
    spec = build_spec({
        "output_dir": str(workdir / "models"), "dataset": {"limit": 4},
        "metrics": [{"name": "clip_i", "params": params["clip_i"]},
                    {"name": "dinov2", "params": params["dinov2"]},
                    {"name": "lpips", "params": params["lpips"]}, {"name": "ssim"}],
        "selection": {"clip_i": 0.5, "dinov2": 0.5},
        "runtime": {"cache": False},
    })
    return _run_summary(run(spec))


def scenario_scoring(workdir: Path) -> dict:
    """Selection scoring (CLIP ViT-B-32 + DINOv2-base) of 3 and 9 candidates: the batched path
    (reference features once, candidates in one batch) vs the reference method's per-image path
    (both images embedded for every pair) vs bare model forward passes on ready tensors."""
    import torch

    from repainter.backends.base import Reference
    from repainter.bench.world.dataset import WorldDataset
    from repainter.registry import METRICS

    torch.set_num_threads(os.cpu_count() or 1)
    params = _random_real_size_models(workdir)
    clip = METRICS.create("clip_i", **params["clip_i"])
    dino = METRICS.create("dinov2", **params["dinov2"])
    items = WorldDataset().items()
    images = [item.load().image for item in items[:10]]
    reference = Reference("ref", images[0])
    out = {}
    for n in (3, 9):
        out[str(n)] = _time_scoring(clip, dino, reference, images[1:n + 1])
    return out


def _time_scoring(clip, dino, reference, candidates) -> dict:
    import torch

    def batched():
        for metric in (clip, dino):
            metric.score(metric.prepare(reference), candidates)

    def per_image():
        for metric in (clip, dino):
            for candidate in candidates:
                metric.score(metric.prepare(reference), [candidate])

    clip_batch = torch.stack([clip._preprocess(im) for im in [reference.image, *candidates]])
    dino_batch = dino._processor(images=[reference.image, *candidates],
                                 return_tensors="pt")["pixel_values"]

    def bare():
        with torch.inference_mode():
            clip._model.encode_image(clip_batch)
            dino._model(pixel_values=dino_batch)

    t_batched, t_per_image, t_bare = (_median_seconds(batched), _median_seconds(per_image),
                                      _median_seconds(bare))
    return {"batched_s": t_batched, "per_image_s": t_per_image, "bare_forward_s": t_bare,
            "speedup_vs_per_image": t_per_image / t_batched, "batched_over_bare": t_batched / t_bare}


def scenario_mllm_concurrency(workdir: Path) -> dict:
    """24 cases x 3 rounds against an OpenAI-compatible server on loopback that answers every
    call after 200 ms: one case at a time vs 24 in flight (client limit 24 in both runs)."""
    from repainter import run
    from repainter.spec import build_spec
    from repainter.testing import OpenAICompatServer

    os.environ["REPAINTER_BENCH_KEY"] = "sk-bench-not-a-real-key"
    out = {}
    with OpenAICompatServer(latency=0.2) as server:
        for label, concurrency in (("sequential", 1), ("concurrent", 24)):
            server.reset_stats()
            spec = build_spec({
                "output_dir": str(workdir / label), "dataset": {"limit": 24},
                "t2i": [{"name": "procedural", "params": {"size": 64}}],
                "metrics": [{"name": "color_histogram", "params": {"size": 32}}],
                "selection": {"color_histogram": 1.0},
                "mllm": {"name": "openai", "params": {
                    "model": "bench", "base_url": server.url, "api_key_env": "REPAINTER_BENCH_KEY",
                    "concurrency": 24, "timeout": 30.0}},
                "runtime": {"cache": False, "concurrency": concurrency},
            })
            started = time.perf_counter()
            result = run(spec)
            wall = time.perf_counter() - started
            stats = server.stats()
            out[label] = {"wall_seconds": wall, "requests": stats["requests"],
                          "peak_in_flight": stats["peak_in_flight"],
                          "calls_per_second": stats["requests"] / wall,
                          "done": sum(r.done for r in result.records)}
    out["speedup"] = out["sequential"]["wall_seconds"] / out["concurrent"]["wall_seconds"]
    return out


SCENARIOS = {
    "world": scenario_world,
    "rerun": scenario_rerun,
    "models": scenario_models,
    "scoring": scenario_scoring,
    "mllm_concurrency": scenario_mllm_concurrency,
}


# -- orchestration ---------------------------------------------------------------------------------


def _run_in_subprocess(name: str) -> tuple[dict, float]:
    """Run one scenario in a child process; return its JSON result and peak RSS in MiB."""
    process = subprocess.Popen([sys.executable, __file__, "--scenario", name, "--json"],
                               stdout=subprocess.PIPE, cwd=ROOT)
    stdout = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    if status != 0:
        raise SystemExit(f"scenario {name} failed (status {status})")
    return json.loads(stdout), usage.ru_maxrss / 1024  # Linux reports KiB


def _machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    return (f"{platform.system()} {platform.machine()} ({cpu}), {os.cpu_count()} CPUs, "
            f"Python {platform.python_version()}, torch {torch.__version__}, no GPU")


def write_markdown(results: dict, rss: dict, path: Path) -> None:
    w, m, r, s = results["world"], results["models"], results["rerun"], results["scoring"]
    ok = lambda cond: "met" if cond else "**not met**"  # noqa: E731
    lines = [
        "# Benchmarks",
        "",
        f"Produced by `{COMMAND}` in one run on: {_machine()}.",
        "Model-backed rows use real-size architectures with **random weights** (timing only).",
        "",
        "## Framework overhead (wall time of the case loop minus time inside backend calls)",
        "",
        "Loading the models (setup: building the components) and releasing them are one-time costs,",
        "timed apart; framework = loop - setup - release - time inside backend calls, and its share",
        "is of loop - setup - release (the per-case loop).",
        "",
        "| run | cases x rounds | loop s | setup s | release s | in backends s | framework s | framework share | ms per case-round | target | peak RSS MiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        f"| built-in world (32 refs, 3x3, no cache) | {w['case_rounds']} | {w['loop_seconds']:.2f} | "
        f"{w['setup_seconds']:.2f} | {w['release_seconds']:.2f} | {w['backend_seconds']:.2f} | "
        f"{w['framework_seconds']:.2f} | "
        f"{w['framework_share']:.1%} | "
        f"{w['framework_ms_per_case_round']:.1f} | < 20 ms: {ok(w['framework_ms_per_case_round'] < 20)} | "
        f"{rss['world']:.0f} |",
        f"| real-size metrics: CLIP ViT-B-32 + DINOv2-base + LPIPS AlexNet + SSIM (4 refs, 3x3) | "
        f"{m['case_rounds']} | {m['loop_seconds']:.2f} | {m['setup_seconds']:.2f} | "
        f"{m['release_seconds']:.2f} | {m['backend_seconds']:.2f} | "
        f"{m['framework_seconds']:.2f} | {m['framework_share']:.1%} | "
        f"{m['framework_ms_per_case_round']:.1f} | < 1%: {ok(m['framework_share'] < 0.01)} | "
        f"{rss['models']:.0f} |",
        "",
        "## Scoring throughput: batched vs the reference method's per-image path",
        "",
        "Selection metrics CLIP ViT-B-32 + DINOv2-base on CPU. Per-image: both images embedded for",
        "every (reference, candidate) pair, one at a time. Batched: the reference embedded once, the",
        "candidates in one batch. Bare: the two models' forward passes on ready tensors.",
        "",
        "| candidates | per-image s | batched s | bare forward s | speed-up (target >= 3x) | batched / bare (target <= 1.3) |",
        "|---|---|---|---|---|---|",
    ]
    for n in ("3", "9"):
        row = s[n]
        lines.append(
            f"| {n} | {row['per_image_s']:.3f} | {row['batched_s']:.3f} | {row['bare_forward_s']:.3f} | "
            f"{row['speedup_vs_per_image']:.2f}x ({ok(row['speedup_vs_per_image'] >= 3)}) | "
            f"{row['batched_over_bare']:.2f} ({ok(row['batched_over_bare'] <= 1.3)}) |")
    lines += [
        "",
        "Why 3x is not met here: on a 2-core CPU a batch of N images costs about N times one image",
        "(the cores are already saturated), so batching saves only the reference embedding that the",
        "per-image path repeats for every pair: 2N forward passes become N + 1, at most 2x. On a GPU,",
        "where a batch of 9 costs little more than one image, the same code path should give the",
        "larger ratio; no GPU was available to measure it. The batched path stays within the 1.3x",
        "bound of the bare forward passes.",
        "",
        f"Peak RSS of the scoring scenario: {rss['scoring']:.0f} MiB.",
        "",
        "## Re-running a finished run",
        "",
        "| what | MLLM + T2I calls | wall s |",
        "|---|---|---|",
        f"| same spec, same folder (every case already finished) | {r['same_folder_backend_calls']} | "
        f"{r['same_folder_seconds']:.2f} |",
        f"| same spec, new folder, shared cache ({r['cases']} cases) | {r['new_folder_backend_calls']} | "
        f"{r['new_folder_seconds']:.2f} |",
        "",
        f"Cache counts of the new-folder run: `{json.dumps(r['new_folder_cache'])}`. Peak RSS: "
        f"{rss['rerun']:.0f} MiB.",
    ]
    c = results["mllm_concurrency"]
    seq, conc = c["sequential"], c["concurrent"]
    lines += [
        "",
        "## MLLM concurrency (OpenAI-compatible server on loopback, 200 ms per call)",
        "",
        "24 cases x 3 rounds x 3 variants, the real `openai` client, no cache; procedural T2I at 64 px",
        "and one small metric, so the MLLM's latency dominates.",
        "",
        "| run | cases in flight | requests | peak requests in flight | wall s | calls/s | peak RSS MiB |",
        "|---|---|---|---|---|---|---|",
        f"| sequential | 1 | {seq['requests']} | {seq['peak_in_flight']} | {seq['wall_seconds']:.1f} | "
        f"{seq['calls_per_second']:.1f} | - |",
        f"| concurrent | 24 | {conc['requests']} | {conc['peak_in_flight']} | {conc['wall_seconds']:.1f} | "
        f"{conc['calls_per_second']:.1f} | {rss['mllm_concurrency']:.0f} (both runs) |",
        "",
        f"Throughput ratio: **{c['speedup']:.1f}x** (target >= 8x: {ok(c['speedup'] >= 8)}).",
    ]
    # the file's first section: other scripts (bench/scaling.py, bench/meta_eval.py) own the rest
    write_section(path, "run_benchmarks", "\n".join(lines), at_start=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", choices=sorted(SCENARIOS))
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--output", default=str(ROOT / "BENCHMARKS.md"))
    args = parser.parse_args()
    if args.scenario:
        workdir = Path(tempfile.mkdtemp(prefix=f"repainter-bench-{args.scenario}-"))
        try:
            print(json.dumps(SCENARIOS[args.scenario](workdir)))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        return
    results, rss = {}, {}
    for name in SCENARIOS:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        results[name], rss[name] = _run_in_subprocess(name)
        print(json.dumps(results[name])[:400], file=sys.stderr)
    write_markdown(results, rss, Path(args.output))
    print(f"wrote {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
