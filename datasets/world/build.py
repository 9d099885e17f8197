"""Rebuild ``scenes.jsonl`` from the generator's fixed seeds (``--check`` to verify only).

    python datasets/world/build.py            # rewrite
    python datasets/world/build.py --check    # exit 1 if the file differs from the seeds

Same as ``python -m repainter.bench.world.generator``.
"""

import sys
from pathlib import Path

from repainter.bench.world.generator import main

if __name__ == "__main__":
    args = sys.argv[1:]
    target = str(Path(__file__).resolve().parent / "scenes.jsonl")
    sys.exit(main([*args, target]))
