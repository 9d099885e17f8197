"""The scene analyst: coarse descriptions, fine critiques, revisions that bring renders closer."""

import numpy as np
import pytest

from repainter.backends.metrics.color_histogram import ColorHistogram
from repainter.backends.metrics.ssim import SSIM
from repainter.bench.world.dataset import WorldDataset
from repainter.bench.world.grammar import parse_prompt
from repainter.bench.world.object_f1 import ObjectF1
from repainter.bench.world.procedural import ProceduralT2I
from repainter.bench.world.scene import Background, ObjectSpec, SceneSpec, render_scene
from repainter.bench.world.scene_analyst import SceneAnalyst
from repainter.bench.world.vocabulary import COARSE_SIZES, COARSE_X, COARSE_Y, HUES
from repainter.registry import MLLM
from repainter.schemas import Critique, ImageUnderstandingTree

WHITE = Background(color="white", rgb=(250, 250, 250))


def _scene(*objects, background=WHITE):
    return SceneSpec(background=background, objects=list(objects))


RED = ObjectSpec(shape="circle", color="dark red", rgb=(150, 25, 25), size=0.16, x=0.14, y=0.2)
BLUE = ObjectSpec(shape="square", color="light blue", rgb=(140, 180, 240), size=0.1, x=0.7,
                  y=0.75, style="outlined")
TINY = ObjectSpec(shape="star", color="green", rgb=(50, 170, 58), size=0.04, x=0.85, y=0.15)


@pytest.fixture
def mllm():
    return MLLM.create("scene-analyst")


def test_describe_is_coarse(mllm):
    iut = mllm.describe(render_scene(_scene(RED, BLUE, TINY)))
    assert isinstance(iut, ImageUnderstandingTree)
    assert [o.attributes.shape for o in iut.objects] == ["circle", "square"]  # tiny star missed
    for o in iut.objects:
        assert o.attributes.color in HUES                      # no shade
        assert o.attributes.size in COARSE_SIZES
        for word in o.attributes.position.split():
            assert word in (*COARSE_X, *COARSE_Y)
    assert iut.objects[0].attributes.color == "red"
    assert iut.objects[0].attributes.position == "upper left"
    assert iut.objects[1].attributes.texture == "outlined"
    assert "white background" in iut.global_description


def test_rewrite_prompt_is_comma_separated_and_parseable(mllm):
    iut = mllm.describe(render_scene(_scene(RED, BLUE)))
    prompt = mllm.rewrite_prompt("draft text", iut)
    assert prompt.startswith("a flat illustration, white background, ")
    parsed = parse_prompt(prompt)
    assert [(o.shape, o.color, o.style) for o in parsed.objects] == [
        ("circle", "red", None), ("square", "blue", "outlined")]


def test_write_variants(mllm):
    prompt = "a flat illustration, white background, a large red circle at the upper left"
    variants = mllm.write_variants(prompt, 4, ImageUnderstandingTree(global_description=""),
                                   None, seed=5)
    assert len(variants) == 4 and variants[0] == prompt
    assert len(set(variants)) == 4
    assert variants == mllm.write_variants(prompt, 4, ImageUnderstandingTree(global_description=""),
                                           None, seed=5)
    for v in variants[1:]:  # small edits: still the same object
        (o,) = parse_prompt(v).objects
        assert o.shape == "circle" and "red" in o.color


def test_critique_of_an_identical_image_is_empty(mllm):
    image = render_scene(_scene(RED, BLUE))
    found = mllm.critique(image, image, "a dark red circle, a light blue outlined square")
    assert found.differences == []


def test_critique_lists_concrete_differences_and_revise_applies_them(mllm):
    reference = render_scene(_scene(RED, BLUE, TINY, background=Background(
        kind="gradient", color="light blue", rgb=(140, 180, 240), color2="white",
        rgb2=(250, 250, 250))))
    prompt = ("a flat illustration, white background, a large red circle at the upper left, "
              "a medium light blue square at the lower right, "
              "a small yellow triangle in the center")
    candidate = ProceduralT2I().generate([prompt], [0])[0].image
    found = mllm.critique(reference, candidate, prompt)
    by_target = {}
    for d in found.differences:
        by_target.setdefault(d.target, []).append(d.change)
    assert any("kind=gradient" in c for c in by_target["background"])
    assert any("color=dark red" in c for c in by_target["object:0"])          # shade
    assert any("x=far left" in c for c in by_target["object:0"])              # position
    assert any("style=outlined" in c for c in by_target["object:1"])          # style
    assert by_target["object:2"] == ["op=remove"]                              # extra object
    assert any(c.startswith("op=add") and "shape=star" in c for c in by_target["new"])
    assert found.summary and all(d.description for d in found.differences)

    revised = mllm.revise(prompt, found, ImageUnderstandingTree(global_description=""))
    parsed = parse_prompt(revised)
    assert parsed.background.kind == "gradient" and parsed.background.color2 == "white"
    assert [o.shape for o in parsed.objects] == ["circle", "square", "star"]
    assert parsed.objects[0].color == "dark red" and parsed.objects[1].style == "outlined"

    # the revision brings the render measurably closer
    truth = _scene(RED, BLUE, TINY).model_dump(mode="json")
    from repainter.backends.base import Reference
    ref = Reference("r", reference, ground_truth=truth)
    before, after = ObjectF1()(ref, [candidate, ProceduralT2I().generate([revised], [0])[0].image])
    assert after > before


