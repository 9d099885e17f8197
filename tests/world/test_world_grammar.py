"""The grammar: free-form prompts -> clauses -> scenes, and back to text."""

import numpy as np

from repainter.bench.world.generator import generate_scene
from repainter.bench.world.grammar import (
    BackgroundClause,
    ObjectClause,
    ParsedPrompt,
    format_prompt,
    parse_prompt,
    realise,
    scene_to_prompt,
)
from repainter.bench.world.vocabulary import COLORS, SIZES, X_WORDS, Y_WORDS


def test_parses_an_llm_style_prompt():
    p = parse_prompt("A flat illustration, light gray background, a large dark red circle in the "
                     "upper left, a small blue triangle at the bottom right, outlined")
    assert p.background == BackgroundClause("solid", "light gray")
    assert p.style == "outlined"
    circle, triangle = p.objects
    assert (circle.shape, circle.color, circle.size) == ("circle", "dark red", SIZES["large"])
    assert (circle.x, circle.y) == (X_WORDS["left"], Y_WORDS["upper"])
    assert (triangle.shape, triangle.color, triangle.size) == ("triangle", "blue", SIZES["small"])
    assert (triangle.x, triangle.y) == (X_WORDS["right"], Y_WORDS["bottom"])


def test_counts_synonyms_and_unknown_words():
    p = parse_prompt("three shiny grey balls, a majestic crimson oval, trending on artstation, 8k")
    assert [(o.shape, o.color, o.count) for o in p.objects] == [
        ("circle", "gray", 3), ("ellipse", "dark red", 1)]
    assert len(p.expanded()) == 4
    assert parse_prompt("masterpiece, highly detailed, cinematic lighting").objects == []


def test_two_objects_in_one_clause_and_on_a_background():
    p = parse_prompt("a red circle above a blue square on a light yellow background")
    assert [o.shape for o in p.objects] == ["circle", "square"]
    assert [o.color for o in p.objects] == ["red", "blue"]
    assert p.background.color == "light yellow"


def test_gradient_background():
    p = parse_prompt("a horizontal gradient background from light blue to white")
    assert p.background == BackgroundClause("gradient", "light blue", "white", "horizontal")
    bg = parse_prompt("gradient background from pink to purple").background
    assert bg.direction == "vertical"


def test_position_words_fill_the_missing_axis_with_the_centre():
    (o,) = parse_prompt("a star at the top").objects
    assert (o.x, o.y) == (0.5, Y_WORDS["top"])
    (o,) = parse_prompt("a star in the center").objects
    assert (o.x, o.y) == (0.5, 0.5)
    (o,) = parse_prompt("a star").objects
    assert o.x is None and o.y is None


def test_format_prompt_round_trips():
    parsed = ParsedPrompt(
        background=BackgroundClause("gradient", "light pink", "light purple", "horizontal"),
        objects=[ObjectClause("star", "dark teal", SIZES["very small"], X_WORDS["center-left"],
                              Y_WORDS["lower-middle"], "textured"),
                 ObjectClause("square", "light brown", SIZES["huge"], X_WORDS["far right"],
                              Y_WORDS["top"], "outlined")],
    )
    text = format_prompt(parsed)
    again = parse_prompt(text)
    assert again.background == parsed.background
    assert again.objects == parsed.objects
    assert format_prompt(again) == text


def test_realise_is_seeded_and_fills_unsaid_attributes():
    parsed = parse_prompt("a large red circle at the upper left, a square")
    a = realise(parsed, np.random.default_rng(3))
    b = realise(parsed, np.random.default_rng(3))
    c = realise(parsed, np.random.default_rng(4))
    assert a == b and a != c
    circle, square = a.objects
    assert circle.shape == "circle" and circle.color == "red"
    assert abs(circle.x - X_WORDS["left"]) < 0.05 and abs(circle.size / SIZES["large"] - 1) < 0.15
    assert max(abs(v - w) for v, w in zip(circle.rgb, COLORS["red"])) <= 12
    assert square.shape == "square" and square.color in COLORS  # colour from the seed
    assert a.background.color == "white"                        # default background


def test_ignored_attributes_are_drawn_from_the_seed():
    parsed = parse_prompt("a tiny light green star at the bottom far right")
    shapes = {realise(parsed, np.random.default_rng(s), ignore=["shape"]).objects[0].shape
              for s in range(20)}
    assert len(shapes) > 2
    kept = realise(parsed, np.random.default_rng(0), ignore=["shape"]).objects[0]
    assert kept.color == "light green" and abs(kept.y - Y_WORDS["bottom"]) < 0.05


def test_scene_to_prompt_describes_a_scene_finely():
    scene = generate_scene("pair", seed=5)
    parsed = parse_prompt(scene_to_prompt(scene))
    assert [o.shape for o in parsed.objects] == [o.shape for o in scene.objects]
    assert [o.color for o in parsed.objects] == [o.color for o in scene.objects]
    for clause, obj in zip(parsed.objects, scene.objects):
        assert abs(clause.x - obj.x) <= 0.08 and abs(clause.y - obj.y) <= 0.08
