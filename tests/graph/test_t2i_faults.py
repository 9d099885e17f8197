"""T2I faults: out-of-memory (split and retry, then fail the case), a crash in one batch,
and blank images (flagged, never scored)."""

import pytest
from PIL import Image

import repainter.executors.prepare as prepare_module
from repainter.backends.base import GeneratedImage
from repainter.bench.world.procedural import ProceduralT2I
from repainter.graph.nodes import CaseFailure, render_batch
from repainter.runner import run


class OOMAbove:
    """Raises an out-of-memory error for batches larger than ``limit``."""

    def __init__(self, inner, limit):
        self.inner, self.limit, self.batches = inner, limit, []

    def generate(self, prompts, seeds):
        self.batches.append(len(prompts))
        if len(prompts) > self.limit:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.inner.generate(prompts, seeds)

    def identity(self):
        return self.inner.identity()

    def close(self):
        pass


def test_out_of_memory_splits_the_batch_and_gives_the_same_images():
    prompts = ["a red circle", "a blue square", "a green star"]
    seeds = [1, 2, 3]
    whole = ProceduralT2I().generate(prompts, seeds)
    backend = OOMAbove(ProceduralT2I(), limit=1)
    split = render_batch(backend, prompts, seeds)
    assert backend.batches == [3, 1, 2, 1, 1]
    assert [g.image.tobytes() for g in split] == [g.image.tobytes() for g in whole]


def test_out_of_memory_at_batch_one_fails_with_a_reason():
    with pytest.raises(CaseFailure, match="out of memory even for a batch of 1"):
        render_batch(OOMAbove(ProceduralT2I(), limit=0), ["a red circle", "x"], [1, 2])


def _patch_t2i(monkeypatch, wrap):
    original = prepare_module.prepare_context

    def prepare(spec, store):
        ctx, items, components = original(spec, store)
        ctx.t2i = {label: wrap(backend) for label, backend in ctx.t2i.items()}
        return ctx, items, components

    monkeypatch.setattr(prepare_module, "prepare_context", prepare)


class FailsForPrompt:
    def __init__(self, inner, needle):
        self.inner, self.needle = inner, needle

    def generate(self, prompts, seeds):
        if any(self.needle in p for p in prompts):
            raise ValueError(f"renderer crashed on {self.needle!r}")
        return self.inner.generate(prompts, seeds)

    def identity(self):
        return self.inner.identity()

    def close(self):
        pass


@pytest.mark.slow
def test_a_crashing_batch_fails_its_case_and_the_run_goes_on(small_spec, monkeypatch):
    from repainter.datasets import load_dataset

    items = load_dataset("world").select(limit=4)
    # a prompt clause that appears in only the first case's prompts makes only that case crash
    probe = run(small_spec)
    prompts = {r.case_id: r.initial_prompt for r in probe.records}
    target = items[0].id
    needle = next(clause for clause in prompts[target].split(", ")
                  if all(clause not in p for case, p in prompts.items() if case != target))

    rerun = small_spec.model_copy(update={"output_dir": str(small_spec.run_dir) + "-faulty"})
    _patch_t2i(monkeypatch, lambda b: FailsForPrompt(b, needle))
    result = run(rerun)
    by_case = {r.case_id: r for r in result.records}
    assert by_case[target].status == "failed"
    assert "renderer crashed" in by_case[target].error
    assert all(r.status == "done" for c, r in by_case.items() if c != target)
    assert result.info.cases.model_dump(exclude_none=True) == {"done": 3, "failed": 1, "reused": 0, "total": 4}


class BlanksFirst:
    def __init__(self, inner):
        self.inner = inner

    def generate(self, prompts, seeds):
        images = self.inner.generate(prompts, seeds)
        black = Image.new("RGB", images[0].image.size)
        return [GeneratedImage(black, images[0].prompt, images[0].seed), *images[1:]]

    def identity(self):
        return self.inner.identity()

    def close(self):
        pass


def test_blank_images_are_flagged_and_never_chosen(small_spec, monkeypatch):
    _patch_t2i(monkeypatch, BlanksFirst)
    result = run(small_spec)
    for record in result.records:
        assert record.status == "done"
        for rnd in record.rounds:
            blank = rnd.candidates[0]
            assert blank.flagged == "all_black" and blank.selection is None
            assert blank.scores == {}
            assert rnd.round_best != 0
