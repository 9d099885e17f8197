"""DAR scoring: rank bookkeeping, text scorers, the scene-layout image embedding, fusion."""

from __future__ import annotations

import numpy as np
import pytest

from repainter.backends.base import Reference
from repainter.bench.world.dar import query_concepts
from repainter.bench.world.embedding import SceneLayoutEmbedding
from repainter.bench.world.grammar import scene_to_prompt
from repainter.bench.world.scene import SceneSpec, render_scene
from repainter.dar import (
    GalleryIndex,
    ahead_and_tied,
    build_text_scorer,
    expected_hits,
    fuse,
    zscore,
)
from repainter.datasets import load_dataset


def test_rank_bookkeeping():
    assert ahead_and_tied(np.array([0.1, 0.9, 0.5]), 2) == (1, 0)
    assert ahead_and_tied(np.array([0.5, 0.5, 0.5, 0.1]), 1) == (0, 2)
    # a constant score puts the target in the middle in expectation, not first or last
    assert expected_hits(0, 31, 10) == pytest.approx(10 / 32)
    assert expected_hits(3, 0, 1) == 0.0 and expected_hits(0, 0, 1) == 1.0
    assert expected_hits(12, 4, 10) == 0.0
    assert np.all(zscore(np.ones(4)) == 0)
    text, image = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    assert np.allclose(fuse(text, image, 1.0), zscore(text))
    assert np.allclose(fuse(text, image, 0.0), zscore(image))


def test_concept_text_scorer_ignores_binding_and_position():
    a = query_concepts("a large red circle at the top left, a small blue square at the bottom right")
    b = query_concepts("a blue circle at the bottom, a red square at the top")
    assert a == b == {"color:red", "color:blue", "shape:circle", "shape:square"}


def test_text_scorer_names_and_params():
    assert build_text_scorer("concepts").name == "concepts"
    assert build_text_scorer({"name": "scene"}).name == "scene"
    with pytest.raises(ValueError, match="text_scorer must be one of"):
        build_text_scorer("nope")
    with pytest.raises(ValueError, match="takes no params"):
        build_text_scorer({"name": "concepts", "params": {"x": 1}})


def _swapped_and_moved(scene: SceneSpec) -> tuple[SceneSpec, SceneSpec]:
    """The same colours and shapes, bound differently / placed differently."""
    a, b = scene.objects[:2]
    swapped = scene.model_copy(update={"objects": [
        a.model_copy(update={"color": b.color, "rgb": b.rgb}),
        b.model_copy(update={"color": a.color, "rgb": a.rgb}), *scene.objects[2:]]})
    moved = scene.model_copy(update={"objects": [
        a.model_copy(update={"x": b.x, "y": b.y}), b.model_copy(update={"x": a.x, "y": a.y}),
        *scene.objects[2:]]})
    return swapped, moved


@pytest.fixture(scope="module")
def pair_scenes():
    return [SceneSpec.model_validate(item.load().ground_truth)
            for item in load_dataset("world").select(["pair"], 8)]


def test_scene_layout_sees_binding_and_layout(pair_scenes):
    emb = SceneLayoutEmbedding()
    for scene in pair_scenes[:4]:
        swapped, moved = _swapped_and_moved(scene)
        vectors = emb.embed([render_scene(s) for s in (scene, scene, swapped, moved)])
        sims = emb.similarities(vectors[:1], vectors)[0]
        assert sims[1] == pytest.approx(1.0)
        assert sims[2] < 0.95 and sims[3] < 0.95
    with pytest.raises(ValueError):
        SceneLayoutEmbedding(grid=1)


def test_generated_images_separate_what_concepts_cannot(pair_scenes):
    """The DAR premise, in miniature: a gallery of targets and their colour-swapped and
    position-swapped twins. The concept text score cannot tell a target from its twins; the
    image rendered from the full description can."""
    from repainter.bench.world.procedural import ProceduralT2I

    gallery, targets = [], []
    for n, scene in enumerate(pair_scenes):
        swapped, moved = _swapped_and_moved(scene)
        for kind, s in (("target", scene), ("swapped", swapped), ("moved", moved)):
            gallery.append(Reference(id=f"{kind}-{n}", image=render_scene(s)))
        targets.append(len(gallery) - 3)
    index = GalleryIndex.build(gallery, "concepts", "scene_layout")
    t2i = ProceduralT2I()
    text_hits, fused_hits = [], []
    for n, scene in enumerate(pair_scenes):
        query = scene_to_prompt(scene)
        text = index.text_scores(query)
        image = index.image_scores([t2i.generate([query], [n])[0].image])
        text_hits.append(expected_hits(*ahead_and_tied(text, targets[n]), 1))
        fused_hits.append(expected_hits(*ahead_and_tied(fuse(text, image, 0.5), targets[n]), 1))
    assert max(text_hits) <= 1 / 3 + 1e-9  # at best a three-way tie with the twins
    assert np.mean(fused_hits) > np.mean(text_hits) + 0.3
