"""Issue 27, protocol records: the run folder says what each metric did (run.json and every case
record, kept current by rescore), the version moves with the scores, and DAR's Hits@K is
ChatIR's cumulative one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from repainter.dar.run import DARResult, TurnRecord
from repainter.records.dar import HITS_AT
from repainter.spec import build_spec
from repainter.version import __version__


def _tiny_spec(out: Path):
    return build_spec({"name": "records", "output_dir": str(out),
                       "dataset": {"name": "world", "limit": 1},
                       "t2i": [{"name": "sim", "label": "sim-a"}],
                       "loop": {"rounds": 1, "variants": 1},
                       "metrics": ["lab_layout", "psnr"], "selection": {"lab_layout": 1.0}})


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    from repainter.runner import run

    out = tmp_path_factory.mktemp("records") / "run"
    run(_tiny_spec(out))
    return out


def _records(run_dir: Path) -> list[dict]:
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(run_dir.glob("cases/*/*.json"))]


def test_run_json_and_every_case_record_say_what_each_metric_did(finished_run):
    info = json.loads((finished_run / "run.json").read_text(encoding="utf-8"))
    records = _records(finished_run)
    assert records
    for record in records:
        assert set(record["metrics"]) == {"lab_layout", "psnr"}
        assert record["metrics"] == info["metrics"]
    psnr = info["metrics"]["psnr"]
    # PSNR's spec params are {}: its identity says native size (no resize) and the data range
    assert psnr["size"] is None and psnr["resize"].startswith("native")
    assert psnr["data_range"] == 255.0
    assert psnr["repainter"] == __version__ == info["repainter_version"]
    assert set(psnr["libraries"]) >= {"numpy", "PIL"}  # the versions it ran on


def test_rescore_lists_the_rescored_metric_in_run_json(finished_run, tmp_path):
    import shutil

    from repainter.rescore import rescore

    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    rescore(run_dir, ["ssim"])
    info = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    assert "ssim" in [m["name"] for m in info["spec"]["metrics"]]
    assert info["metrics"]["ssim"]["resize"].startswith("native")
    assert {"lab_layout", "psnr"} <= set(info["metrics"])  # the first metrics are kept
    for record in _records(run_dir):
        assert record["metrics"]["ssim"] == info["metrics"]["ssim"]


def test_clip_i_records_the_quick_gelu_its_model_runs(tmp_path):
    """A config that turns QuickGELU on (as OpenAI's tags do) with ``quick_gelu`` not given: the
    identity said ``quick_gelu: null``; it says what the loaded model uses."""
    torch = pytest.importorskip("torch")
    open_clip = pytest.importorskip("open_clip")
    from repainter.backends.metrics.clip_i import ClipImageSimilarity

    config = {"embed_dim": 16, "quick_gelu": True,
              "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8,
                             "head_width": 16},
              "text_cfg": {"context_length": 16, "vocab_size": 64, "width": 32, "heads": 2,
                           "layers": 1}}
    checkpoint = tmp_path / "tiny.pt"
    torch.save(open_clip.model.CLIP(**config).state_dict(), checkpoint)
    quick = ClipImageSimilarity(model="repainter-quick-clip", pretrained=None,
                                checkpoint=str(checkpoint), model_config=config, device="cpu")
    assert quick.identity()["quick_gelu"] is True
    assert quick.identity()["quick_gelu_requested"] is None
    plain = ClipImageSimilarity(model="repainter-plain-clip", pretrained=None,
                                checkpoint=str(checkpoint),
                                model_config={**config, "quick_gelu": False}, device="cpu")
    assert plain.identity()["quick_gelu"] is False


def test_the_version_moved_with_the_score_changes_of_issues_24_to_27():
    major, minor = (int(part) for part in __version__.split(".")[:2])
    assert (major, minor) >= (0, 2)
    assert "Version policy" in (Path(__file__).resolve().parents[2] / "docs" / "development.md"
                                ).read_text(encoding="utf-8")


# -- DAR: ChatIR's cumulative Hits@K ------------------------------------------------------------


def _row(case: str, turn: int, text_ahead: int, fused_ahead: int = 0) -> TurnRecord:
    return TurnRecord(case=case, target=case, turn=turn, query="q", text_ahead=text_ahead,
                      text_tied=0, fused_ahead=fused_ahead, fused_tied=0, gallery_size=20)


#: Four dialogues, text ranks (ahead + 1) per turn; Hits@1 hits where ahead == 0.
#: a: hit at turn 0 only; b: hit at turn 1 only; c: never; d: two turns, hit at turn 1.
DIALOGUES = {"a": [0, 3, 3], "b": [2, 0, 5], "c": [4, 4, 4], "d": [1, 0]}


def test_cumulative_hits_is_chatirs_first_hitting_time_count():
    """By hand: turn 0: a -> 1/4; turn 1: a, b, d -> 3/4; turn 2: a, b, d (d ended at turn 1
    and keeps its hit) -> 3/4. Per turn over the dialogues that reach it: 1/4, 2/4, 0/3."""
    result = DARResult(records=[_row(c, t, ahead) for c, ranks in DIALOGUES.items()
                                for t, ahead in enumerate(ranks)], alpha=0.5, images_per_turn=1)
    turns = result.summary()["turns"]
    assert [t["text"]["hits@1"] for t in turns] == [0.25, 0.75, 0.75]
    assert [t["text"]["hits@1_per_turn"] for t in turns] == [0.25, 0.5, 0.0]
    assert [t["cases"] for t in turns] == [4, 4, 3]
    # every K has both figures, and cumulative never falls
    for t in turns:
        assert {f"hits@{k}" for k in HITS_AT} | {f"hits@{k}_per_turn" for k in HITS_AT} \
            <= set(t["text"])
    assert all(a["text"]["hits@5"] <= b["text"]["hits@5"] for a, b in zip(turns, turns[1:]))


def test_cumulative_hits_with_ties_is_the_chance_of_a_hit_by_then():
    from repainter.dar.scoring import cumulative_hits

    # p = 0.5 at each of two turns (ties broken at random, independently): 1 - 0.5 * 0.5
    assert cumulative_hits([[0.5, 0.5]], [0, 1]) == [0.5, 0.75]
    assert cumulative_hits([], [0]) == [0.0]


def test_dar_markdown_labels_cumulative_and_per_turn_hits():
    from repainter.dar.report import summary_markdown

    result = DARResult(records=[_row(c, t, ahead) for c, ranks in DIALOGUES.items()
                                for t, ahead in enumerate(ranks)], alpha=0.5, images_per_turn=1)
    text = summary_markdown(result.summary())
    assert "cumulative Hits@K as ChatIR" in text and "text H@10 turn" in text
    assert "| 2 | 3 | 0.750 |" in text  # turn 2: cumulative Hits@1 over all four dialogues
