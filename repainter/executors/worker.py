"""One case through the graph: the code every executor runs, wherever a case runs.

A ``CaseWorker`` holds a run context (the spec's components, built once) and the compiled graph
with its checkpointer; ``run_case`` runs one (model, reference) case to its record, recording a
failure with its reason instead of raising. The local executor drives one worker over the run
folder; each Ray actor drives its own over a scratch folder and ships the case's files back.
"""

from __future__ import annotations

import logging
import re
import traceback
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from repainter.backend_timing import CURRENT_CASE
from repainter.backends.base import CURRENT_PROMPT_BUDGET
from repainter.components import Components
from repainter.failures import FailureKind, classify
from repainter.graph import RunContext, build_graph
from repainter.graph.build import NODE_DONE, SequentialGraph
from repainter.graph.nodes import case_adaptations
from repainter.images import ImageLoadError, load_image, reference_digest
from repainter.records import CaseRecord
from repainter.store import RunStore

#: Receives progress events: {"event": "start", "total": n, "models": [...]} /
#: {"event": "workers_ready", "workers": n} (Ray) / {"event": "round", ...} /
#: {"event": "case", "model", "case_id", "status", "selection", "reused"}.
EventCallback = Callable[[dict[str, Any]], None]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, order=True)
class CaseTask:
    """One unit of work: a T2I model (its label) on one reference of the dataset."""

    model: str
    case_id: str

    @property
    def thread_id(self) -> str:
        return f"{self.model}::{self.case_id}"


class CaseWorker:
    """Runs whole cases through the graph with one set of components.

    With ``progress`` (:class:`repainter.executors.checkpoints.CaseProgress`), a fresh case runs
    its nodes one after another (:class:`repainter.graph.build.SequentialGraph`, no LangGraph
    step machinery) and its state is saved after every node; a case with saved progress, or
    with checkpoints (of an earlier version, or of this process), goes on through the compiled
    graph checkpointed by ``checkpointer``, from its last finished node.
    """

    def __init__(self, ctx: RunContext, components: Components, checkpointer=None,
                 progress=None):
        self.ctx, self.components, self.checkpointer = ctx, components, checkpointer
        self.progress = progress if checkpointer is not None else None
        self._graph = None  # compiled on first use: with progress, only a resumed case needs it
        self.sequential = SequentialGraph(ctx) if self.progress is not None else None
        # threads the checkpointed graph ran in this process; checkpoints left by an earlier
        # version (looked up once: a fresh case then costs no checkpoint query)
        self._checkpointed: set[str] = set()
        self._legacy = self.progress is not None and _has_checkpoints(checkpointer)
        self._saved_references: dict[str, Future[str]] = {}  # case id -> hash of its saved copy

    @property
    def graph(self):
        """The compiled graph, checkpointed by the worker's checkpointer."""
        if self._graph is None:
            self._graph = build_graph(self.ctx, self.checkpointer)
        return self._graph

    @property
    def store(self) -> RunStore:
        return self.ctx.store

    def run_case(self, task: CaseTask, emit: EventCallback) -> CaseRecord:
        """Run ``task`` (resuming from its checkpoint if any); return its record, done or failed."""
        try:
            return self._run(task, emit)
        finally:
            if self.components.cache is not None:  # one cache commit per case
                self.components.cache.flush()

    def _run(self, task: CaseTask, emit: EventCallback) -> CaseRecord:
        item = self.ctx.items[task.case_id]
        try:
            self._check_reference(task)
        except Exception as exc:  # a broken input fails its cases, not the run
            return record_failure(self.store, task.model, item, exc, stage="load reference")

        def digest() -> str:
            return self.ctx.reference_sha256(task.case_id)

        try:
            self._stream(task, emit, digest)
        except Exception as exc:
            adapted = case_adaptations(self.components.mllm, task.model, task.case_id)
            return record_failure(self.store, task.model, item, exc, stage="loop",
                                  mllm_adaptations=adapted)
        record = self.store.read_case_record(task.model, task.case_id)
        if record is None:  # the graph ended without finalize: a bug, say so in the record
            return record_failure(self.store, task.model, item,
                                  RuntimeError("the case ended without a record"), stage="loop")
        self.prune(task)
        return record

    def _check_reference(self, task: CaseTask) -> None:
        """Load the case's reference (hashed off the loop) and start the case over if it is not
        the copy an earlier attempt saved. That copy is read back once per process: later cases
        of the reference (other models) find the copy this process checked or saved."""
        known = self._saved_references.get(task.case_id)
        previous = known.result() if known else _stored_reference_sha256(self.store, task.case_id)
        digest = self.ctx.reference_hash(task.case_id)  # saves the copy if there is none
        if previous is not None and previous != digest.result():
            self._restart_changed_reference(task)
        self._saved_references[task.case_id] = digest

    def _restart_changed_reference(self, task: CaseTask) -> None:
        """The reference changed since an interrupted attempt: its description, saved copy and
        this case's checkpoints describe the old image, so the case starts from scratch (other
        models' checkpoints are dropped when they run: their state names the old hash)."""
        logger.warning("the reference of case %r changed since the last attempt: starting it over",
                       task.case_id)
        self.store.forget_reference(task.case_id)
        self.store.save_reference(task.case_id, self.ctx.reference(task.case_id).image)
        self.prune(task)

    def _stream(self, task: CaseTask, emit: EventCallback, digest: Callable[[], str]) -> None:
        rounds = self.ctx.spec.loop.rounds
        config = {
            "configurable": {"thread_id": task.thread_id},
            # each round passes 6 nodes; the rest is describe/compose/judge/finalize and margin
            "recursion_limit": 8 * rounds + 16,
            # one node runs at a time, and checkpoints only queue on the run's writer: one
            # helper thread per case instead of LangGraph's default pool started per case
            "max_concurrency": 1,
        }
        token = CURRENT_CASE.set((task.model, task.case_id))
        # the MLLM writes prompts for this model's prompt budget (tokens its text encoder reads)
        budget = getattr(self.ctx.t2i[task.model], "prompt_budget", None)
        budget_token = CURRENT_PROMPT_BUDGET.set(budget() if callable(budget) else None)
        progress = self.progress
        done_token = NODE_DONE.set(None if progress is None else
                                   lambda node, state: progress.save(task.thread_id, node, state))
        try:
            graph, payload = self._start(task, config, digest)
            for update in graph.stream(payload, config, stream_mode="updates"):
                selected = update.get("select")
                if selected:
                    emit({"event": "round", "model": task.model, "case_id": task.case_id,
                          "round": selected["round"], "of": rounds,
                          "best": (selected.get("best") or {}).get("selection")})
        finally:
            NODE_DONE.reset(done_token)
            CURRENT_PROMPT_BUDGET.reset(budget_token)
            CURRENT_CASE.reset(token)

    def _start(self, task: CaseTask, config: dict, digest: Callable[[], str]
               ) -> tuple[Any, dict | None]:
        """The graph to run the case in and its input: None resumes the case's checkpoint.
        Saved state of another reference than ``digest()`` is dropped: the case starts over."""
        # the graph's input is (case_id, model); its describe node records the digest
        fresh = {"case_id": task.case_id, "model": task.model}
        if self.checkpointer is None:
            return self.graph, fresh
        if self._checkpointed_case(task):
            snapshot = self.graph.get_state(config)
            if snapshot.next and snapshot.values.get("reference_sha256", digest()) != digest():
                self.prune(task)  # checkpoints of an older reference: start over
            elif snapshot.next:
                return self.graph, None
        if self.progress is None:
            return self.graph, fresh
        saved = self.progress.load(task.thread_id)
        if saved is not None and saved[1].get("reference_sha256", digest()) != digest():
            self.prune(task)
            saved = None
        if saved is None:
            return self.sequential, fresh
        node, state = saved  # a checkpoint as if the node had just run: the graph goes on
        self._checkpointed.add(task.thread_id)
        self.graph.update_state(config, state, as_node=node)
        return self.graph, None

    def _checkpointed_case(self, task: CaseTask) -> bool:
        """Whether the case may have LangGraph checkpoints: every case without saved progress,
        and with it, those of an earlier version or resumed through the compiled graph here."""
        return self.progress is None or self._legacy or task.thread_id in self._checkpointed

    def prune(self, task: CaseTask) -> None:
        """Drop a finished case's intermediate checkpoints: its record is the result now."""
        if self._checkpointed_case(task) and hasattr(self.checkpointer, "delete_thread"):
            self.checkpointer.delete_thread(task.thread_id)
        self._checkpointed.discard(task.thread_id)
        if self.progress is not None:
            self.progress.delete(task.thread_id)

    def forget(self, case_id: str) -> None:
        self.ctx.forget(case_id)

    def release(self, model: str) -> dict[str, Any]:
        return self.components.release(model)


