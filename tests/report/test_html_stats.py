"""The HTML report: paired tests for every metric, with the multiple-comparison correction named."""

import repainter


def test_report_has_corrected_tests_for_every_metric(tmp_path):
    result = repainter.run(repainter.build_spec({
        "preset": "world", "output_dir": str(tmp_path / "run"), "dataset": {"limit": 2}, "judge": False,
        "loop": {"rounds": 1, "variants": 1},
        "t2i": ["procedural",
                {"name": "procedural", "label": "colourblind", "params": {"ignore": ["color"]}},
                {"name": "procedural", "label": "one-shot", "strategy": "one_shot"}]}))
    html = (result.run_dir / "report" / "index.html").read_text()
    assert "adjusted p" in html and "Holm (family-wise error rate)" in html
    for metric in ("ssim", "color_histogram", "object_f1"):
        assert f"Paired comparisons on {metric}" in html
    assert "found trustworthy" not in html  # no validity.json in this run folder


def test_spec_names_benjamini_hochberg_for_the_leaderboard(tmp_path):
    import json

    spec = repainter.build_spec({"preset": "world", "output_dir": str(tmp_path / "run"), "dataset": {"limit": 2},
                                 "judge": False, "loop": {"rounds": 1, "variants": 1},
                                 "correction": "bh",
                                 "t2i": ["procedural", {"name": "procedural", "label": "b"},
                                         {"name": "procedural", "label": "c",
                                          "params": {"ignore": ["shape"]}}]})
    assert "correction: bh" in spec.to_yaml() and "correction" not in repainter.RunSpec().to_yaml()
    result = repainter.run(spec)
    board = json.loads((result.run_dir / "leaderboard.json").read_text())
    assert board["correction"] == "bh"
    assert {f["correction"] for f in board["comparisons"].values()} == {"bh"}
    assert "Benjamini-Hochberg" in (result.run_dir / "report" / "index.html").read_text()
