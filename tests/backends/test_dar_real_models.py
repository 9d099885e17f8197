"""DAR with real backends: a tiny random-init StableDiffusionPipeline, a tiny open_clip model as
both the text scorer and the image embedding, the ``openai`` client refining the dialogue
against a loopback server, a folder gallery and a ChatIR-style manifest, through the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

pytest.importorskip("diffusers")
pytest.importorskip("open_clip")
pytest.importorskip("openai")

from typer.testing import CliRunner  # noqa: E402

from repainter.cli import app  # noqa: E402
from repainter.datasets import load_dataset  # noqa: E402
from repainter.testing.openai_server import OpenAICompatServer  # noqa: E402

from .tiny_models import TINY_OPEN_CLIP, TINY_OPEN_CLIP_NAME  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.models]


def test_dar_with_real_backends_through_the_cli(tmp_path, monkeypatch, tiny_sd_path,
                                                tiny_open_clip_checkpoint, tiny_tokenizer):
    gallery = tmp_path / "gallery"
    gallery.mkdir()
    for item in load_dataset("world").select(None, 6):
        item.load().image.save(gallery / f"{item.id}.png")
    manifest = tmp_path / "dialogues.jsonl"
    manifest.write_text("\n".join(json.dumps(row) for row in [
        {"id": "d1", "target": "single-00", "caption": "a yellow shape",
         "dialog": [{"question": "what shape?", "answer": "a large yellow star"},
                    {"question": "background?", "answer": "blue"}]},
        {"id": "d2", "target": "single-03", "caption": "a small shape",
         "dialog": [{"question": "colour?", "answer": "red"}]},
    ]) + "\n")
    clip = {"model": TINY_OPEN_CLIP_NAME, "pretrained": None,
            "checkpoint": str(tiny_open_clip_checkpoint), "model_config": TINY_OPEN_CLIP,
            "device": "cpu"}
    monkeypatch.setenv("TEST_DAR_KEY", "k")
    queries = []

    def refine(body):
        text = json.dumps(body)
        queries.append(text)
        return {"prompt": f"a flat illustration, query {len(queries)}"}

    with OpenAICompatServer(replies={"RevisedPrompt": refine}) as srv:
        spec = {
            "name": "dar-real-tiny", "output_dir": str(tmp_path / "run"),
            "dialogues": {"manifest": str(manifest)},
            "gallery": {"name": "folder", "params": {"path": str(gallery)}},
            "t2i": {"name": "diffusers", "params": {
                "model": str(tiny_sd_path), "device": "cpu", "steps": 2, "width": 64,
                "height": 64, "guidance_scale": 1.0}},
            "mllm": {"name": "openai", "params": {
                "model": "fake", "base_url": srv.url, "api_key_env": "TEST_DAR_KEY"}},
            "text_scorer": {"name": "clip", "params": {**clip, "tokenizer": tiny_tokenizer}},
            "embedding": {"name": "clip_i", "params": clip},
            "images_per_turn": 2,
        }
        path = tmp_path / "dar.yaml"
        path.write_text(yaml.safe_dump(spec))
        out = CliRunner().invoke(app, ["dar", "--spec", str(path), "--json"])
        assert out.exit_code == 0, out.output
    # (--json prints the summary; diffusers' progress bars share the captured output)
    summary = json.loads((tmp_path / "run" / "dar_summary.json").read_text())
    assert summary["cases"] == 2 and summary["failed"] == 0 and summary["gallery_size"] == 6
    assert [t["cases"] for t in summary["turns"]] == [2, 2, 1]
    # one refinement per turn, each carrying the dialogue so far
    assert len(queries) == 5
    assert any("a large yellow star" in q and "Q: background?" in q for q in queries)
    rows = [json.loads(line) for line in (tmp_path / "run" / "dar.jsonl").read_text().splitlines()]
    assert {r["query"] for r in rows} == {f"a flat illustration, query {k}" for k in range(1, 6)}
    for r in rows:
        assert 1 <= r["rank_text"] <= 6 and 1 <= r["rank_fused"] <= 6 and len(r["images"]) == 2
    config = summary["config"]["gallery"]
    assert config["text_scorer"]["text_scorer"] == "clip"
    assert config["text_scorer"]["checkpoint"] == str(tiny_open_clip_checkpoint)
    assert config["embedding"]["embedding"]["metric"] == "clip_i"
    assert (tmp_path / "run" / "report" / "dar.html").is_file()


def test_clip_text_scorer_is_the_cosine_of_the_two_towers(tiny_open_clip_checkpoint,
                                                         tiny_tokenizer):
    import torch

    from repainter.dar import build_text_scorer

    refs = [i.load() for i in load_dataset("world").select(None, 4)]
    scorer = build_text_scorer({"name": "clip", "params": {
        "model": TINY_OPEN_CLIP_NAME, "pretrained": None, "device": "cpu",
        "checkpoint": str(tiny_open_clip_checkpoint), "model_config": TINY_OPEN_CLIP,
        "tokenizer": tiny_tokenizer}})
    scorer.fit([r.id for r in refs], refs)
    got = scorer.scores("a large red circle")
    model = scorer.clip._model
    with torch.no_grad():
        text = model.encode_text(scorer.text._tokenize(["a large red circle"])).double()
        image = torch.stack([scorer.clip._preprocess(r.image) for r in refs])
        image = model.encode_image(image).double()
    text = text / text.norm(dim=-1, keepdim=True)
    image = image / image.norm(dim=-1, keepdim=True)
    assert np.allclose(got, (text @ image.T)[0].numpy(), atol=1e-5)
