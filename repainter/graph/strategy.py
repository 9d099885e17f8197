"""The ``adaptive`` loop strategy: revise only what fails across seeds, keep what worked.

A failure that persists across seeds of one prompt is about wording (change the prompt); one that
varies by seed is luck (keep the prompt, spend renders on seeds). So:

* round 1 renders the initial prompt with ``variants`` seeds (the same renders as
  ``best_of_n``'s first round): it shows which failures persist;
* the **base** is the best prompt so far by mean selection score, shrunk toward the mean of all
  renders (:func:`best_prompt`), so one lucky seed does not crown a wording, and a revision that
  lowered the score is forgotten (its parent stays the base): a memory of what worked;
* the MLLM critiques the base's best ``loop.critique_renders`` renders one by one, and only the
  differences found in at least two of them go to the revision (:func:`recurring_differences`);
  with nothing recurring the failures were luck, no revision is asked for, and the next round
  re-samples the base with new seeds;
* a later round renders the revision with ``variants`` seeds (its mean, and its recurring
  failures, are then measured as the base's were); a wording already rendered is never asked for
  again: its round re-samples the base.

The final answer is still the best-ever render, as for every strategy. Nothing here knows the MLLM
or the T2I model: it reads prompts, selection scores and critiques. Differences are matched
across renders on their machine-readable ``target`` + ``change`` when the MLLM fills them, else on
their text; free-text critiques rarely repeat word for word, so when an MLLM fills neither, the
revision acts on the best render's critique (as ``refine`` does) and the round records that
(``critique_basis``). ADAPTIVE_LOOP.md measures the strategy against best_of_n at equal render
budget (``python bench/loop_vs_best_of_n.py``).

>>> rounds = [{"candidates": [{"prompt": "a", "selection": s} for s in (0.5, 0.6, 0.7)]},
...           {"candidates": [{"prompt": "b", "selection": 0.9}, {"prompt": "a", "selection": 0.6}]}]
>>> best_prompt(scores_by_prompt(rounds))
'b'
>>> plan_round(rounds[:1], "a", "c", 3)  # a new wording gets the round's renders
['c', 'c', 'c']
>>> plan_round(rounds[:1], "a", "a", 3)  # nothing new to try: re-sample the base
['a', 'a', 'a']
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from statistics import fmean
from typing import Any

from repainter.schemas import Critique, Difference

#: How many renders at the mean of all renders a prompt's mean is shrunk with: a wording seen
#: once must beat the rest by more than a wording seen three times to become the base.
PRIOR_RENDERS = 1.0
#: Renders of the base a difference must be found in to count as persistent (not luck).
RECURS_IN = 2


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


def base_renders(rounds: Sequence[Mapping[str, Any]], limit: int) -> list[dict[str, Any]]:
    """The best prompt's ``limit`` best-scoring renders, best first (what the MLLM critiques)."""
    prompt = best_prompt(scores_by_prompt(rounds))
    renders = [c for r in rounds for c in r.get("candidates") or []
               if c.get("prompt") == prompt and c.get("selection") is not None]
    return sorted(renders, key=lambda c: -c["selection"])[:max(limit, 1)]


def best_render(rounds: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The best prompt's best-scoring render (what the revision rewrites)."""
    return next(iter(base_renders(rounds, 1)), None)


def _key(diff: Difference) -> tuple[str, ...]:
    def norm(text: str) -> str:
        return re.sub(r"\s+", " ", text.strip().lower())

    if diff.target.strip() and diff.change.strip():
        return (diff.aspect, norm(diff.target), norm(diff.change))
    return (diff.aspect, norm(diff.description))


def recurring_differences(critiques: Sequence[Critique]) -> tuple[Critique, str]:
    """The differences found in at least :data:`RECURS_IN` of ``critiques`` (one per render of
    the base, best render first), in the best render's order, and how they were chosen.

    >>> d = lambda t: Difference(description=t, target="clause:0", change=t)
    >>> found, basis = recurring_differences([Critique(differences=[d("x"), d("y")]),
    ...                                      Critique(differences=[d("y")])])
    >>> [x.description for x in found.differences], basis
    (['y'], '1 of 2 differences recur in at least 2 of 2 renders of the best prompt')
    """
    if len(critiques) < RECURS_IN:
        return critiques[0], "the best prompt's only render"
    every = [d for c in critiques for d in c.differences]
    if every and not any(d.target.strip() and d.change.strip() for d in every):
        # free text (most MLLMs): matching it word for word would call every failure luck
        return critiques[0], "the best render's critique (free-text differences are not matched)"
    counts: dict[tuple[str, ...], int] = {}
    first: dict[tuple[str, ...], Difference] = {}
    for critique in critiques:
        for key in dict.fromkeys(_key(d) for d in critique.differences):
            counts[key] = counts.get(key, 0) + 1
        for diff in critique.differences:
            first.setdefault(_key(diff), diff)
    kept = [first[k] for k in first if counts[k] >= RECURS_IN]
    basis = (f"{len(kept)} of {len(first)} differences recur in at least {RECURS_IN} of "
             f"{len(critiques)} renders of the best prompt")
    summary = "; ".join(d.description for d in kept[:4]) or "no difference recurs: luck"
    return Critique(differences=kept, summary=summary), basis


def plan_round(rounds: Sequence[Mapping[str, Any]], initial: str, revised: str | None,
               variants: int) -> list[str]:
    """The prompts of the next round, one per render (each gets its own seed from the caller):
    the initial prompt in round 1; later, the revision if it is a new wording, else the base."""
    if not rounds:
        return [initial] * variants
    tried = {c.get("prompt") for r in rounds for c in r.get("candidates") or []}
    fresh = revised.strip() if revised else ""
    if fresh and fresh not in tried:
        return [fresh] * variants
    return [best_prompt(scores_by_prompt(rounds)) or initial] * variants