def _has_checkpoints(checkpointer) -> bool:
    """Whether ``checkpointer`` holds any checkpoint (of any case)."""
    return next(iter(checkpointer.list(None, limit=1)), None) is not None


def _stored_reference_sha256(store: RunStore, case_id: str) -> str | None:
    """Pixel hash of the reference an earlier attempt saved (None: none saved yet)."""
    path = store.root / store.reference_relpath(case_id)
    if not path.exists():
        return None
    try:
        return reference_digest(load_image(path))
    except ImageLoadError:
        return ""  # unreadable: differs from any real reference, so the case starts over


def record_failure(store: RunStore, model: str, item, exc: BaseException | str,
                   stage: str, mllm_adaptations: list[dict[str, Any]] | None = None
                   ) -> CaseRecord:
    """Write (and return) the record of a case that failed, with the reason."""
    if isinstance(exc, BaseException):
        reason = f"{stage}: {type(exc).__name__}: {exc}"
        trace = traceback.format_exception(exc)[-3:]
        kind = classify(exc, stage)
    else:
        reason, trace = f"{stage}: {exc}", []
        # a message written here ("worker lost 3 times (...)"): its head is the kind
        kind = FailureKind(kind=f"{stage}: {re.split(r'[(:]', exc)[0].strip()}", permanent=False)
    record = CaseRecord(case_id=item.id, model=model, category=item.category, status="failed",
                        error=reason, error_kind=kind.kind, error_permanent=kind.permanent,
                        traceback=trace, source=item.source, rounds=[], final_scores={},
                        # what the MLLM adapted before the case failed, where it did
                        **({"mllm_adaptations": mllm_adaptations} if mllm_adaptations else {}))
    store.write_case_record(record)
    return record


def case_event(record: CaseRecord | None, reused: bool = False) -> dict[str, Any]:
    """The progress event of a finished (or reused) case."""
    return {
        "event": "case",
        "model": record.model if record else None,
        "case_id": record.case_id if record else None,
        "status": record.status if record else None,
        "error": record.error if record else None,
        "selection": record.final_score("selection") if record else None,
        "reused": reused,
    }
