"""Derive the bench's minimum adjacent gaps from its measured power (issue 26, item 4).

    repainter meta-eval --parts ladders --seeds 0,1,2 -o /tmp/design-gaps \
        --validity validity/design-seeds-0-2/VALIDITY.md
    python bench/min_gaps.py validity/design-seeds-0-2/validity.json

Reads a meta-eval run of the ladders on the design seeds, and writes
repainter/bench/sim/min_gaps.json: per ladder kind, the minimum detectable difference of the
paired test at the bench's size (from the noisiest pair's per-scene SD) plus the largest gap the
loop closed (true gap - loop gap), with every pair it was measured on
(repainter.bench.sim.gaps). repainter.bench.sim.zoo.MIN_GAP reads that file.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from repainter.bench.sim.gaps import MIN_GAPS_PATH, derive_min_gaps  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("validity", help="validity.json of a ladders run on the design seeds")
    parser.add_argument("--out", default=str(MIN_GAPS_PATH))
    args = parser.parse_args(argv)
    source = Path(args.validity)
    validity = json.loads(source.read_text(encoding="utf-8"))
    config = validity.get("config") or {}
    derivation = derive_min_gaps(validity, config.get("truth") or "scene_truth")
    shown = source.resolve().relative_to(ROOT) if source.resolve().is_relative_to(ROOT) else source
    out = {"command": f"python bench/min_gaps.py {shown}", "source": str(shown),
           "source_command": validity.get("command"), "seeds": config.get("seeds"),
           "scenes": config.get("scenes"), "derivation": derivation}
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    for kind, entry in derivation["kinds"].items():
        print(f"{kind}: minimum {entry['minimum']:.3f} (pooled sd {entry['pooled_sd']:.3f}, n "
              f"{entry['cases']}, detectable {entry['detectable_difference']:.3f}; shrink mean "
              f"{entry['mean_shrink']:+.3f} sd {entry['sd_shrink']:.3f}; {entry['pairs']} pairs)")
    for p in derivation["pairs"]:
        print(f"  {p['ladder']} {p['pair']}: true {p['true_gap']:.3f} loop {p['loop_gap']:.3f} "
              f"sd {p['sd']:.3f}")


if __name__ == "__main__":
    main()
