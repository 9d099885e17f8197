"""What ``repainter meta-eval`` found (validity.json) as verdicts: which metric to trust for which
kind of error. Shared by VALIDITY.md and the HTML report; it reads the JSON only, so the report
never imports the meta-evaluation itself."""

from __future__ import annotations

from typing import Any

#: Tau at or above which a metric is called trustworthy for a kind of error; below WEAK, not.
TRUSTED, WEAK = 0.9, 0.5


def verdict(tau: float | None) -> str:
    if tau is None:
        return "not measured"
    return "trustworthy" if tau >= TRUSTED else ("weak" if tau >= WEAK else "not trustworthy")


def trust_table(data: dict[str, Any]) -> list[dict[str, str]]:
    """One row per metric and kind of error (a ladder, a degradation), with tau and a verdict.

    Example:
        >>> trust_table({"degradations": {"metrics": {"ssim": {"kinds": {"blur": {"tau": 1.0}}}}}})
        [{'metric': 'ssim', 'error': 'degradation: blur', 'tau': '1.00', 'verdict': 'trustworthy'}]
    """
    rows = []
    for name, ladder in (data.get("ladders") or {}).items():
        for metric, result in ladder["metrics"].items():
            tau = result.get("tau_seed_mean")
            stress = "" if ladder.get("required", True) else " (stress, not required)"
            rows.append({"metric": metric, "error": f"ladder {name}{stress}",
                         "tau": fmt_value(tau, 2), "verdict": verdict(tau)})
    for metric, result in ((data.get("degradations") or {}).get("metrics") or {}).items():
        for kind, entry in result["kinds"].items():
            rows.append({"metric": metric, "error": f"degradation: {kind}",
                         "tau": fmt_value(entry.get("tau"), 2), "verdict": verdict(entry.get("tau"))})
    return rows


def fmt_value(value: Any, digits: int = 3) -> str:
    """A float to ``digits`` places; None as "-"."""
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)
