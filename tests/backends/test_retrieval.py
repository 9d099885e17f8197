"""The retrieval T2I backend: scene matching on the world, a tiny open_clip text-image model,
leave-one-out through CURRENT_CASE, gallery features computed once and stored."""

from __future__ import annotations

import json

import numpy as np
import pytest

from repainter.backend_timing import CURRENT_CASE
from repainter.backends.t2i.retrieval import RetrievalT2I
from repainter.bench.world import retrieval as retrieval_module
from repainter.bench.world.grammar import scene_to_prompt
from repainter.bench.world.scene import SceneSpec
from repainter.datasets import load_dataset
from repainter.gallery_features import clear_gallery_features
from repainter.images import image_sha256
from repainter.registry import T2I

GALLERY = {"name": "world", "limit": 12}


@pytest.fixture(scope="module")
def world_refs():
    return {i.id: i.load() for i in load_dataset("world").select(None, 12)}


@pytest.fixture(scope="module")
def scene_t2i():
    return RetrievalT2I(gallery=GALLERY, method="scene", cache_dir=False)


def _composed_prompt(ref) -> str:
    """The prompt the loop composes for a reference (scene analyst's description)."""
    from repainter.bench.world.scene_analyst import SceneAnalyst
    from repainter.prompts import render_prompt

    analyst = SceneAnalyst()
    iut = analyst.describe(ref.image)
    return analyst.rewrite_prompt(render_prompt("compose_draft", iut=iut), iut)


@pytest.fixture(autouse=True)
def no_current_case():
    """Outside a run no case is current (a run in this thread leaves its last case set)."""
    token = CURRENT_CASE.set(None)
    yield
    CURRENT_CASE.reset(token)


@pytest.fixture
def current_case():
    tokens = []

    def set_case(case_id):
        tokens.append(CURRENT_CASE.set(("retrieval", case_id)))

    yield set_case
    for token in reversed(tokens):
        CURRENT_CASE.reset(token)


def test_registered_lazily():
    assert "retrieval" in T2I.names()
    assert T2I.get("retrieval") is RetrievalT2I


def test_scene_prompt_retrieves_its_scene(scene_t2i, world_refs):
    for case_id, ref in world_refs.items():
        for prompt in (_composed_prompt(ref),
                       scene_to_prompt(SceneSpec.model_validate(ref.ground_truth))):
            [out] = scene_t2i.generate([prompt], [0])
            assert out.metadata["retrieved"] == case_id, prompt
            assert image_sha256(out.image) == image_sha256(ref.image.convert("RGB"))


def test_leave_one_out_never_returns_the_current_case(scene_t2i, world_refs, current_case):
    ids = list(world_refs)
    prompts = [_composed_prompt(world_refs[i]) for i in ids]
    for case_id in ids:
        current_case(case_id)
        outs = scene_t2i.generate(prompts, list(range(len(ids))))
        for other, out in zip(ids, outs):
            assert out.metadata["retrieved"] != case_id
            assert out.metadata["excluded"] == case_id
            if other != case_id:  # X is not the current case: X is found
                assert out.metadata["retrieved"] == other
        assert scene_t2i.identity()["exclude"] == case_id


def test_seed_picks_among_top_k(world_refs):
    ref = world_refs["single-00"]
    prompt = _composed_prompt(ref)
    t2i = RetrievalT2I(gallery=GALLERY, method="scene", top_k=3, cache_dir=False)
    ranked = [i for i, _ in t2i.rank(prompt)][:3]
    got = [g.metadata["retrieved"] for g in t2i.generate([prompt] * 4, [0, 1, 2, 3])]
    assert got == [ranked[0], ranked[1], ranked[2], ranked[0]]
    one = RetrievalT2I(gallery=GALLERY, method="scene", cache_dir=False)
    assert {g.metadata["retrieved"] for g in one.generate([prompt] * 3, [5, 6, 7])} == {ranked[0]}


def test_bad_params():
    with pytest.raises(ValueError, match="gallery"):
        RetrievalT2I(method="scene")
    with pytest.raises(ValueError, match="method"):
        RetrievalT2I(gallery=GALLERY, method="nope")
    with pytest.raises(ValueError, match="clip"):
        RetrievalT2I(gallery=GALLERY, method="scene", model="ViT-B-32")


