"""Self-feedback: template yes/no questions from the reference's IUT, answered on candidates."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from repainter.backends.base import Reference
from repainter.backends.metrics.self_feedback import SelfFeedbackMetric, questions_from_iut
from repainter.datasets import load_dataset
from repainter.registry import METRICS
from repainter.schemas import ImageUnderstandingTree, ObjectAttributes, SceneObject


@pytest.fixture(scope="module")
def refs():
    return {i.id: i.load() for i in load_dataset("world").items()}


@pytest.fixture(scope="module")
def metric():
    return METRICS.create("self_feedback", mllm={"name": "scene-analyst"})


def test_registered():
    assert METRICS.get("self_feedback") is SelfFeedbackMetric


def test_reference_against_itself_is_one(metric, refs):
    for ref in list(refs.values())[::4]:
        assert metric(ref, [ref.image]) == [1.0]


def test_different_scene_scores_lower(metric, refs):
    ids = list(refs)
    for a, b in zip(ids[::5], ids[1::5]):
        same, other = metric(refs[a], [refs[a].image, refs[b].image])
        assert same == 1.0
        assert other < 1.0


def test_questions_are_deterministic_templates(metric, refs):
    ref = refs["single-00"]
    first = metric.prepare(ref)
    assert [q.text for q in first] == [q.text for q in metric.prepare(ref)]
    texts = [q.text for q in first]
    assert texts[0].startswith("Is there a") and texts[0].endswith("?")
    assert any(t.startswith("Is the background ") for t in texts)
    assert texts[-1] == "Is there exactly 1 object?"
    # every question about a described object, plus background and count
    iut = ImageUnderstandingTree(
        global_description="A flat illustration on a white background.",
        objects=[SceneObject(name="red circle", attributes=ObjectAttributes(
            color="red", shape="circle", position="upper left", size="large"))])
    qs = questions_from_iut(iut)
    assert [q.text for q in qs] == [
        "Is there a red circle?", "Is the red circle at the upper left?",
        "Is the red circle large?", "Is the background white?", "Is there exactly 1 object?"]


def test_partial_credit_is_a_fraction(metric, refs):
    ref = refs["pair-00"] if "pair-00" in refs else next(iter(refs.values()))
    questions = metric.prepare(ref)
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (256, 256, 3), np.uint8))
    for value in metric.score(questions, [noise, ref.image.transpose(Image.FLIP_LEFT_RIGHT)]):
        assert 0.0 <= value <= 1.0
        assert value * len(questions) == pytest.approx(round(value * len(questions)))


def test_contains_matching_and_nan_without_questions():
    loose = SelfFeedbackMetric(match="contains", background=False, count=False)
    iut = ImageUnderstandingTree(global_description="x", objects=[
        SceneObject(name="red circle", attributes=ObjectAttributes(color="red", shape="circle"))])
    cand = ImageUnderstandingTree(global_description="y", objects=[
        SceneObject(name="circle", attributes=ObjectAttributes(color="bright red", shape="circle"))])
    [q] = loose.questions(iut)
    assert loose.answer(q, cand)
    strict = SelfFeedbackMetric(background=False, count=False)
    assert not strict.answer(q, cand)
    blank = Image.new("RGB", (64, 64), (250, 250, 250))
    none = SelfFeedbackMetric(background=False, count=False)
    assert math.isnan(none(Reference("b", blank), [blank])[0])


def test_bad_params_and_identity():
    with pytest.raises(ValueError, match="attribute"):
        SelfFeedbackMetric(attributes=["smell"])
    with pytest.raises(ValueError, match="match"):
        SelfFeedbackMetric(match="fuzzy")
    ident = SelfFeedbackMetric().identity()
    assert ident["mllm"]["backend"] == "scene-analyst" and ident["metric"] == "self_feedback"
