"""Running DAR: per-turn records, failures, the run folder, the spec, the CLI."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from repainter.backends.base import GeneratedImage, T2IBackend
from repainter.bench.world.procedural import ProceduralT2I
from repainter.bench.world.scene_analyst import SceneAnalyst
from repainter.cli import app
from repainter.dar import (
    DARSpec,
    Dialogue,
    DialogueError,
    GalleryIndex,
    Turn,
    build_dar_spec,
    read_result,
    run_dar,
    run_dar_spec,
    write_dar,
)
from repainter.spec import SpecError


@pytest.fixture(scope="module")
def index(items):
    return GalleryIndex.build(items)  # concepts text scorer, scene_layout embedding


@pytest.fixture(scope="module")
def result(items, dialogues, index):
    return run_dar(dialogues, items, mllm=SceneAnalyst(), gallery=index)


@pytest.mark.slow
def test_hits_rise_over_turns(result):
    turns = result.summary()["turns"]
    first, last = turns[0], turns[-1]
    assert first["cases"] == 32 and not result.failures
    for mode in ("text", "fused"):
        assert last[mode]["hits@10"] > first[mode]["hits@10"]
        assert last[mode]["mean_rank"] < first[mode]["mean_rank"]
    # each record's hits agree with its expected rank
    for r in result.records:
        for mode in ("text", "fused"):
            assert (r.hits(10, mode) == 1.0) == (getattr(r, f"{mode}_ahead")
                                                 + getattr(r, f"{mode}_tied") < 10)


@pytest.mark.slow
def test_generated_images_help_once_the_query_says_something(result):
    # On the bare 32-scene gallery the concept text score ties scenes that show the same
    # colours and shapes; the rendered query separates them by binding and layout. (At turn 0
    # the query says only how many shapes there are: the render is a guess and may not help.)
    turns = result.summary()["turns"]
    later = [t for t in turns if t["turn"] >= 1]
    assert all(t["fused"]["mean_rank"] <= t["text"]["mean_rank"] for t in later)
    assert any(t["fused"]["hits@1"] > t["text"]["hits@1"] for t in later)


@pytest.mark.slow
def test_alpha_one_is_text_only_and_the_folder_round_trips(items, dialogues, index, tmp_path):
    sub = dialogues[:4]
    res = run_dar(sub, items, alpha=1.0, images_per_turn=2, mllm=SceneAnalyst(), gallery=index,
                  image_dir=tmp_path / "out" / "images")
    assert all(r.rank_fused == r.rank_text for r in res.records)
    assert all(len(r.images) == 2 for r in res.records)
    assert (tmp_path / "out" / res.records[0].images[0]).is_file()
    paths = write_dar(res, tmp_path / "out")
    rows = [json.loads(line) for line in paths["jsonl"].read_text().splitlines()]
    assert len(rows) == sum(d.n_turns for d in sub)
    summary = json.loads(paths["summary"].read_text())
    assert summary["images_per_turn"] == 2 and summary["cases"] == 4
    assert "| turn |" in paths["markdown"].read_text()
    html = paths["html"].read_text()
    assert "Hits@10" in html and sub[0].id in html and "dar_hits.png" in html
    again = read_result(tmp_path / "out")
    assert [r.as_dict() for r in again.records] == [r.as_dict() for r in res.records]
    frame = res.to_pandas()
    assert len(frame) == len(rows)
    assert {"case", "turn", "query", "rank_text", "rank_fused", "hits@10_text",
            "hits@10_fused"} <= set(frame.columns)
    assert frame.groupby("turn")["hits@10_fused"].mean().tolist() == pytest.approx(
        [t["fused"]["hits@10_per_turn"] for t in summary["turns"]])
    with pytest.raises(ValueError, match="alpha"):
        run_dar(sub, items, alpha=2)
    with pytest.raises(DialogueError, match="not in the gallery"):
        run_dar(sub, items[:1])


class _BrokenForOne(T2IBackend):
    """Procedural renders, except that one prompt word crashes and another renders blank."""

    def __init__(self):
        self.inner = ProceduralT2I()

    def generate(self, prompts, seeds):
        if any("crash" in p for p in prompts):
            raise RuntimeError("CUDA error: device-side assert (simulated)")
        out = self.inner.generate(prompts, seeds)
        if any("blank" in p for p in prompts):
            return [GeneratedImage(g.image, g.prompt, g.seed, flagged="nsfw") for g in out]
        return out


@pytest.mark.slow
def test_a_failing_dialogue_is_recorded_and_the_run_goes_on(items, dialogues, index, tmp_path):
    bad = [Dialogue("will-crash", items[0].id, "a picture", [Turn("q?", "crash please")]),
           Dialogue("<b>blank</b>", items[1].id, "blank", []),
           *dialogues[2:4]]
    res = run_dar(bad, items, _BrokenForOne(), gallery=index)
    assert {f.case for f in res.failures} == {"will-crash", "<b>blank</b>"}
    crash = next(f for f in res.failures if f.case == "will-crash")
    assert crash.turn == 1 and "device-side assert" in crash.error
    assert {r.case for r in res.records} == {d.id for d in dialogues[2:4]}
    html = write_dar(res, tmp_path)["html"].read_text()
    assert "<b>blank</b>" not in html and "&lt;b&gt;blank&lt;/b&gt;" in html  # escaped


def test_dar_spec_defaults_overrides_and_errors():
    spec = DARSpec()
    assert spec.t2i.name == "procedural" and spec.mllm.name == "scene-analyst"
    assert spec.text_scorer.name == "concepts" and spec.embedding.name == "scene_layout"
    changed = build_dar_spec({}, ["alpha=0.25", "dialogues.limit=3", "mllm=null"])
    assert changed.alpha == 0.25 and changed.dialogues.limit == 3 and changed.mllm is None
    assert changed.fingerprint() != spec.fingerprint()
    assert build_dar_spec({}, ["output_dir=/x"]).fingerprint() == spec.fingerprint()
    for bad in (["alpha=2"], ["images_per_turn=0"], ["nope=1"]):
        with pytest.raises(SpecError):
            build_dar_spec({}, bad)


def test_run_dar_spec_writes_a_folder_and_reuses_its_cache(tmp_path):
    spec = build_dar_spec({"output_dir": str(tmp_path / "dar"), "gallery": {"name": "world"},
                           "dialogues": {"limit": 3}})
    first = run_dar_spec(spec)
    for name in ("dar_spec.yaml", "dar.jsonl", "dar_summary.json", "dar.md", "report/dar.html",
                 "cache.sqlite"):
        assert (spec.run_dir / name).is_file(), name
    assert first.config["cache"]["misses"]["t2i"] > 0
    second = run_dar_spec(spec)
    assert "t2i" not in second.config["cache"]["misses"]  # every render from the cache
    assert [r.as_dict() for r in second.records] == [r.as_dict() for r in first.records]


def test_cli_dar(tmp_path):
    out = CliRunner().invoke(app, ["dar", "--limit", "2", "--json", "--set", "gallery.limit=12",
                                   "--output-dir", str(tmp_path / "run")])
    assert out.exit_code == 0, out.output
    summary = json.loads(out.output)
    assert summary["cases"] == 2 and summary["gallery_size"] == 12
    assert (tmp_path / "run" / "dar.md").is_file()
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": "a", "target": "zz", "caption": "c", "dialog": []}) + "\n")
    out = CliRunner().invoke(app, ["dar", "--manifest", str(bad), "--set", "gallery.limit=4",
                                   "-o", str(tmp_path / "bad")])
    assert out.exit_code == 2 and "unknown target" in out.output
    out = CliRunner().invoke(app, ["dar", "--alpha", "0.3", "--set", "nope=1"])
    assert out.exit_code == 2 and "invalid DAR spec" in out.output


def test_example_dar_spec_validates():
    from pathlib import Path

    from repainter.dar import load_dar_spec

    path = Path(__file__).resolve().parents[2] / "examples" / "specs" / "dar-chatir-clip.yaml"
    spec = load_dar_spec(path)
    assert spec.text_scorer.name == "clip" and spec.embedding.name == "clip_i"
    assert spec.dialogues.manifest and spec.gallery.name == "folder"
