"""The procedural T2I: renders what the prompt says, seeded, ignoring what it does not know."""

import numpy as np
import pytest

from repainter.bench.world.analysis import analyse
from repainter.bench.world.procedural import ProceduralT2I
from repainter.bench.world.vocabulary import X_WORDS, Y_WORDS
from repainter.registry import T2I

PROMPT = "a flat illustration, light gray background, a large dark red circle at the upper left, " \
         "a small blue outlined triangle at the bottom right"


def test_registered_with_params_in_identity():
    t2i = T2I.create("procedural", size=128, jitter=0.5, ignore=["color"])
    assert isinstance(t2i, ProceduralT2I)
    assert t2i.identity() == {"backend": "procedural", "size": 128, "jitter": 0.5,
                              "ignore": ["color"]}


def test_same_prompt_and_seed_same_image_other_seed_slightly_different():
    t2i = ProceduralT2I()
    a, b, c = t2i.generate([PROMPT] * 3, [7, 7, 8])
    arr = [np.asarray(g.image).astype(int) for g in (a, b, c)]
    assert np.array_equal(arr[0], arr[1])
    assert not np.array_equal(arr[0], arr[2])
    assert np.abs(arr[0] - arr[2]).mean() < 6  # jitter, not a different picture
    assert (a.prompt, a.seed) == (PROMPT, 7)


def test_draws_what_the_prompt_says():
    image = ProceduralT2I().generate([PROMPT], [1])[0].image
    seen = analyse(image)
    assert seen.background.color_name == "light gray"
    big, small = seen.objects
    assert (big.shape, big.color_name, big.style) == ("circle", "dark red", "flat")
    assert abs(big.x - X_WORDS["left"]) < 0.05 and abs(big.y - Y_WORDS["upper"]) < 0.05
    assert (small.shape, small.color_name, small.style) == ("triangle", "blue", "outlined")
    assert abs(small.x - X_WORDS["right"]) < 0.05 and abs(small.y - Y_WORDS["bottom"]) < 0.05


def test_zero_jitter_is_exact():
    scene = ProceduralT2I(jitter=0).render("a medium red square in the center", seed=3)
    (obj,) = scene.objects
    assert (obj.x, obj.y, obj.size, obj.rgb) == (0.5, 0.5, 0.09, (218, 40, 40))


def test_ignore_makes_a_weaker_model():
    colours = {analyse(ProceduralT2I(ignore=["color"]).generate([PROMPT], [s])[0].image)
               .objects[0].color_name for s in range(6)}
    assert len(colours) > 1  # the colour now comes from the seed
    shapes_kept = {ProceduralT2I(ignore=["color"]).render(PROMPT, s).objects[0].shape
                   for s in range(6)}
    assert shapes_kept == {"circle"}


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown attribute"):
        ProceduralT2I(ignore=["vibe"])
    with pytest.raises(ValueError, match="seeds"):
        ProceduralT2I().generate(["a"], [1, 2])
