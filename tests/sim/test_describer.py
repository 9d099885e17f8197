"""sim-describer: one perception for every role, its own English, revisions from feedback."""

from __future__ import annotations

from repainter.bench.sim.describer import SimDescriber
from repainter.bench.sim.phrasing import read_prompt
from repainter.bench.world.scene import Background, ObjectSpec, SceneSpec, render_scene
from repainter.schemas import Critique, Difference

SCENE = SceneSpec(background=Background(color="light blue", rgb=(140, 180, 240)), objects=[
    ObjectSpec(shape="star", color="dark red", rgb=(150, 25, 25), size=0.12, x=0.3, y=0.3),
    ObjectSpec(shape="square", color="yellow", rgb=(235, 205, 40), size=0.09, x=0.7, y=0.7)])


def test_perception_noise_is_fixed_per_image_and_seed():
    image = render_scene(SCENE, 128)
    a, b = SimDescriber(), SimDescriber()
    assert a.see(image) == b.see(image)
    assert a.describe(image) == b.describe(image)
    noisy = [SimDescriber(noise=3.0, seed=s).see(image) for s in range(6)]
    assert len({tuple((o.x, o.y) for o in p.objects) for p in noisy}) > 1  # the seed matters


def test_describe_and_prompt_in_its_own_words():
    d = SimDescriber(idiolect=0)
    iut = d.describe(render_scene(SCENE))
    assert [(o.attributes.shape, o.attributes.color) for o in iut.objects] == [
        ("star", "dark red"), ("square", "yellow")]
    prompt = d.rewrite_prompt("", iut)
    read = read_prompt(prompt)
    assert [(o.shape, o.color) for o in read.objects] == [("star", "dark red"), ("square", "yellow")]
    assert read.background.color == "light blue"


def test_critique_of_the_reference_itself_is_empty_and_a_missing_object_is_found():
    d = SimDescriber()
    image = render_scene(SCENE)
    prompt = d.rewrite_prompt("", d.describe(image))
    assert d.critique(image, image, prompt).differences == []
    alone = render_scene(SCENE.model_copy(update={"objects": SCENE.objects[:1]}))
    found = d.critique(image, alone, prompt)
    assert [x.change.split(";")[0] for x in found.differences] == ["op=missing"]
    assert "square" in found.differences[0].description
    assert d.judge(image, image).semantic == 5 and d.judge(image, alone).semantic < 5


def test_revise_moves_a_missing_object_first_and_rewords_a_wrong_one():
    d = SimDescriber(idiolect=0)
    prompt = d.rewrite_prompt("", d.describe(render_scene(SCENE)))
    missing = Critique(differences=[Difference(
        target="clause:1", change="op=missing; shape=square; color=yellow; size=medium; x=right; y=lower; style=flat",
        description="missing")], summary="")
    revised = d.revise(prompt, missing, d.describe(render_scene(SCENE)))
    assert [o.shape for o in read_prompt(revised).objects] == ["square", "star"]
    # the missing object, not drawn at all, is written in its plainest words
    missed = SimDescriber(idiolect=3)
    fancy = missed.rewrite_prompt("", d.describe(render_scene(SCENE)))
    assert "golden box at the low right-hand" in fancy
    assert missed.revise(fancy, missing, d.describe(render_scene(SCENE))).startswith(
        "A medium-sized yellow square at the lower right,")
    wrong = Critique(differences=[Difference(
        aspect="content", target="clause:0", change="op=attribute; kind=shape; want=star; drawn=circle",
        description="shape")], summary="")
    # "starburst" was not drawn: the plainest word for the same concept ("star") replaces it
    reworded = d.revise(prompt, wrong, d.describe(render_scene(SCENE)))
    assert "starburst" in prompt and "starburst" not in reworded and " star " in reworded
    assert read_prompt(reworded).objects == read_prompt(prompt).objects
    # a plainest word that failed is kept ("the word was not the problem")
    plain = Critique(differences=[Difference(
        aspect="color", target="clause:0", change="op=attribute; kind=color; want=dark red; drawn=gray",
        description="colour")], summary="")
    assert d.revise(prompt, plain, d.describe(render_scene(SCENE))) == prompt
    # rephrase="next" (the describer before issue 26) tries the next phrasing in its list
    cycling = SimDescriber(idiolect=0, rephrase="next")
    assert "dark scarlet" in cycling.revise(prompt, plain, d.describe(render_scene(SCENE)))
    one_off = Critique(differences=[Difference(
        target="clause:0", change="op=attribute; kind=x; want=left; drawn=center", description="x")],
        summary="")
    shifted = read_prompt(d.revise(prompt, one_off, d.describe(render_scene(SCENE)))).objects[0]
    assert shifted.x == "far left"  # drawn one step right of what was asked: ask one further left
