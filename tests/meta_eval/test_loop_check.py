"""The loop vs best-of-N analysis (issue 26): two Holm families, and its place in VALIDITY.md."""

import json

from repainter.bench.meta_eval import meta_eval
from repainter.bench.meta_eval.loop_check import acceptance_line, analyse


def _scores(gain: float, scenes: int = 12, spread: float = 0.01) -> dict:
    loop = {(f"s{i}", 7): 0.7 + gain + spread * ((i % 3) - 1) for i in range(scenes)}
    base = {(f"s{i}", 7): 0.7 for i in range(scenes)}
    return {"adaptive": loop, "best_of_n": base}


def test_claim_family_holds_only_the_wording_models_and_worse_is_checked_on_all():
    results = {"default": _scores(0.05), "vocabulary-0.35": _scores(0.05),
               "order_drop-0.3": _scores(0.05), "token_budget-24": _scores(0.05),
               "layout-1": _scores(-0.05), "biased": _scores(0.0)}
    rows = analyse(results, ["adaptive"])["adaptive"]
    assert "p_holm_claim" in rows["default"] and "p_holm_claim" not in rows["layout-1"]
    # the claim family has 4 members, the safety family all 6: Holm multiplies accordingly
    assert rows["default"]["p_holm_claim"] <= rows["default"]["p_holm"]
    line = acceptance_line("adaptive", rows)
    assert "NOT met" in line and "significantly worse on layout-1" in line
    rows["layout-1"]["difference"] = 0.0
    assert ": MET:" in acceptance_line("adaptive", rows)


def test_meta_eval_copies_the_loop_check_into_validity(tmp_path):
    rows = analyse({"default": _scores(0.05)}, ["adaptive"])
    check = tmp_path / "ADAPTIVE_LOOP.json"
    check.write_text(json.dumps({"meta": {"command": "python bench/loop_vs_best_of_n.py",
                                          "commit": "abc123", "at": "now", "scenes": 12,
                                          "seeds": [7], "rounds": 3, "variants": 3},
                                 "table": rows}))
    meta_eval(parts=["degradations"], degradation_images=["camera"], degradation_size=32,
              degradation_kinds=["blur"], output_dir=str(tmp_path / "o"), loop_check=str(check))
    markdown = (tmp_path / "o" / "VALIDITY.md").read_text()
    assert "## (f) The loop against best-of-N on every model" in markdown
    assert "| default | wording |" in markdown
    assert "- Loop vs best_of_n on every model: adaptive:" in markdown
