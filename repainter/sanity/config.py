"""What a sanity check runs: how many references and rungs, which ladders, the seed."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from repainter.sanity.corruption import KINDS

LADDERS = ("prompt", "corruption", "sampler")
#: T2I backends whose number of inference steps can be set per call (the sampler ladder).
STEPPED_BACKENDS = ("diffusers",)


class SanityConfig(BaseModel):
    """The sanity check's settings; the defaults take about as long as a 20-reference run of
    the spec's default loop (3 rounds x 3 variants: 9 renders a case; here 5 prompt rungs and
    at most 4 sampler rungs)."""

    model_config = ConfigDict(extra="forbid")

    #: References sampled from the spec's dataset (its first ones, in dataset order).
    references: int = Field(default=20, ge=2)
    #: Rungs per ladder, the top rung included (the whole prompt, the undamaged render).
    rungs: int = Field(default=5, ge=3, le=12)
    #: Renders per prompt rung (each with its own seed, the same seeds on every rung).
    renders: int = Field(default=1, ge=1, le=8)
    ladders: list[Literal["prompt", "corruption", "sampler"]] = Field(
        default_factory=lambda: list(LADDERS), min_length=1)
    corruptions: list[str] = Field(default_factory=lambda: list(KINDS), min_length=1)
    #: Inference steps of the sampler ladder, best first; None: from the pipeline's default
    #: down to 1 step, spaced geometrically over at most ``sampler_rungs`` rungs.
    sampler_steps: list[int] | None = None
    sampler_rungs: int = Field(default=4, ge=2, le=8)
    #: Ask the MLLM judge on every rung (None: where the spec's ``judge`` is on).
    judge: bool | None = None
    seed: int = 0
    #: Tau at or above which a metric is said to order a ladder (the bench's own bar).
    trusted_tau: float = Field(default=0.9, gt=0, le=1)
    alpha: float = Field(default=0.05, gt=0, lt=1)
    resamples: int = Field(default=2000, ge=100)

    #: Corruption kinds the judge rates too (each judged rung is one MLLM call).
    judge_corruptions: list[str] = Field(default_factory=lambda: ["mask"])

    @field_validator("corruptions", "judge_corruptions")
    @classmethod
    def _known_kinds(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(KINDS))  # judge_corruptions may be empty
        if unknown:
            raise ValueError(f"unknown corruption(s) {unknown}; choose from {', '.join(KINDS)}")
        return list(dict.fromkeys(value))

    @field_validator("sampler_steps")
    @classmethod
    def _steps_descending(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and (len(value) < 2 or any(s < 1 for s in value)
                                  or sorted(set(value), reverse=True) != value):
            raise ValueError("sampler_steps must be at least two distinct step counts >= 1, "
                             f"most first (the default first); got {value}")
        return value


def sampler_steps(default: int, rungs: int) -> list[int]:
    """Step counts from ``default`` down to 1, spaced geometrically, distinct, most first.

    >>> sampler_steps(50, 4), sampler_steps(4, 4), sampler_steps(1, 4)
    ([50, 14, 4, 1], [4, 3, 2, 1], [1])
    """
    if default <= 1:
        return [1]
    values = [round(default ** (1 - k / (rungs - 1))) for k in range(rungs)]
    return sorted({max(1, int(v)) for v in values}, reverse=True)


Ladder = Literal["prompt", "corruption", "sampler"]
