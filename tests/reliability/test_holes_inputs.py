"""Issue 27, rows 12 and 14 and the input leftovers: what a user types is checked before anything
runs, and what a label says is written as text.

- row 12: ``repainter meta-eval -c bad.yaml`` ends in one ``error:`` line, exit 2, for a config
  that is a list, an unknown degradation kind, a strength out of (0, 1], an image scikit-image
  does not bundle, a malformed ladder and ``--validity`` into a missing folder;
- row 14: labels such as ``<script>alert(1)</script>`` or ``a|b`` are escaped in every generated
  Markdown table (leaderboard.md of runs, seeds, grids and compares; adaptive sections; the
  trackers' leaderboard.md);
- leftovers: ``export-preferences --metric nope`` is an error naming the run's metrics; a spec
  with a duplicate key, ``seed: true`` or a label with surrounding whitespace is refused.

Every test failed on ea98471 and passes now.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from repainter.cli import app
from repainter.records.leaderboard import AdaptiveSummary, PairDecision
from repainter.report.adaptive import adaptive_markdown
from repainter.runner import run
from repainter.spec import SpecError, build_spec, read_spec_file

SCRIPT = "<script>alert(1)</script>"
SVG = "<svg onload=alert(2)>"
PIPE = "a|b"


def _one_error_line(result) -> str:
    """The CLI's answer to a user mistake: exit 2 and one ``error:`` line, no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    return lines[0]


@pytest.fixture(scope="module")
def labelled_run(tmp_path_factory) -> Path:
    """A finished run of three T2I entries whose labels are HTML and a Markdown cell border."""
    root = tmp_path_factory.mktemp("labels")
    spec = build_spec({
        "preset": "world", "output_dir": str(root / "run"), "dataset": {"limit": 2},
        "loop": {"rounds": 1, "variants": 2},
        "t2i": [{"name": "procedural", "label": label} for label in (SCRIPT, PIPE, SVG)]})
    return run(spec).run_dir


# ---- row 12: meta-eval configs -------------------------------------------------------------

BAD_CONFIGS = {
    "a list": "- scenes\n- 8\n",
    "an unknown degradation kind": "degradation_kinds: [blur, melt]\n",
    "strength 1e9": "degradation_strengths: [0.5, 1e9]\n",
    "a bad image name": "degradation_images: [astronaut, nope]\n",
    "an image name that downloads": "degradation_images: [download_all]\n",
    "a ladder whose models are a number": "ladders: {mine: {models: 3}}\n",
    "a ladder whose models are a string": "ladders: {mine: {models: procedural}}\n",
    "a ladder model without a name": "ladders: {mine: {models: [{params: {}}, procedural]}}\n",
    "a duplicate key": "scenes: 8\nscenes: 9\n",
}


