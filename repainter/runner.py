"""Run a spec: the one code path behind the CLI, the Python API and notebooks.

Cases run one after another through the compiled graph; after every node the case's state is
checkpointed to SQLite in the run folder, so a run started again with the same spec skips finished
cases and resumes an interrupted one at the node where it stopped. A case that fails (broken image,
bad model reply, crashed backend) is recorded with its reason and the run goes on.
"""

from __future__ import annotations

import logging
import platform
import sqlite3
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from langgraph.checkpoint.sqlite import SqliteSaver

import repainter
from repainter.cache import ResponseCache
from repainter.components import Components, build_components
from repainter.datasets import load_dataset
from repainter.environment import capture as capture_environment
from repainter.graph import RunContext, build_graph
from repainter.honesty import offline_world_warnings
from repainter.images import ImageLoadError, load_image, reference_digest
from repainter.instrument import CURRENT_CASE, timed
from repainter.logging_setup import logging_events, run_log
from repainter.preflight import preflight
from repainter.report.html import write_report
from repainter.report.leaderboard import build_leaderboard, write_leaderboard
from repainter.result import RunResult
from repainter.run_status import recorded_outcome
from repainter.spec import RunSpec, resolve_spec
from repainter.store import (
    SPEC_FILE,
    RunStore,
    check_distinct_names,
    refuse_foreign_folder,
    run_folder_lock,
)

logger = logging.getLogger(__name__)

#: Receives progress events: {"event": "start", "total": n} / {"event": "round", ...} /
#: {"event": "case", "model", "case_id", "status", "selection", "reused"}.
EventCallback = Callable[[dict[str, Any]], None]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def run(
    spec: RunSpec | str | Path | None = None,
    *,
    overrides: list[str] = (),
    on_event: EventCallback | None = None,
    **settings: Any,
) -> RunResult:
    """Run ``spec`` (a RunSpec, a spec file, or None for the built-in world) to completion.

    ``settings`` override spec keys as Python values, e.g. ``run(loop={"rounds": 5}, seed=1)``
    (merged into the spec; ``overrides`` strings such as ``"loop.rounds=5"`` apply after them).
    Before anything is written, :func:`repainter.preflight.preflight` names every problem
    (unknown names, bad params, missing folders, weights or keys) at once. The run folder is
    locked for the whole run (a second writer is refused with this process's pid); a run that
    stops on an error leaves ``run.json`` saying so (``failed`` / ``interrupted`` and the
    ``error``), never "running".
    """
    spec = resolve_spec(spec, overrides, settings)
    preflight(spec)
    if not (spec.run_dir / SPEC_FILE).exists():  # before the lock file is made in it
        refuse_foreign_folder(spec.run_dir)
    with run_folder_lock(spec.run_dir, "run"):
        return _run(spec, logging_events(on_event))


def _run(spec: RunSpec, emit: EventCallback) -> RunResult:
    store = RunStore(spec.run_dir)
    resumed = store.init(spec)
    started = time.perf_counter()
    info: dict[str, Any] = {
        "repainter_version": repainter.__version__,
        "python": platform.python_version(),
        "spec_fingerprint": spec.fingerprint(),
        "started_at": _now(),
        "resumed": resumed,
        "status": "running",
    }
    info["warnings"] = offline_world_warnings(spec)
    store.write_run_info({**store.read_run_info(), **info})
    with run_log(store.root), recorded_outcome(store, info):
        logger.info("run %s in %s (spec %s)", spec.name, store.root, info["spec_fingerprint"])
        for warning in info["warnings"]:
            logger.warning(warning)
        result = _run_cases(spec, store, info, emit, started)
        logger.info("run finished: %s", result.info.get("cases"))
        return result


