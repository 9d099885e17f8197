"""What the OpenAI-compatible MLLM's calls cost: each call's requests, tokens, latency, cost and
adaptations (:class:`CallStats` while it runs, a record once it ends), and their sums per run
and per case.

A reply without ``usage`` is counted in ``calls_without_usage``, never as 0 tokens. Cost (with
``prices``: USD per 1M input / output tokens) prices cached input tokens at ``cached_input``,
else at the input price (the call's record then says ``cost_upper_bound``).

>>> ledger = UsageLedger(prices={"input": 2.0, "output": 8.0})
>>> stats = CallStats(requests=1, prompt_tokens=1000, completion_tokens=100)
>>> ledger.record("judge", stats, latency=0.5, reasks=0, ok=True)
>>> ledger.usage()["cost_usd"]
0.0028
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from repainter.backend_timing import CURRENT_CASE
from repainter.backends.mllm.adaptations import summarize


@dataclass
class CallStats:
    """One call (a structured reply, with its retries, re-asks and mode switches) as it runs."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    #: Requests sent again with a weaker response format / with ``max_completion_tokens``.
    downgrades: int = 0
    corrections: int = 0
    usage_missing: bool = False
    #: ``response.model@system_fingerprint``: which build answered.
    served_by: str | None = None
    #: The call's adaptation notes (:mod:`~repainter.backends.mllm.adaptations`).
    adaptations: list[dict[str, Any]] = field(default_factory=list)
    #: The sizes of the images sent.
    image_sizes: list[tuple[int, int]] = field(default_factory=list)
    #: Whether the modes the answered request ran with were noted (once per call).
    modes_noted: bool = False

    @classmethod
    def with_notes(cls, notes: Sequence[dict[str, Any]]) -> CallStats:
        return cls(adaptations=list(notes))

    def count_usage(self, response: Any) -> int | None:
        """Add the reply's token usage; its ``prompt_tokens``, or None without usage."""
        usage = getattr(response, "usage", None)
        model = getattr(response, "model", None)
        fingerprint = getattr(response, "system_fingerprint", None)
        if model or fingerprint:
            self.served_by = f"{model or '?'}" + (f"@{fingerprint}" if fingerprint else "")
        if usage is None:
            self.usage_missing = True  # flagged, not counted as 0 tokens
            return None
        prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
        self.prompt_tokens += prompt_tokens
        self.completion_tokens += int(getattr(usage, "completion_tokens", 0) or 0)
        details = getattr(usage, "prompt_tokens_details", None)
        self.cached_tokens += int(getattr(details, "cached_tokens", 0) or 0)
        return prompt_tokens


def call_cost(prices: dict[str, float], stats: CallStats) -> float:
    """USD: fresh input, cached input (``cached_input`` price, else the input price) and
    output tokens, each at its price per 1M tokens."""
    input_price = float(prices.get("input", 0.0))
    cached = min(stats.cached_tokens, stats.prompt_tokens)
    return ((stats.prompt_tokens - cached) * input_price
            + cached * float(prices.get("cached_input", input_price))
            + stats.completion_tokens * float(prices.get("output", 0.0))) / 1e6


class UsageLedger:
    """Per-call records and run totals; safe to use from several threads."""

    def __init__(self, prices: dict[str, float] | None):
        self.prices = prices
        self._lock = threading.Lock()
        self._records: list[dict[str, Any]] = []
        self._totals = {"calls": 0, "requests": 0, "retries": 0, "reasks": 0, "errors": 0,
                        "prompt_tokens": 0, "completion_tokens": 0, "cached_tokens": 0,
                        "calls_without_usage": 0, "latency_s": 0.0, "cost_usd": 0.0}

    def record(self, task: str, stats: CallStats, latency: float, reasks: int, ok: bool) -> None:
        """One finished call (``ok`` or not), for the case the runner works on now."""
        record = {"task": task, "ok": ok, "attempts": stats.requests, "reasks": reasks,
                  "prompt_tokens": stats.prompt_tokens,
                  "completion_tokens": stats.completion_tokens,
                  "cached_tokens": stats.cached_tokens, "latency_s": latency,
                  "case": CURRENT_CASE.get()}
        if stats.usage_missing:
            record["usage_missing"] = True
        if stats.served_by:
            record["served_by"] = stats.served_by
        if stats.adaptations:
            record["adaptations"] = stats.adaptations
        if self.prices is not None:
            record["cost_usd"] = call_cost(self.prices, stats)
            if stats.cached_tokens and "cached_input" not in self.prices:
                record["cost_upper_bound"] = True  # cached tokens priced as fresh input
        with self._lock:
            self._records.append(record)
            self._add_to_totals(record, stats, reasks)

    def _add_to_totals(self, record: dict[str, Any], stats: CallStats, reasks: int) -> None:
        t = self._totals
        t["calls"] += 1
        t["requests"] += stats.requests
        t["retries"] += max(0, stats.requests - 1 - reasks - stats.downgrades - stats.corrections)
        t["reasks"] += reasks
        t["errors"] += 0 if record["ok"] else 1
        t["prompt_tokens"] += stats.prompt_tokens
        t["completion_tokens"] += stats.completion_tokens
        t["cached_tokens"] += stats.cached_tokens
        t["calls_without_usage"] += 1 if stats.usage_missing else 0
        t["latency_s"] += record["latency_s"]
        t["cost_usd"] += record.get("cost_usd", 0.0)

    def record_cache_hit(self, task: str, notes: list[dict[str, Any]]) -> None:
        """A reply the cache answered, with the adaptations of the modes it was made in."""
        with self._lock:
            self._records.append({"task": task, "case": CURRENT_CASE.get(),
                                  "cache_hit": True, "adaptations": notes})

    def usage(self) -> dict[str, float]:
        with self._lock:
            totals = dict(self._totals)
        totals["total_tokens"] = totals["prompt_tokens"] + totals["completion_tokens"]
        if self.prices is None:
            totals.pop("cost_usd")
        return {k: float(v) for k, v in totals.items()}

    def case_usage(self, model: str, case_id: str) -> dict[str, float]:
        """Calls, tokens and cost of the calls made while the runner worked on this case."""
        with self._lock:
            mine = [r for r in self._records
                    if r.get("case") == (model, case_id) and not r.get("cache_hit")]
        usage = {"calls": len(mine),
                 "prompt_tokens": sum(r["prompt_tokens"] for r in mine),
                 "completion_tokens": sum(r["completion_tokens"] for r in mine)}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        usage["cached_tokens"] = sum(r.get("cached_tokens", 0) for r in mine)
        usage["calls_without_usage"] = sum(1 for r in mine if r.get("usage_missing"))
        if self.prices is not None:
            usage["cost_usd"] = sum(r.get("cost_usd", 0.0) for r in mine)
        # which model build answered (response.model / system_fingerprint), for the case record
        served = sorted({r["served_by"] for r in mine if r.get("served_by")})
        if served:
            usage["served_by"] = served  # type: ignore[assignment]
        return usage

    def records(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in self._records]

    def adaptations(self) -> list[dict[str, Any]]:
        with self._lock:
            return summarize(list(self._records))

    def case_adaptations(self, model: str, case_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return summarize([r for r in self._records if r.get("case") == (model, case_id)])


__all__ = ["CallStats", "UsageLedger", "call_cost"]
