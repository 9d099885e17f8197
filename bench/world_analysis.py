"""Time the offline world's image analysis (the scene analyst's eyes) per image.

    python bench/world_analysis.py          # prints seconds per image, crowded scenes

Moved out of the unit tests (issue 15): wall-clock limits fail on a loaded machine; the number
belongs here and in BENCHMARKS.md.
"""

from __future__ import annotations

import platform
import time

from repainter.bench.world.analysis import analyse
from repainter.bench.world.generator import bundle_rows
from repainter.bench.world.scene import SceneSpec, render_scene


def main(repeats: int = 3) -> None:
    scenes = [SceneSpec.model_validate(r["scene"]) for r in bundle_rows()][16:24]  # crowded ones
    images = [render_scene(s) for s in scenes]
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for image in images:
            analyse(image)
        best = min(best, (time.perf_counter() - start) / len(images))
    print(f"world analysis: {best * 1000:.1f} ms per image (best of {repeats} x {len(images)} "
          f"crowded scenes, {platform.processor() or platform.machine()}, Python "
          f"{platform.python_version()})")


if __name__ == "__main__":
    main()
