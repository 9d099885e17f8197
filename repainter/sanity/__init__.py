"""Metric sanity ladders on the user's own models (issue 29).

Before a leaderboard of real models is trusted, this checks that *its* metrics, with *its*
weights, on *its* T2I models' renders, order things whose order is known by construction:

* :mod:`~repainter.sanity.prompt_ladder` - prompts that say less and less of each reference's
  description (renders of poorer prompts should score less similar);
* :mod:`~repainter.sanity.corruption` - the model's own best render damaged at graded
  strengths;
* the sampler-budget ladder (diffusers: fewer inference steps), an empirical check only;
* judge consistency: the MLLM judge on the same ladders, and its pairwise agreement with the
  selection score.

:mod:`~repainter.sanity.collect` renders and scores with the spec's components,
:mod:`~repainter.sanity.statistics` and :mod:`~repainter.sanity.analysis` compute tau per case
and pooled with bootstrap intervals and the adjacent-rung tests, :mod:`~repainter.sanity.writers`
writes sanity.json and SANITY.md into the run folder, :mod:`repainter.report.sanity` says it in
words (and reads it back for the leaderboard and the report). ``repainter sanity --spec SPEC``
runs it (:mod:`repainter.cli.sanity`).
"""

from repainter.sanity.config import SanityConfig
from repainter.sanity.run import run_sanity

__all__ = ["SanityConfig", "run_sanity"]
