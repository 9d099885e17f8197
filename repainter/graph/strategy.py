"""The ``adaptive`` loop strategy: each round spends its renders where the evidence says they pay.

A failure that persists across seeds of one prompt is about wording (change the prompt); one that
varies by seed is luck (keep the prompt, spend renders on seeds). So:

* round 1 renders the initial prompt and the MLLM's rewordings of it (as ``refine`` does);
* the MLLM critiques the best render of the **best prompt so far** and revises that prompt, a
  memory of what worked: a revision that lowered the score is forgotten and the prompt it came
  from stays the base (``refine`` revises whichever render won, lucky seed or not);
* each later round splits its renders: some go to the revision and the MLLM's rewordings of it,
  the rest re-sample the best prompt with new seeds, by the observed share of the score variance
  that lies between seeds of one wording rather than between wordings (:func:`resample_count`);
  a wording already rendered is never asked for again (its render re-samples the best prompt).

The best prompt is the one with the highest mean selection score, shrunk toward the mean of all
renders (:func:`best_prompt`), so one lucky seed does not crown a wording. The final answer is
still the best-ever render, as for every strategy. Nothing here knows the MLLM or the T2I model:
it reads only prompts and selection scores from the rounds. ADAPTIVE_LOOP.md measures it against
best_of_n at equal render budget (``python bench/loop_vs_best_of_n.py``).

>>> rounds = [{"candidates": [{"prompt": "a", "selection": s} for s in (0.5, 0.6, 0.7)]},
...           {"candidates": [{"prompt": "b", "selection": 0.9}, {"prompt": "a", "selection": 0.6}]}]
>>> best_prompt(scores_by_prompt(rounds))
'b'
>>> resample_count(scores_by_prompt(rounds[:1]), 3)  # all spread is seed spread so far
2
>>> resample_count({"a": [0.5], "b": [0.7]}, 3)  # seed spread not measured yet: explore
0
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from statistics import fmean, pvariance
from typing import Any

#: How many renders at the mean of all renders a prompt's mean is shrunk with: a wording seen
#: once must beat the rest by more than a wording seen three times to become the base.
PRIOR_RENDERS = 1.0


def scores_by_prompt(rounds: Iterable[Mapping[str, Any]]) -> dict[str, list[float]]:
    """Prompt -> the selection scores of its scorable renders, in the order they were made."""
    out: dict[str, list[float]] = {}
    for record in rounds:
        for candidate in record.get("candidates") or []:
            if candidate.get("selection") is not None:
                out.setdefault(candidate["prompt"], []).append(float(candidate["selection"]))
    return out


def best_prompt(scores: Mapping[str, list[float]]) -> str | None:
    """The prompt with the highest shrunk mean score (ties: the one rendered first)."""
    if not scores:
        return None
    grand = fmean(v for values in scores.values() for v in values)

    def shrunk(prompt: str) -> float:
        values = scores[prompt]
        return (sum(values) + PRIOR_RENDERS * grand) / (len(values) + PRIOR_RENDERS)

    return max(scores, key=shrunk)


def spreads(scores: Mapping[str, list[float]]) -> tuple[float | None, float | None]:
    """(within, between): the pooled variance of one prompt's scores across seeds, and the
    variance of prompts' means beyond what that seed noise explains (None: not measurable yet)."""
    repeated = [v for v in scores.values() if len(v) >= 2]
    within = (sum(pvariance(v) * len(v) for v in repeated)
              / max(sum(len(v) - 1 for v in repeated), 1)) if repeated else None
    if len(scores) < 2 or within is None:
        return within, None
    means = [fmean(v) for v in scores.values()]
    noise = fmean(within / len(v) for v in scores.values())
    return within, max(pvariance(means) - noise, 0.0)


def resample_count(scores: Mapping[str, list[float]], variants: int) -> int:
    """Renders of the next round that re-sample the best prompt with new seeds (the rest go to
    new wordings): the seed share of the score variance, times ``variants``, rounded.

    Rounded down, and at least one render explores (else no revision is ever tried): a render
    spent on a new wording can find a failure that no seed of the best wording avoids, so the
    tie goes to exploring. Before the seed spread of one wording was measured (no wording has
    two renders yet) every render explores; a wording the MLLM writes again becomes a re-sample.
    """
    if variants <= 1:
        return 0
    within, between = spreads(scores)
    if within is None:
        return 0
    total = within + (between or 0.0)
    share = within / total if total > 0 else 0.0
    return min(int(share * variants), variants - 1)


def best_render(rounds: Iterable[Mapping[str, Any]], prompt: str | None) -> dict[str, Any] | None:
    """The best-scoring render of ``prompt`` (what the MLLM critiques before revising it)."""
    renders = [c for r in rounds for c in r.get("candidates") or []
               if c.get("prompt") == prompt and c.get("selection") is not None]
    return max(renders, key=lambda c: c["selection"], default=None)


def plan_round(rounds: list[Mapping[str, Any]], initial: str, revised: str | None,
               variants: int, rewordings) -> list[str]:
    """The prompts of the next round, one per render.

    ``rewordings(prompt, n)`` asks the MLLM for ``n`` wordings of ``prompt`` (the first may be
    ``prompt`` itself). A wording already rendered is not asked for again: its render becomes a
    re-sample of the best prompt. Re-sampled prompts get new seeds from the caller.
    """
    if not rounds:  # round 1: the initial prompt and the MLLM's rewordings of it
        return _distinct([initial, *rewordings(initial, variants)], set(), variants, initial)
    scores = scores_by_prompt(rounds)
    base = best_prompt(scores) or initial
    resample = resample_count(scores, variants)
    start = revised.strip() if revised and revised.strip() else base
    tried = {c.get("prompt") for r in rounds for c in r.get("candidates") or []}
    wordings = [start, *rewordings(start, variants - resample)] if variants - resample > 1 else [start]
    return _distinct(wordings, tried, variants - resample, base) + [base] * resample


def _distinct(wordings: list[str], tried: set, n: int, fill: str) -> list[str]:
    """The first ``n`` distinct new wordings, padded with ``fill`` (a re-sample)."""
    fresh = [w for w in dict.fromkeys(p.strip() for p in wordings if p and p.strip())
             if w not in tried]
    fresh = fresh[:n]
    return fresh + [fill] * (n - len(fresh))