def test_revise_ignores_differences_without_machine_readable_detail(mllm):
    prompt = "a flat illustration, white background, a large red circle at the upper left"
    critique = Critique.model_validate(
        {"differences": [{"aspect": "style", "description": "make it moodier"}]})
    assert mllm.revise(prompt, critique, ImageUnderstandingTree(global_description="")) == prompt


def test_judge(mllm):
    image = render_scene(_scene(RED, BLUE))
    same = mllm.judge(image, image)
    assert (same.aesthetic, same.semantic) == (5, 5)
    other = render_scene(_scene(TINY, background=Background(color="dark gray", rgb=(75, 75, 75))))
    worse = mllm.judge(image, other)
    assert worse.semantic < 3 and worse.aesthetic < 5 and worse.rationale


def test_usage_counts_calls(mllm):
    image = render_scene(_scene(RED))
    mllm.describe(image)
    mllm.judge(image, image)
    usage = mllm.usage()
    assert usage["calls"] == 2 and usage["calls_describe"] == 1


def run_case(reference, mllm, t2i, rounds: int, variants: int, case_seed: int) -> dict:
    """The loop run directly, no graph: describe -> rewrite -> (variants -> render -> score ->
    keep best-ever -> critique the best-ever render -> revise its prompt) x rounds, selecting by
    0.5 * SSIM (256 px) + 0.5 * colour-histogram intersection; object F1 of the best-ever."""
    ssim, hist, f1 = SSIM(size=256), ColorHistogram(), ObjectF1()
    prepared = (ssim.prepare(reference), hist.prepare(reference), f1.prepare(reference))
    iut = mllm.describe(reference.image)
    prompt = mllm.rewrite_prompt("", iut)
    critique = None
    best = None
    history = []
    for r in range(1, rounds + 1):
        prompts = mllm.write_variants(prompt, variants, iut, critique, seed=case_seed * 100 + r)
        seeds = [case_seed * 1000 + r * 10 + i for i in range(len(prompts))]
        images = [g.image for g in t2i.generate(prompts, seeds)]
        s = ssim.score(prepared[0], images)
        h = hist.score(prepared[1], images)
        selection = [0.5 * a + 0.5 * b for a, b in zip(s, h)]
        i = int(np.argmax(selection))
        round_best = {"prompt": prompts[i], "image": images[i], "selection": selection[i]}
        if best is None or round_best["selection"] > best["selection"]:
            best = round_best
            best["f1"] = f1.score(prepared[2], [best["image"]])[0]
        history.append(dict(best, round_best=round_best["selection"]))
        if r < rounds:
            critique = mllm.critique(reference.image, best["image"], best["prompt"])
            prompt = mllm.revise(best["prompt"], critique, iut)
    return {"round1": history[0], "final": history[-1],
            "best_by_round": [h["selection"] for h in history]}


def test_loop_improves_fidelity_on_the_world():
    """Two cases per category, 3 rounds x 3 variants: selection and object F1 both go up."""
    items = WorldDataset().items()
    picked = [i for c in ("single", "pair", "crowded", "styled")
              for i in [x for x in items if x.category == c][:2]]
    mllm, t2i = SceneAnalyst(), ProceduralT2I()
    results = [run_case(item.load(), mllm, t2i, 3, 3, case_seed=n) for n, item in enumerate(picked)]
    for r in results:
        assert all(b >= a for a, b in zip(r["best_by_round"], r["best_by_round"][1:]))
    sel_1 = np.mean([r["round1"]["selection"] for r in results])
    sel_final = np.mean([r["final"]["selection"] for r in results])
    f1_1 = np.mean([r["round1"]["f1"] for r in results])
    f1_final = np.mean([r["final"]["f1"] for r in results])
    assert sel_final > sel_1 + 0.03
    assert f1_final > f1_1 + 0.3
    assert f1_1 < 0.8  # round 1 is not already perfect
