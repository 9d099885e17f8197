"""The minimum adjacent gaps come from the bench's measured power (issue 26, item 4)."""

import json
from pathlib import Path

from repainter.bench.sim.gaps import MIN_GAPS_PATH, derive_min_gaps, minimum_gap
from repainter.bench.sim.zoo import MIN_GAP, ladder_gaps, ladders

ROOT = Path(__file__).resolve().parents[2]


def test_committed_gaps_are_what_the_design_run_derives():
    committed = json.loads(MIN_GAPS_PATH.read_text())
    design = json.loads((ROOT / committed["source"]).read_text())
    derived = derive_min_gaps(design)
    assert derived["kinds"] == committed["derivation"]["kinds"]
    assert committed["seeds"] == [0, 1, 2]  # the design seeds, never a check's
    assert MIN_GAP == {k: v["minimum"] for k, v in derived["kinds"].items()}


def test_noisier_pairs_and_uneven_repairs_need_larger_gaps():
    base = minimum_gap(0.07, 32, 0.0, 0.0)
    assert minimum_gap(0.10, 32, 0.0, 0.0) > base
    assert minimum_gap(0.07, 32, 0.0, 0.04) > base
    assert minimum_gap(0.07, 64, 0.0, 0.0) < base


def test_every_required_ladder_meets_the_derived_gaps():
    for ladder in ladders().values():
        if ladder.required:
            assert all(g["meets"] for g in ladder_gaps(ladder)), ladder.name