def _run_cases(spec: RunSpec, store: RunStore, info: dict[str, Any], emit: EventCallback,
               started: float) -> RunResult:
    ctx, items, components = prepare_context(spec, store)
    loop_started = time.perf_counter()
    counts = {"done": 0, "failed": 0, "reused": 0}
    lock = threading.Lock()

    def tally(key: str, event: dict[str, Any]) -> None:
        with lock:
            counts[key] += 1
            emit(event)

    emit({"event": "start", "total": len(items) * len(ctx.t2i), "models": list(ctx.t2i)})
    try:
        with closing(sqlite3.connect(store.checkpoint_path, check_same_thread=False)) as conn:
            # WAL with synchronous=NORMAL: a killed process loses nothing committed (only a
            # power cut can drop the last checkpoints), and commits need no fsync each.
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            graph = build_graph(ctx, SqliteSaver(conn))

            def run_item(item) -> None:
                """All pending models of one reference; items run concurrently."""
                pending = [m for m in ctx.t2i if not store.is_done(m, item.id)]
                for model in ctx.t2i:
                    if model not in pending:
                        tally("reused", _case_event(store.read_case_record(model, item.id), True))
                if not pending:
                    return
                try:
                    previous = _stored_reference_sha256(store, item.id)
                    digest = reference_digest(ctx.reference(item.id).image)
                except Exception as exc:  # a broken input fails its cases, not the run
                    for model in pending:
                        _record_failure(store, model, item, exc, stage="load reference")
                        tally("failed", _case_event(store.read_case_record(model, item.id)))
                    return
                if previous is not None and previous != digest:
                    _restart_changed_reference(graph, ctx, item.id, pending)
                for model in pending:
                    try:
                        _run_case(graph, ctx, model, item.id, emit)
                        outcome = "done"
                    except Exception as exc:
                        _record_failure(store, model, item, exc, stage="loop")
                        outcome = "failed"
                    tally(outcome, _case_event(store.read_case_record(model, item.id)))
                ctx.forget(item.id)

            workers = spec.runtime.concurrency
            if workers == 1:
                for item in items:
                    run_item(item)
            else:
                with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="case") as pool:
                    for future in [pool.submit(run_item, item) for item in items]:
                        future.result()  # run_item records its own failures; this re-raises bugs
    finally:
        components.close()
    loop_seconds = time.perf_counter() - loop_started

    records = store.records()
    selected = {(m, i.id) for m in ctx.t2i for i in items}
    records = [r for r in records if (r["model"], r["case_id"]) in selected]
    store.write_results_jsonl(records)
    leaderboard = build_leaderboard(records, list(ctx.t2i))
    write_leaderboard(leaderboard, store.root, records)
    info.pop("error", None)  # an earlier attempt's failure: this one finished
    info.update(
        status="finished",
        finished_at=_now(),
        wall_seconds=round(time.perf_counter() - started, 3),
        cases={**counts, "total": len(selected)},
        mllm_usage=components.mllm.usage(),
        cache=components.cache.stats() if components.cache else None,
        loop_seconds=round(loop_seconds, 4),
        backend=components.clock.summary(),
        framework_seconds=round(loop_seconds - components.clock.total_seconds, 4),
        environment=capture_environment(),  # after the run: the device is known once loaded
        spec=spec.model_dump(mode="json"),
    )
    if store.unreadable:  # corrupt records met on the way (their cases were redone)
        info["unreadable_records"] = list(store.unreadable)
    store.write_run_info(info)
    try:
        write_report(store.root)
    except Exception as exc:  # results are already safe on disk; say why there is no report
        info["report_error"] = f"{type(exc).__name__}: {exc}"
        store.write_run_info(info)
        logger.warning("could not write the HTML report: %s (rebuild with `repainter report %s`)",
                       info["report_error"], store.root)
    if spec.runtime.trackers:
        from repainter.trackers import track_run

        info["trackers"] = track_run(store.root, spec.runtime.trackers)
        store.write_run_info(info)
    return RunResult(run_dir=store.root, spec=spec, records=records, leaderboard=leaderboard,
                     info=info)


