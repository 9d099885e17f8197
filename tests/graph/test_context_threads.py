"""RunContext is shared by the worker threads of a run: one case's ``forget`` must not trip over
another case's inserts ("dictionary changed size during iteration"), nor drop its data."""

from __future__ import annotations

import sys
import threading

from PIL import Image

from repainter.backends.base import Metric, Reference
from repainter.graph.context import RunContext
from repainter.spec import RunSpec
from repainter.store import RunStore


class _Item:
    def __init__(self, case_id: str):
        self.case_id = case_id

    def load(self) -> Reference:
        image = Image.new("RGB", (2, 2), "red")
        image.putpixel((0, 0), (0, 0, 255))  # not constant: a valid reference
        return Reference(id=self.case_id, image=image)


class _Size(Metric):
    name = "size"

    def prepare(self, reference):
        return reference.id

    def score(self, prepared, candidates):
        return [0.0 for _ in candidates]


def test_forget_while_other_cases_insert(tmp_path, monkeypatch):
    cases = [f"case-{i}" for i in range(8)]
    ctx = RunContext(spec=RunSpec(), store=RunStore(tmp_path), mllm=None, t2i={},
                     metrics=[_Size()], items={c: _Item(c) for c in cases})
    monkeypatch.setattr(ctx.store, "save_reference", lambda case_id, image: None)
    image = Image.new("RGB", (1, 1))
    errors: list[BaseException] = []
    metric = ctx.metrics[0]

    def churn(case_id: str, worker: int) -> None:
        try:
            for round_number in range(100):
                ctx.reference(case_id)
                ctx.prepared(case_id, metric)
                for variant in range(16):
                    ctx.remember_render(
                        f"images/m{worker}/{case_id}/r{round_number}_v{variant}.png", image)
                ctx.forget(case_id)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    for i in range(5000):  # renders of cases in flight elsewhere: forget walks past them
        ctx.remember_render(f"images/m/other-{i}/r1_v0.png", image)
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    try:
        threads = [threading.Thread(target=churn, args=(case, i)) for i, case in enumerate(cases)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(old)
    assert not errors, errors[:3]
    assert ctx.candidate_image("images/m/other-4999/r1_v0.png") is image

    # forget drops exactly its own case: the others' data stay
    ctx.prepared("case-0", metric)
    ctx.prepared("case-1", metric)
    ctx.remember_render("images/m/case-0/r1_v0.png", image)
    ctx.remember_render("images/m/case-1/r1_v0.png", image)
    ctx.forget("case-0")
    assert ctx.candidate_image("images/m/case-1/r1_v0.png") is image
    assert "case-1" in ctx.references and "case-0" not in ctx.references
    assert ctx.prepared("case-1", metric) == "case-1"
