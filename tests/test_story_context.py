"""GILL / VIST-style stories: a manifest row carries earlier images and texts; the describer sees
them, and the case scores the last image."""

import json

import numpy as np
import pytest
from PIL import Image

from repainter.datasets import DatasetError, ManifestDataset
from repainter.runner import run
from repainter.spec import build_spec
from repainter.testing import OpenAICompatServer


def _story(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("s1.png", "s2.png", "last.png"):
        Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(tmp_path / name)
    row = {"id": "story-1", "path": "last.png", "context": [
        {"path": "s1.png", "text": "A cat finds a red ball."},
        {"path": "s2.png", "text": "The cat chases it across the garden."},
        {"text": "Finally, it falls asleep."}]}
    manifest = tmp_path / "stories.jsonl"
    manifest.write_text(json.dumps(row) + "\n")
    return manifest


def test_manifest_context_loads_earlier_images_and_texts(tmp_path):
    (item,) = ManifestDataset(str(_story(tmp_path))).items()
    reference = item.load()
    assert reference.image.size == (64, 48)
    assert [step.get("text") for step in reference.context] == [
        "A cat finds a red ball.", "The cat chases it across the garden.", "Finally, it falls asleep."]
    assert [step.get("image") is not None for step in reference.context] == [True, True, False]


@pytest.mark.parametrize("context, message", [
    ("not a list", "must be a list"), ([{"path": "../x.png"}], "leaves"), ([{}], "needs 'path' or 'text'")])
def test_bad_context_is_a_clear_error(tmp_path, context, message):
    manifest = tmp_path / "m.jsonl"
    Image.new("RGB", (16, 16)).save(tmp_path / "a.png")
    manifest.write_text(json.dumps({"id": "a", "path": "a.png", "context": context}) + "\n")
    with pytest.raises(DatasetError, match=message):
        ManifestDataset(str(manifest)).items()


def test_the_describer_sees_the_story_and_the_last_image_is_scored(tmp_path, monkeypatch):
    monkeypatch.setenv("STORY_KEY", "sk-story")
    manifest = _story(tmp_path)
    with OpenAICompatServer(record_bodies=True) as server:
        result = run(build_spec({"preset": "world",
            "output_dir": str(tmp_path / "run"),
            "dataset": {"name": "manifest", "params": {"path": str(manifest)}},
            "mllm": {"name": "openai", "params": {"model": "m", "base_url": server.url,
                                                  "api_key_env": "STORY_KEY"}},
            "metrics": ["ssim", "color_histogram"], "loop": {"rounds": 1, "variants": 1},
        }))
        describe = next(b for b in server.bodies
                        if (b.get("response_format") or {}).get("json_schema", {}).get("name")
                        == "ImageUnderstandingTree")
    (record,) = result.records
    assert record.status == "done"
    content = describe["messages"][-1]["content"]
    images = [part for part in content if part.get("type") == "image_url"]
    texts = " ".join(part.get("text", "") for part in content if part.get("type") == "text")
    assert len(images) == 3  # two story images, then the reference
    assert "The cat chases it across the garden." in texts and "falls asleep" in texts
    saved = Image.open(result.run_dir / record.reference)
    assert saved.size == (64, 48)  # the last image is the one scored
