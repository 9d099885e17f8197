"""The world's renderers by name: ``flat`` (the bench's own, everything was tuned on it) and
``painterly`` (another look, nothing was tuned on it; see
:mod:`~repainter.bench.world.painterly`).

>>> sorted(RENDERERS)
['flat', 'painterly']
"""

from __future__ import annotations

from PIL import Image

from repainter.bench.world.scene import SceneSpec

RENDERERS = ("flat", "painterly")


def check_renderer(name: str) -> str:
    if name not in RENDERERS:
        raise ValueError(f"unknown world renderer {name!r}; choose one of {', '.join(RENDERERS)}")
    return name


def draw(scene: SceneSpec, size: int, renderer: str = "flat", seed: int = 0) -> Image.Image:
    """``scene`` drawn by ``renderer``; ``seed`` only matters to renderers with grain."""
    if check_renderer(renderer) == "flat":
        from repainter.bench.world.scene import render_scene

        return render_scene(scene, size)
    from repainter.bench.world.painterly import render_painterly

    return render_painterly(scene, size, seed=seed)
