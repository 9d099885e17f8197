"""Shared fixtures of the executor tests."""

import pytest


@pytest.fixture(scope="module")
def cluster():
    """A private local Ray cluster for one test module, stopped by it (never joins another)."""
    ray = pytest.importorskip("ray")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()
