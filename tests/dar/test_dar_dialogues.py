"""DAR dialogues: built from world scenes, read from manifests, refined into queries."""

from __future__ import annotations

import json

import pytest

from repainter.bench.world.dar import refine_query, scene_dialogue, world_dialogues
from repainter.dar import DialogueError, concat_query, load_dialogues


def test_dialogues_are_deterministic_and_reveal_information(items, dialogues):
    again = world_dialogues(items)
    assert [d.as_dict() for d in dialogues] == [d.as_dict() for d in again]
    assert len(dialogues) == len(items) == 32
    for d, item in zip(dialogues, items):
        assert d.target == item.id
        assert 4 <= d.n_turns <= 6
        scene = item.load().ground_truth
        n = len(scene["objects"])
        # each object turn names a shape of the scene, largest first
        shapes = [o["shape"] for o in sorted(scene["objects"], key=lambda o: -o["size"])]
        for turn, shape in zip(d.dialog, shapes):
            assert turn.question.endswith(("object?", "shape", "look like?", "shape?"))
            assert shape in turn.answer
        queries = [refine_query(d.caption, [t.answer for t in d.dialog[:k]])
                   for k in range(d.n_turns)]
        assert len(queries[-1]) > len(queries[0])
        assert scene["background"]["color"] not in queries[0]  # the caption is vague
        if n < d.n_turns - 1:
            assert scene["background"]["color"] in queries[-1]
    other = scene_dialogue(items[5].load().ground_truth, items[5].id, seed=1)
    assert other.target == items[5].id


def test_refine_query_merges_caption_and_answers():
    q = refine_query("a picture with two shapes",
                     ["a large dark red circle at the upper left", "no, a solid blue background"])
    assert "blue background" in q and "dark red circle" in q and "a shape" in q
    assert refine_query("hello there", ["what?"]) == "hello there, what?"


def _write(tmp_path, rows):
    path = tmp_path / "m.jsonl"
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


def test_manifest_loader(tmp_path):
    good = {"id": "a", "target": "single-00", "caption": "a diamond",
            "dialog": [{"question": "colour?", "answer": "light yellow"}]}
    dialogues = load_dialogues(_write(tmp_path, [good]), ["single-00"])
    assert dialogues[0].dialog[0].answer == "light yellow" and dialogues[0].n_turns == 2
    cases = [
        ([{**good, "target": "nope"}], "unknown target 'nope'"),
        (["{not json"], "invalid JSON"),
        ([{"id": "a", "target": "single-00", "caption": "x"}], "missing field"),
        ([{**good, "dialog": [{"question": "q"}]}], r"dialog\[0\]"),
        ([{**good, "dialog": "q a"}], "must be a list"),
        ([good, good], "duplicate id"),
        ([[1, 2]], "expected a JSON object"),
        ([""], "no dialogues"),
    ]
    for rows, message in cases:
        with pytest.raises(DialogueError, match=message):
            load_dialogues(_write(tmp_path, rows), ["single-00"])
    with pytest.raises(DialogueError, match="not found"):
        load_dialogues(tmp_path / "missing.jsonl")


def test_scene_analyst_refines_dialogues_like_the_grammar(dialogues):
    from repainter.bench.world.scene_analyst import SceneAnalyst

    mllm = SceneAnalyst()
    d = dialogues[9]
    for turn in range(d.n_turns):
        assert mllm.refine_dialogue(d.caption, d.exchanges(turn)) == refine_query(
            d.caption, d.answers(turn))
    assert concat_query("a cat.", ["", " on a mat "]) == "a cat, on a mat"


def test_openai_backend_refines_dialogues_with_its_prompt_file(monkeypatch):
    pytest.importorskip("openai")
    from repainter.backends.mllm.openai_compat import OpenAIMLLM
    from repainter.testing.openai_server import OpenAICompatServer

    monkeypatch.setenv("TEST_DAR_KEY", "k")
    replies = {"RevisedPrompt": {"prompt": "a red circle, white background"}}
    with OpenAICompatServer(replies=replies, record_bodies=True) as srv:
        mllm = OpenAIMLLM(model="fake", base_url=srv.url, api_key_env="TEST_DAR_KEY")
        out = mllm.refine_dialogue("a picture with one shape",
                                   [("what is the shape?", "a red circle")])
        assert out == "a red circle, white background"
        assert srv.stats()["calls"] == {"RevisedPrompt": 1}
        sent = json.dumps(srv.bodies[0])
    # the prompt file carries the whole dialogue
    for text in ("a picture with one shape", "Q: what is the shape?", "A: a red circle"):
        assert text in sent
