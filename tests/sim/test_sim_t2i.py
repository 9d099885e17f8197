"""The simulated T2I model: its lexicon, and each failure rate at 0 (never) and 1 (always)."""

from __future__ import annotations

import pytest

from repainter.bench.sim.lexicon import difficulty, parse
from repainter.bench.sim.t2i import SimT2I

PERFECT = dict(vocabulary=1.0, token_budget=None, order_drop=0.0, binding_leak=0.0,
               count_error=0.0, spatial_error=0.0, background_bias=0.0, style_bias=0.0,
               jitter=0.0)
TWO = "a large red circle at the upper left, a small blue outlined square at the lower right, on a light yellow background"
SEEDS = range(12)


def drawn(prompt, seed=0, **params):
    return SimT2I(size=32, **{**PERFECT, **params}).draw(prompt, seed)[0]


def test_a_perfect_model_draws_what_it_reads():
    scene = drawn(TWO)
    (a, b) = scene.objects
    assert (a.shape, a.rgb, a.x, a.y, a.size) == ("circle", (218, 40, 40), 0.27, 0.3, 0.128)
    assert (b.shape, b.style, b.x, b.y) == ("square", "outlined", 0.73, 0.7)
    assert scene.background.rgb == (250, 238, 150)


def test_same_prompt_and_seed_same_scene_other_seed_differs():
    model = SimT2I(size=32)
    assert model.draw(TWO, 5)[0] == model.draw(TWO, 5)[0]
    assert any(model.draw(TWO, 5)[0] != model.draw(TWO, s)[0] for s in range(6, 12))


def test_generate_returns_the_drawn_scene_and_its_render():
    out = SimT2I(size=32).generate([TWO], [1])[0]
    assert out.image.size == (32, 32)
    assert len(out.metadata["drawn_scene"]["objects"]) >= 1


def test_binding_leak_swaps_colours_or_shapes():
    assert all(drawn(TWO, s) == drawn(TWO, 0) for s in SEEDS)  # jitter 0: no variance at all
    for s in SEEDS:
        a, b = drawn(TWO, s, binding_leak=1.0).objects
        assert (a.rgb, a.shape) != ((218, 40, 40), "circle") or (b.rgb, b.shape) != ((40, 90, 218), "square")


def test_count_error_adds_or_removes_an_object():
    one = "a large red circle at the upper left"
    assert {len(drawn(one, s, count_error=0.0).objects) for s in SEEDS} == {1}
    assert {len(drawn(one, s, count_error=1.0).objects) for s in SEEDS} == {0, 2}
    three = "three small blue stars"
    assert {len(drawn(three, s, count_error=1.0).objects) for s in SEEDS} == {2, 4}


def test_spatial_error_swaps_places():
    for s in SEEDS:
        a, b = drawn(TWO, s, spatial_error=1.0).objects
        assert (a.x, a.y) != (0.27, 0.3) or (b.x, b.y) != (0.73, 0.7)


def test_order_drop_drops_later_objects_first():
    for s in SEEDS:
        objects = drawn(TWO, s, order_drop=1.0).objects
        assert [o.shape for o in objects] == ["circle"]  # the first clause is never dropped


def test_token_budget_drops_the_words_after_it():
    scene = drawn(TWO, token_budget=6)
    assert [o.shape for o in scene.objects] == ["circle"]
    assert scene.background.rgb == (250, 250, 250)  # the background words were cut: default
    assert parse(TWO, token_budget=6).dropped_words == len(TWO.replace(",", "").split()) - 6


def test_background_and_style_bias():
    for s in SEEDS:
        scene = drawn(TWO, s, background_bias=1.0, style_bias=1.0)
        assert scene.background.rgb == (250, 250, 250)
        assert all(o.style == "flat" for o in scene.objects)


def test_vocabulary_is_nested_and_unknown_words_fall_to_the_prior():
    prompt = "a crimson rhombus at the upper left, on a white backdrop"
    assert parse(prompt, vocabulary=1.0).unknown == []
    assert set(parse(prompt, vocabulary=0.0).unknown) == {"crimson", "rhombus", "backdrop"}
    for v in (0.2, 0.5, 0.8):  # a smaller vocabulary knows a subset of a larger one's words
        assert set(parse(prompt, vocabulary=v + 0.1).unknown) <= set(parse(prompt, vocabulary=v).unknown)
    assert all(0 <= difficulty(w) < 1 for w in ("crimson", "rhombus"))
    assert "tangerine" in parse("a tangerine circle").unknown  # in no model's lexicon


@pytest.mark.parametrize("bad", [{"binding_leak": 1.5}, {"vocabulary": -0.1}, {"token_budget": 0},
                                 {"jitter": -1}, {"default_background": "mauve"}])
def test_bad_parameters_are_refused(bad):
    with pytest.raises(ValueError):
        SimT2I(**bad)