@pytest.mark.parametrize("what", list(BAD_CONFIGS))
def test_a_bad_meta_eval_config_is_one_error_line(what, tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text(BAD_CONFIGS[what], encoding="utf-8")
    result = CliRunner().invoke(app, ["meta-eval", "-c", str(config), "--parts", "degradations",
                                      "-o", str(tmp_path / "out")])
    _one_error_line(result)
    assert not (tmp_path / "out" / "validity.json").exists()


def test_meta_eval_names_the_duplicate_key_and_its_line(tmp_path):
    config = tmp_path / "dup.yaml"
    config.write_text("degradation_size: 32\ndegradation_kinds: [blur]\n"
                      "degradation_images: [camera]\ndegradation_size: 16\n", encoding="utf-8")
    line = _one_error_line(CliRunner().invoke(app, [
        "meta-eval", "-c", str(config), "--parts", "degradations", "-o", str(tmp_path / "o")]))
    assert "duplicate key 'degradation_size' on line 4" in line


@pytest.mark.parametrize("where", ["missing/VALIDITY.md", "a_file/VALIDITY.md", "a_folder"])
def test_meta_eval_validity_path_is_checked_before_anything_runs(where, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("a_file").write_text("mine", encoding="utf-8")
    Path("a_folder").mkdir()
    config = Path("small.yaml")
    config.write_text("degradation_images: [camera]\ndegradation_size: 32\n"
                      "degradation_kinds: [blur]\ndegradation_metrics: [psnr]\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["meta-eval", "-c", str(config), "--parts", "degradations",
                                      "-o", "out", "--validity", where])
    assert "--validity" in _one_error_line(result)
    assert not Path("missing").exists() and not Path("out").exists()
    assert Path("a_file").read_text(encoding="utf-8") == "mine"


# ---- row 14 and the `|` leftover: labels in Markdown -----------------------------------------

def _table_widths(markdown: str) -> list[int]:
    """Cells per table row, counting only unescaped ``|`` borders."""
    return [len(re.findall(r"(?<!\\)\|", line)) - 1
            for line in markdown.splitlines() if line.startswith("|")]


def test_leaderboard_md_writes_labels_as_text(labelled_run):
    markdown = (labelled_run / "leaderboard.md").read_text(encoding="utf-8")
    assert "<script" not in markdown and "<svg" not in markdown
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in markdown
    assert "&lt;svg onload=alert(2)&gt;" in markdown
    assert "a\\|b" in markdown
    # every row of every table has as many cells as its header: `a|b` does not split its row
    tables = [block for block in markdown.split("\n\n") if block.startswith("|")]
    assert tables
    for table in tables:
        widths = _table_widths(table)
        assert len(set(widths)) == 1, table


def test_adaptive_section_writes_labels_as_text():
    summary = AdaptiveSummary(
        method="e-value", alpha=0.05, metric=SVG, references_available=8, references_limit=8,
        references_used=4, stopped_early=True, all_pairs_decided=True, references_saved=4,
        saved_fraction=0.5,
        pairs=[PairDecision(model_a=SCRIPT, model_b=PIPE, n=4, decision="a>b", decided_after=4,
                            wealth=21.0)])
    markdown = adaptive_markdown(summary)
    assert "<script" not in markdown and "<svg" not in markdown and "a\\|b" in markdown
    assert len(set(_table_widths(markdown))) == 1


# ---- leftovers: export-preferences --metric, spec files -------------------------------------

def test_export_preferences_with_an_unknown_metric_is_an_error(labelled_run, tmp_path):
    result = CliRunner().invoke(app, ["export-preferences", str(labelled_run),
                                      str(tmp_path / "prefs"), "--metric", "nope"])
    line = _one_error_line(result)
    assert "'nope'" in line and "selection" in line and "ssim" in line
    assert not (tmp_path / "prefs" / "data.jsonl").exists()


def test_duplicate_keys_in_a_spec_are_refused_with_key_and_line(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: a\nloop:\n  rounds: 1\n  rounds: 2\n", encoding="utf-8")
    with pytest.raises(SpecError, match=r"duplicate key 'rounds' on line 4 \(first on line 3\)"):
        read_spec_file(spec)
    line = _one_error_line(CliRunner().invoke(app, ["validate", str(spec)]))
    assert "duplicate key 'rounds' on line 4" in line
    # a key a merge (<<:) brings in may still be overridden: that is what a merge is for
    spec.write_text("base: &b {rounds: 1, variants: 2}\nloop:\n  <<: *b\n  rounds: 3\n",
                    encoding="utf-8")
    assert read_spec_file(spec)["loop"] == {"rounds": 3, "variants": 2}


@pytest.mark.parametrize("text", ["seed: true\n", "seeds: [0, true]\n", "seed: false\n"])
def test_a_bool_seed_is_not_an_int(text, tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(text, encoding="utf-8")
    assert "seed" in _one_error_line(CliRunner().invoke(app, ["validate", str(spec)]))
    assert build_spec({"seed": 3, "seeds": [1, 2]}).seed == 3  # an int still is one


@pytest.mark.parametrize("label", [" sim", "sim ", "", "  ", "\tsim"])
@pytest.mark.parametrize("section", ["t2i", "metrics"])
def test_labels_are_not_empty_nor_padded(label, section, tmp_path):
    spec = tmp_path / "spec.yaml"
    name = "sim" if section == "t2i" else "ssim"
    spec.write_text(f'{section}: [{{name: {name}, label: "{label}"}}]\n', encoding="utf-8")
    line = _one_error_line(CliRunner().invoke(app, ["validate", str(spec)]))
    assert "label" in line


# ---- RELIABILITY.md: which suites ran, which tests were skipped and why ------------------------

def _reliability_bench():
    """bench/reliability.py as a module (it is a script, not part of the package)."""
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "bench" / "reliability.py"
    spec = importlib.util.spec_from_file_location("reliability_bench", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reliability_md_names_skipped_tests_and_their_reasons(tmp_path):
    import subprocess
    import sys

    suite = tmp_path / "test_fake_suite.py"
    suite.write_text("import pytest\n\ndef test_runs():\n    assert True\n\n"
                     "@pytest.mark.parametrize('n', [1, 2])\ndef test_needs_chromium(n):\n"
                     "    pytest.skip('Chromium is not installed')\n", encoding="utf-8")
    xml = tmp_path / "suite.xml"
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                    f"--junitxml={xml}", str(suite)], cwd=tmp_path, capture_output=True,
                   check=False)
    bench = _reliability_bench()
    count = bench.read_junit(xml)
    assert (count["tests"], count["passed"], count["skipped"]) == (3, 1, 2)
    assert count["skip_reasons"] == {"Chromium is not installed": 2}
    section = "\n".join(bench.suite_section("Security", ["tests/x.py"], "what", count, 1.0))
    assert "Skipped on this machine: 2 x Chromium is not installed." in section
    assert "| 3 | 1 | 0 | 2 |" in section  # 1 passed of 3, never "3/3"
    overview = "\n".join(bench.suites_overview([("Security", count), ("Ray", None)]))
    assert "1 of 2 suites ran on this machine; 2 test(s) were skipped" in overview
    assert "| Ray | did not run |" in overview
    assert "| Security | ran | 3 | 1 | 0 | 2 |" in overview
