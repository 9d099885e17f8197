"""Preference pairs exported from a real (small) run load with Hugging Face ``datasets``."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import repainter
from repainter.cli import app
from repainter.export import ExportError, export_preferences, load_preferences
from repainter.spec import build_spec

datasets = pytest.importorskip("datasets")

PICKAPIC = {"caption", "jpg_0", "jpg_1", "label_0", "label_1"}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    spec = build_spec({"output_dir": str(root / "run"), "dataset": {"limit": 3},
                       "loop": {"rounds": 2, "variants": 2}})
    return repainter.run(spec).run_dir


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_export_loads_with_datasets_json(run_dir, tmp_path):
    out = tmp_path / "prefs"
    data = export_preferences(run_dir, out)
    assert data == out / "data.jsonl"
    ds = datasets.load_dataset("json", data_files=str(out / "data.jsonl"), split="train")
    assert len(ds) > 0
    assert PICKAPIC | {"prompt_chosen", "prompt_rejected", "image_chosen", "image_rejected",
                       "reference", "margin", "score_chosen", "score_rejected",
                       "case_id", "model"} <= set(ds.column_names)
    for row in ds:
        assert row["label_0"] == 1 and row["label_1"] == 0
        assert row["margin"] > 0
        assert row["margin"] == pytest.approx(row["score_chosen"] - row["score_rejected"])
        assert row["round_chosen"] == row["round_rejected"]  # grouped by round
        for column in ("jpg_0", "jpg_1", "reference"):
            assert (out / row[column]).is_file()
        assert row["jpg_0"] != row["jpg_1"]
        assert row["caption"] == row["prompt_chosen"]
    # best_vs_rest with 2 variants: at most one pair per round and case
    assert len(ds) <= 3 * 2
    info = json.loads((out / "export.json").read_text())
    assert info["rows"] == len(ds) and info["pairs"] == "best_vs_rest"


def test_min_margin_and_all_pairs(run_dir, tmp_path):
    everything = _rows(export_preferences(run_dir, tmp_path / "a", pairs="all", group="case"))
    margins = sorted(r["margin"] for r in everything)
    assert len(everything) >= len(_rows(export_preferences(run_dir, tmp_path / "b")))
    threshold = margins[len(margins) // 2]
    kept = _rows(export_preferences(run_dir, tmp_path / "c", pairs="all", group="case",
                                    min_margin=threshold))
    assert kept and all(r["margin"] >= threshold for r in kept)
    assert len(kept) < len(everything) or margins[0] == threshold
    # grouped by case, pairs also cross rounds
    assert any(r["round_chosen"] != r["round_rejected"] for r in everything)


def test_other_metric_and_imagefolder(run_dir, tmp_path):
    out = tmp_path / "ssim"
    export_preferences(run_dir, out, metric="ssim", caption="round")
    rows = _rows(out / "data.jsonl")
    assert rows and all(r["metric"] == "ssim" and r["margin"] > 0 for r in rows)
    assert all(r["score_chosen"] == r["scores_chosen"]["ssim"] for r in rows)
    folder = datasets.load_dataset("imagefolder", data_dir=str(out), split="train")
    assert len(folder) == len(rows)
    assert folder[0]["jpg_0"].size == folder[0]["reference"].size
    decoded = load_preferences(out)
    assert decoded[0]["jpg_1"].mode == "RGB"


def test_errors(run_dir, tmp_path):
    with pytest.raises(ExportError, match="pairs"):
        export_preferences(run_dir, tmp_path / "x", pairs="some")
    with pytest.raises(ExportError, match="run folder"):
        export_preferences(tmp_path, tmp_path / "x")


def test_cli(run_dir, tmp_path):
    out = tmp_path / "cli"
    result = CliRunner().invoke(app, ["export-preferences", str(run_dir), str(out),
                                      "--min-margin", "0.001", "--pairs", "all"])
    assert result.exit_code == 0, result.output
    assert str(out / "data.jsonl") in result.output
    assert all(r["margin"] >= 0.001 for r in _rows(out / "data.jsonl"))