def prepare_context(spec: RunSpec, store: RunStore) -> tuple[RunContext, list, Components]:
    """Select the dataset's items and build the components: everything a graph needs."""
    items = load_dataset(spec.dataset.name, spec.dataset.params).select(
        spec.dataset.categories, spec.dataset.limit
    )
    check_distinct_names("case id", [i.id for i in items])  # one file per case, model
    check_distinct_names("T2I label", [t.display_name for t in spec.t2i])
    cache = None
    if spec.runtime.cache:
        folder = Path(spec.runtime.cache_dir) if spec.runtime.cache_dir else store.root
        cache = ResponseCache(folder / "cache.sqlite")
    components = build_components(spec, cache)
    ctx = RunContext(spec=spec, store=store, mllm=components.mllm, t2i=components.t2i,
                     metrics=components.metrics,
                     items={i.id: timed(i, "dataset", components.clock) for i in items})
    return ctx, items, components


def _stored_reference_sha256(store: RunStore, case_id: str) -> str | None:
    """Pixel hash of the reference an earlier attempt saved (None: none saved yet)."""
    path = store.root / store.reference_relpath(case_id)
    if not path.exists():
        return None
    try:
        return reference_digest(load_image(path))
    except ImageLoadError:
        return ""  # unreadable: differs from any real reference, so the case starts over


def _restart_changed_reference(graph, ctx: RunContext, case_id: str, models: list[str]) -> None:
    """The reference changed since an interrupted attempt: its description, saved copy and the
    pending models' checkpoints describe the old image, so those cases start from scratch."""
    logger.warning("the reference of case %r changed since the last attempt: starting it over",
                   case_id)
    ctx.store.forget_reference(case_id)
    ctx.store.save_reference(case_id, ctx.reference(case_id).image)
    for model in models:
        graph.checkpointer.delete_thread(_thread_id(model, case_id))


def _thread_id(model: str, case_id: str) -> str:
    return f"{model}::{case_id}"


def _run_case(graph, ctx: RunContext, model: str, case_id: str, emit: EventCallback) -> None:
    rounds = ctx.spec.loop.rounds
    config = {
        "configurable": {"thread_id": _thread_id(model, case_id)},
        # each round passes 6 nodes; the rest is describe/compose/judge/finalize and margin
        "recursion_limit": 8 * rounds + 16,
    }
    token = CURRENT_CASE.set((model, case_id))
    try:
        snapshot = graph.get_state(config)
        digest = reference_digest(ctx.reference(case_id).image)
        if snapshot.next and snapshot.values.get("reference_sha256", digest) != digest:
            graph.checkpointer.delete_thread(config["configurable"]["thread_id"])
            snapshot = graph.get_state(config)
        payload = None if snapshot.next else {"case_id": case_id, "model": model}
        for update in graph.stream(payload, config, stream_mode="updates"):
            selected = update.get("select")
            if selected:
                emit({"event": "round", "model": model, "case_id": case_id,
                      "round": selected["round"], "of": rounds,
                      "best": (selected.get("best") or {}).get("selection")})
    finally:
        CURRENT_CASE.reset(token)


def _record_failure(store: RunStore, model: str, item, exc: BaseException, stage: str) -> None:
    reason = f"{stage}: {type(exc).__name__}: {exc}"
    store.write_case_record({
        "case_id": item.id,
        "model": model,
        "category": item.category,
        "status": "failed",
        "error": reason,
        "traceback": traceback.format_exception(exc)[-3:],
        "source": item.source,
        "rounds": [],
        "final_scores": {},
    })


def _case_event(record: dict[str, Any] | None, reused: bool = False) -> dict[str, Any]:
    record = record or {}
    return {
        "event": "case",
        "model": record.get("model"),
        "case_id": record.get("case_id"),
        "status": record.get("status"),
        "error": record.get("error"),
        "selection": (record.get("final_scores") or {}).get("selection"),
        "reused": reused,
    }
