"""Reliability tests: faults, bounds and secrets across the whole runner."""
