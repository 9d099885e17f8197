"""bench/retrieval_eval.py: the decision benchmark's core on a tiny setting (not timed)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("retrieval_eval", ROOT / "bench" / "retrieval_eval.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def results(bench, tmp_path_factory):
    work = tmp_path_factory.mktemp("retrieval-eval")
    generators = bench.generator_components(["procedural", "colourblind"])
    return [bench.evaluate(rule, work, generators=generators, limit=4, rounds=1, variants=1,
                           gallery_variants=1) for rule in bench.RULES]


def _mean(values):
    return sum(values) / len(values) if values else None


def test_rows_have_the_table_structure_and_agree_with_the_case_records(results):
    for result in results:
        assert result["failed"] == 0 and result["gallery_variants"] == 1
        assert [r["model"] for r in result["rows"]] == ["procedural", "colourblind"]
        for row in result["rows"]:
            mine = [c for c in result["cases"] if c["model"] == row["model"]]
            assert row["rule"] == result["rule"] and row["cases"] == len(mine) == 4
            judged = [c for c in mine if c["correct"] is not None]
            assert row["judged"] == len(judged)
            assert row["ties"] + row["unknown"] + row["judged"] == row["cases"]
            assert row["truth_generated"] + row["truth_retrieved"] == row["judged"]
            assert math.isclose(row["retrieved_share"],
                                _mean([c["choice"] == "retrieved" for c in mine]))
            for key in ("accuracy", "always_generate", "always_retrieve"):
                assert row[key] is None or 0.0 <= row[key] <= 1.0
            if judged:
                assert math.isclose(row["accuracy"], _mean([c["correct"] for c in judged]))
                assert math.isclose(row["always_generate"], row["truth_generated"] / len(judged))
                assert math.isclose(row["always_generate"] + row["always_retrieve"], 1.0)
            else:
                assert row["accuracy"] is row["always_generate"] is None
            for case in mine:
                # the record's verdict is the rule's choice checked against object F1
                if case["correct"] is not None:
                    assert case["correct"] == (case["choice"] == case["truly_closer"])
                    closer = ("generated" if case["generated_f1"] > case["retrieved_f1"]
                              else "retrieved")
                    assert case["truly_closer"] == closer
                # leave-one-out: never the reference itself; every item was found in the gallery
                assert case["retrieved_item"] not in (case["case_id"], "?")


def test_both_rules_see_the_same_loop_and_the_same_retrieved_images(results):
    metric, mllm = results
    key = lambda c: (c["model"], c["case_id"])  # noqa: E731
    a = {key(c): c for c in metric["cases"]}
    b = {key(c): c for c in mllm["cases"]}
    assert a.keys() == b.keys()
    for k, case in a.items():
        for field in ("retrieved_item", "truly_closer", "generated_f1", "retrieved_f1"):
            assert case[field] == b[k][field]
    assert all(2 <= c["generated_value"] <= 10 for c in mllm["cases"])


def test_report_names_its_command_and_holds_every_setting(bench, results, tmp_path):
    text = bench.render(results, [], {"limit": 4, "rounds": 1, "variants": 1,
                                      "gallery_variants": 1}, "python bench/retrieval_eval.py -x", 1.0)
    assert "```bash\npython bench/retrieval_eval.py -x\n```" in text.split("## ")[0]
    for model in ("procedural", "colourblind"):
        assert sum(line.startswith(f"| {model} | ") for line in text.splitlines()) == 3
    pooled = [bench.pooled(r) for r in results]
    assert all(p["cases"] == 8 and (p["accuracy"] is None or 0 <= p["accuracy"] <= 1)
               for p in pooled)
    out = tmp_path / "RETRIEVAL.md"
    out.write_text("old\n" + bench.NOTES_MARK + "\nmy notes\n")
    bench.write_report(out, text)
    assert out.read_text().endswith(bench.NOTES_MARK + "\nmy notes\n")
    assert out.read_text().startswith("# Retrieve or generate")


def test_margin_zero_recomputes_the_recorded_decisions(bench, results):
    for result in results:
        again = bench.with_margin(result, 0.0)
        assert math.isclose(again["retrieved_share"], bench.pooled(result)["retrieved_share"])
        if bench.pooled(result)["accuracy"] is not None:
            assert math.isclose(again["accuracy"], bench.pooled(result)["accuracy"])
        for row in result["rows"]:
            if row["accuracy"] is not None:
                assert math.isclose(again["per_model"][row["model"]], row["accuracy"])
        # a huge margin never retrieves: accuracy is then "always generate"
        never = bench.with_margin(result, 1e9)
        assert never["retrieved_share"] == 0.0
        for row in result["rows"]:
            assert never["per_model"][row["model"]] == row["always_generate"]
