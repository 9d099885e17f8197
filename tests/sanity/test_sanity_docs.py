"""The example spec of the sanity docs is a valid spec, and the docs say how to run it."""

from __future__ import annotations

from pathlib import Path

import yaml

from repainter.preflight import component_problems, dataset_problems, spec_problems
from repainter.registry import DATASETS
from repainter.sanity.config import sampler_steps
from repainter.spec import ComponentSpec, build_spec

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "specs" / "sanity-sd15-sdxl-turbo.yaml"


def test_the_example_spec_is_valid_and_its_comment_says_the_sampler_steps_it_runs():
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    spec = build_spec(data)
    # what `repainter validate` finds, the dataset's folder (the reader's own) aside
    problems = [p for p in spec_problems(spec) if p not in dataset_problems(spec)]
    assert problems + component_problems(DATASETS, [ComponentSpec(
        name=spec.dataset.name, params=spec.dataset.params)]) == []
    assert spec.selection == {"clip_i": 0.5, "dinov2": 0.5}
    steps = {t.display_name: t.params["steps"] for t in spec.t2i}
    assert sampler_steps(steps["sd15"], 4) == [30, 10, 3, 1]
    assert "runs 30, 10, 3, 1 steps" in EXAMPLE.read_text(encoding="utf-8")
    assert sampler_steps(steps["sdxl-turbo"], 4) == [1]


def test_the_docs_and_readme_show_how_to_run_it_before_trusting_a_leaderboard():
    page = (ROOT / "docs" / "sanity.md").read_text(encoding="utf-8")
    assert "repainter sanity --spec examples/specs/sanity-sd15-sdxl-turbo.yaml" in page
    assert "sanity.md" in (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    assert "docs/sanity.md" in (ROOT / "README.md").read_text(encoding="utf-8")
