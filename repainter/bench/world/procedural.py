"""The built-in procedural text-to-image model of the offline world.

It draws what a prompt says, as far as the world's grammar (:mod:`repainter.bench.world.grammar`)
understands it: shapes, colours with shades, sizes, positions, styles, counts and a solid or
gradient background. Words it does not understand are ignored; what the prompt leaves unsaid is
drawn from the seed, and every seed adds a little jitter (position, size, colour), so two seeds
of one prompt differ slightly, like two samples of a real model. The same prompt and seed always
give the same image.

``latency_s`` simulates a device: every ``generate`` call waits that long while it holds the
process's one simulated GPU slot (calls from concurrent cases queue for it, as on one GPU),
for scaling benchmarks of executors and schedules; images do not depend on it.

``ignore`` makes a deliberately weaker model that disregards some attributes (``shape``,
``color``, ``size``, ``position``, ``style``, ``background``, ``count``) - useful to check that a
leaderboard ranks models of different fidelity correctly.

>>> t2i = ProceduralT2I(size=64)
>>> a, b = t2i.generate(["a large red circle in the center, white background"] * 2, [1, 1])
>>> a.image.getpixel((32, 32)) == b.image.getpixel((32, 32)), a.image.size
(True, (64, 64))
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from repainter.backends.base import GeneratedImage, T2IBackend
from repainter.bench.world.grammar import ATTRIBUTES, parse_prompt, realise
from repainter.bench.world.scene import render_scene

_SIMULATED_DEVICE = threading.Lock()


class ProceduralT2I(T2IBackend):
    """Offline procedural renderer of the built-in world (no weights, deterministic)."""

    kind = "procedural"

    def __init__(self, size: int = 256, jitter: float = 1.0, ignore: Sequence[str] = (),
                 latency_s: float = 0.0):
        if not 0 <= float(latency_s) <= 600:
            raise ValueError("procedural latency_s must be between 0 and 600 seconds")
        self.latency_s = float(latency_s)
        if not 16 <= int(size) <= 2048:
            raise ValueError("procedural size must be between 16 and 2048 pixels")
        if jitter < 0:
            raise ValueError("procedural jitter must be >= 0")
        unknown = sorted(set(ignore) - set(ATTRIBUTES))
        if unknown:
            raise ValueError(
                f"procedural ignore: unknown attribute(s) {unknown}; known: {', '.join(ATTRIBUTES)}"
            )
        self.size = int(size)
        self.jitter = float(jitter)
        self.ignore = sorted(set(ignore))

    def render(self, prompt: str, seed: int):
        """The scene spec this model draws for ``prompt`` and ``seed`` (for inspection)."""
        rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 0x5EED])
        return realise(parse_prompt(prompt), rng, jitter=self.jitter, ignore=self.ignore)

    def generate(self, prompts: Sequence[str], seeds: Sequence[int]) -> list[GeneratedImage]:
        if len(prompts) != len(seeds):
            raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds")
        if self.latency_s:
            with _SIMULATED_DEVICE:  # one simulated GPU per process
                time.sleep(self.latency_s)
        out = []
        for prompt, seed in zip(prompts, seeds):
            scene = self.render(prompt, seed)
            out.append(GeneratedImage(
                image=render_scene(scene, self.size), prompt=prompt, seed=int(seed),
                metadata={"objects": len(scene.objects)},
            ))
        return out

    def identity(self) -> dict[str, Any]:
        return {"backend": self.kind, "size": self.size, "jitter": self.jitter,
                "ignore": list(self.ignore)}
