"""Common flags like lm-evaluation-harness's: ``--device``, ``--dtype``, ``--batch-size``,
``--seed`` and ``--model-args k=v,...``, turned into spec overrides.

:func:`spec_from_flags` builds a run spec from all of a command line's parts.

``--device`` / ``--dtype`` / ``--batch-size`` go to every component (T2I models and metrics) whose
constructor takes that parameter; ``--model-args`` fills every T2I model's params (a key its
constructor does not take is an error, named by the preflight).

    >>> from repainter.spec import RunSpec, build_spec, load_spec
    >>> spec = RunSpec(t2i=[{"name": "procedural"}])
    >>> flag_overrides(spec, seed=3, model_args="a=1,b=x")
    ['seed=3', 't2i.0.params.a=1', 't2i.0.params.b=x']
    >>> parse_model_args("steps=4,guidance_scale=0.0,model=stabilityai/sdxl-turbo")
    {'steps': '4', 'guidance_scale': '0.0', 'model': 'stabilityai/sdxl-turbo'}
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from repainter.errors import UserError
from repainter.spec import RunSpec, build_spec, load_spec

#: Flag name -> constructor parameter it fills.
_COMPONENT_FLAGS = {"device": "device", "dtype": "dtype", "batch_size": "batch_size"}


def parse_model_args(text: str) -> dict[str, str]:
    """``"k=v,k2=v2"`` -> ``{"k": "v", "k2": "v2"}`` (values parsed as YAML by the spec)."""
    args: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--model-args {text!r}: {part!r} must look like key=value")
        args[key.strip()] = value.strip()
    return args


def _accepts(registry, name: str, param: str) -> bool:
    try:
        signature = inspect.signature(registry.get(name))
    except Exception:  # unknown names are the preflight's to report
        return False
    return param in signature.parameters or any(
        p.kind is p.VAR_KEYWORD for p in signature.parameters.values())


def flag_overrides(spec: RunSpec, *, device: str | None = None, dtype: str | None = None,
                   batch_size: int | None = None, seed: int | None = None,
                   model_args: str | None = None) -> list[str]:
    """The ``key.path=value`` overrides the common flags stand for on ``spec``."""
    from repainter.registry import METRICS, T2I

    overrides = [] if seed is None else [f"seed={seed}"]
    values: dict[str, Any] = {"device": device, "dtype": dtype, "batch_size": batch_size}
    for flag, value in values.items():
        if value is None:
            continue
        param = _COMPONENT_FLAGS[flag]
        hits = [f"t2i.{i}.params.{param}={value}" for i, c in enumerate(spec.written_t2i())
                if _accepts(T2I, c.name, param)]
        hits += [f"metrics.{i}.params.{param}={value}" for i, c in enumerate(spec.metrics)
                 if _accepts(METRICS, c.name, param)]
        if not hits:
            names = ", ".join(c.name for c in [*spec.t2i, *spec.metrics])
            raise UserError(f"--{flag.replace('_', '-')}: no component of this spec takes "
                            f"{param!r} ({names}); the offline world runs on the CPU as it is")
        overrides += hits
    if model_args:
        for key, value in parse_model_args(model_args).items():
            overrides += [f"t2i.{i}.params.{key}={value}"
                          for i in range(len(spec.written_t2i()))]
    return overrides


def spec_from_flags(path: str | Path | None, sets: list[str] = (),
                    values: dict[str, Any] | None = None, *, device: str | None = None,
                    dtype: str | None = None, batch_size: int | None = None,
                    seed: int | None = None, model_args: str | None = None) -> RunSpec:
    """A run spec from a command line: a spec file (None: the built-in world), ``--set``
    assignments, value flags named by their spec key (``{"loop.rounds": 3}``; None: not given),
    then the common flags (:func:`flag_overrides`, which need the components the spec names).

        >>> spec = spec_from_flags(None, ["loop.variants=2"], {"loop.rounds": 3, "dataset.limit": None},
        ...                        seed=7)
        >>> spec.loop.rounds, spec.loop.variants, spec.seed
        (3, 2, 7)
    """
    overrides = [*sets, *(f"{key}={value}" for key, value in (values or {}).items()
                          if value is not None)]
    spec = load_spec(path, overrides)
    common = flag_overrides(spec, device=device, dtype=dtype, batch_size=batch_size, seed=seed,
                            model_args=model_args)
    # the values the spec was given, so the flags merge in one pass with them
    return build_spec(spec.own_values(), common) if common else spec
