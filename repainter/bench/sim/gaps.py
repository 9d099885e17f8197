"""The minimum true-quality gap between adjacent rungs of a required ladder, from measured power.

A required ladder asks the truth metric of the loop's picks to separate every adjacent pair
(paired sign-flip test, p < 0.05, on the bench's 32 scenes averaged over 3 seeds). Whether it
can depends on two things the bench measures, not on a pair that happened to fail:

* **noise**: the standard deviation ``sd`` of the per-scene paired differences. A difference
  ``d`` is found with probability ``power`` when ``d >= (z(1 - alpha/2) + z(power)) * sd / sqrt(n)``
  (:func:`detectable_difference`: the minimum detectable difference of a paired test);
* **repair**: the loop reaches something else than one oracle render, and repairs some
  failures more than others, so the gap it leaves is the true gap minus a *shrink* (true gap -
  loop gap). Nested rungs share every random draw and differ by one failure; non-nested pairs
  differ in failure mode, so their shrink varies more.

Per ladder kind, :func:`derive_min_gaps` takes the largest ``sd`` and the largest shrink over
that kind's adjacent pairs (required and stress ladders alike: every measured pair says how much
the loop closes a gap) from a meta-eval run on the **design seeds** 0-2, and sets
``minimum = detectable_difference(sd) + max(shrink, 0)``. ``python bench/min_gaps.py`` writes
the result, with its inputs, to ``min_gaps.json`` next to this module, which ``zoo.MIN_GAP``
reads.
The check runs on other seeds (``repainter meta-eval --seeds auto``) then test the rule.

>>> round(detectable_difference(0.05, 32), 4)
0.0248
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from statistics import NormalDist, fmean, stdev
from typing import Any

#: The committed derivation (``python bench/min_gaps.py``); its ``minimum`` per kind is the rule.
MIN_GAPS_PATH = Path(__file__).with_name("min_gaps.json")
ALPHA, POWER = 0.05, 0.8


def detectable_difference(sd: float, cases: int, alpha: float = ALPHA,
                          power: float = POWER) -> float:
    """The smallest mean paired difference a two-sided test at ``alpha`` finds with probability
    ``power`` over ``cases`` cases whose differences have standard deviation ``sd``."""
    z = NormalDist().inv_cdf
    return (z(1 - alpha / 2) + z(power)) * sd / math.sqrt(cases)


def measured_pairs(validity: dict[str, Any], truth: str = "scene_truth") -> list[dict[str, Any]]:
    """Every adjacent pair of a meta-eval run's ladders: kind, true gap, the loop's gap, the
    per-case standard deviation and the number of cases."""
    pairs = []
    for name, ladder in (validity.get("ladders") or {}).items():
        result = (ladder.get("metrics") or {}).get(truth)
        gaps = ladder.get("gaps") or []
        if not result or len(gaps) != len(result["adjacent"]):
            continue
        for gap, row in zip(gaps, result["adjacent"], strict=True):
            if row.get("sd_difference") is None:
                raise ValueError(f"ladder {name}: the run predates sd_difference; re-run "
                                 "repainter meta-eval --parts ladders on the design seeds")
            pairs.append({"ladder": name, "kind": "nested" if ladder["nested"] else "non-nested",
                          "pair": f"{row['better']} > {row['worse']}", "true_gap": gap["gap"],
                          "loop_gap": row["mean_difference"], "sd": row["sd_difference"],
                          "cases": row["n"], "shrink": gap["gap"] - row["mean_difference"]})
    return pairs


def derive_min_gaps(validity: dict[str, Any], truth: str = "scene_truth") -> dict[str, Any]:
    """Per ladder kind: the minimum gap and what it is made of (see the module doc)."""
    pairs = measured_pairs(validity, truth)
    out: dict[str, Any] = {}
    for kind in ("nested", "non-nested"):
        mine = [p for p in pairs if p["kind"] == kind]
        if len(mine) < 2:
            continue
        cases = min(p["cases"] for p in mine)
        sd = math.sqrt(fmean(p["sd"] ** 2 for p in mine))  # pooled per-case noise
        shrinks = [p["shrink"] for p in mine]
        out[kind] = {"minimum": round(minimum_gap(sd, cases, fmean(shrinks), stdev(shrinks)), 3),
                     "pooled_sd": sd, "cases": cases, "mean_shrink": fmean(shrinks),
                     "sd_shrink": stdev(shrinks), "pairs": len(mine),
                     "detectable_difference": detectable_difference(sd, cases)}
    return {"alpha": ALPHA, "power": POWER, "truth": truth, "kinds": out, "pairs": pairs}


def minimum_gap(sd: float, cases: int, mean_shrink: float, sd_shrink: float,
                alpha: float = ALPHA, power: float = POWER) -> float:
    """The true gap a pair needs for the loop's picks to separate it with probability
    ``power``: the loop leaves ``gap - shrink`` (shrink ~ N(mean_shrink, sd_shrink) over pairs
    of a kind), and the paired test must find that with its own noise ``sd / sqrt(cases)``.

    >>> round(minimum_gap(0.07, 32, 0.0, 0.0), 4) == round(detectable_difference(0.07, 32), 4)
    True
    """
    z = NormalDist().inv_cdf
    test_noise = sd / math.sqrt(cases)
    return (mean_shrink + z(1 - alpha / 2) * test_noise
            + z(power) * math.sqrt(test_noise ** 2 + sd_shrink ** 2))


def load_min_gaps(path: Path = MIN_GAPS_PATH) -> dict[str, float]:
    """Kind -> minimum gap from the committed derivation."""
    kinds = json.loads(path.read_text(encoding="utf-8"))["derivation"]["kinds"]
    return {kind: float(entry["minimum"]) for kind, entry in kinds.items()}
