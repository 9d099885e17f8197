"""The world's items and their built-in dialogues, shared by the DAR tests."""

from __future__ import annotations

import pytest

from repainter.bench.world.dar import world_dialogues
from repainter.datasets import load_dataset


@pytest.fixture(scope="session")
def items():
    return load_dataset("world").items()


@pytest.fixture(scope="session")
def dialogues(items):
    return world_dialogues(items)
