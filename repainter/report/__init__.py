"""Leaderboards and reports built from a run folder's case records."""

from repainter.report.leaderboard import build_leaderboard, write_leaderboard

__all__ = ["build_leaderboard", "write_leaderboard"]