def test_in_a_run_no_case_retrieves_itself(tmp_path):
    import repainter
    from repainter.spec import build_spec

    spec = build_spec({
        "output_dir": str(tmp_path / "run"), "dataset": {"limit": 3},
        "loop": {"rounds": 1, "variants": 2}, "judge": False,
        "t2i": [{"name": "retrieval", "params": {"gallery": {"name": "world", "limit": 8},
                                                 "method": "scene", "cache_dir": False}}],
        # retrieval is not a bench component: without metrics it would get the paper preset
        "metrics": ["ssim", "color_histogram"], "selection": {"ssim": 1.0},
    })
    result = repainter.run(spec)
    for record in result.records:
        assert record.status == "done"
        assert record.t2i["exclude"] == record.case_id
        ref = result.run_dir / record.reference
        from repainter.images import load_image

        ref_hash = image_sha256(load_image(ref))
        for rnd in record.rounds:
            for cand in rnd.candidates:
                assert image_sha256(load_image(result.run_dir / cand.image)) != ref_hash


# -- clip method with a tiny open_clip model --------------------------------------------------

def test_clip_method_tiny_model(tiny_open_clip_checkpoint, tiny_tokenizer, tmp_path,
                                monkeypatch, current_case):
    torch = pytest.importorskip("torch")
    from .tiny_models import TINY_OPEN_CLIP, TINY_OPEN_CLIP_NAME

    clear_gallery_features()
    params = dict(gallery={"name": "world", "limit": 6}, method="clip", model=TINY_OPEN_CLIP_NAME,
                  pretrained=None, checkpoint=str(tiny_open_clip_checkpoint),
                  model_config=TINY_OPEN_CLIP, tokenizer=tiny_tokenizer, device="cpu",
                  cache_dir=str(tmp_path / "features"))
    t2i = RetrievalT2I(**params)
    calls = []
    original = type(t2i._clip)._embed

    def counting(self, images):
        calls.append(len(images))
        return original(self, images)

    monkeypatch.setattr(type(t2i._clip), "_embed", counting)
    prompts = ["a large red circle, blue background", "a small green star", "a yellow square"]
    first = t2i.generate(prompts, [0, 1, 2])
    again = t2i.generate(prompts, [0, 1, 2])
    assert calls == [6]  # the gallery is embedded once, in one call
    assert [g.metadata["retrieved"] for g in first] == [g.metadata["retrieved"] for g in again]
    # the ranking is the cosine of the model's text and image embeddings
    feats = t2i.features()
    with torch.no_grad():
        text = t2i._clip._model.encode_text(t2i._text._tokenize(prompts)).double().numpy()
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    expected = (text @ feats["embeddings"].T).argmax(axis=1)
    assert [g.metadata["retrieved"] for g in first] == [str(feats["ids"][i]) for i in expected]
    # stored on disk: a new process (simulated) reads the .npz instead of embedding again
    stored = list((tmp_path / "features").glob("*.npz"))
    assert len(stored) == 1
    clear_gallery_features()
    fresh = RetrievalT2I(**params)
    fresh.generate(prompts, [0, 1, 2])
    assert calls == [6]
    # leave-one-out with the clip method too
    top = first[0].metadata["retrieved"]
    current_case(top)
    assert fresh.generate(prompts[:1], [0])[0].metadata["retrieved"] != top
    ident = fresh.identity()
    assert ident["method"] == "clip" and ident["model"]["checkpoint"] == str(
        tiny_open_clip_checkpoint) and ident["gallery"]["n"] == 6
    assert json.dumps(ident)  # JSON-able (cache keys, records)
    clear_gallery_features()


def test_scene_features_computed_once(monkeypatch, tmp_path):
    clear_gallery_features()
    calls = []
    original = retrieval_module.scene_features

    def counting(ids, refs):
        calls.append(len(ids))
        return original(ids, refs)

    monkeypatch.setattr(retrieval_module, "scene_features", counting)
    a = RetrievalT2I(gallery={"name": "world", "limit": 4}, method="scene",
                     cache_dir=str(tmp_path))
    b = RetrievalT2I(gallery={"name": "world", "limit": 4}, method="scene",
                     cache_dir=str(tmp_path))
    a.generate(["a red circle"], [0])
    b.generate(["a blue square", "a star"], [0, 1])
    assert calls == [4]
    clear_gallery_features()
    b.generate(["a blue square"], [0])  # from the stored .npz
    assert calls == [4]
    clear_gallery_features()
