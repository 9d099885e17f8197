"""Check a spec before a run starts: every problem named at once, nothing loaded, nothing written.

``repainter run`` (and :func:`repainter.run`) calls :func:`preflight` before it opens the run
folder, so a typo never leaves a half-made folder behind. It checks what ``repainter doctor``
knows and more:

* every component and dataset name is registered (with a "did you mean"),
* every component's params fit its constructor (no model is built),
* the dataset's folder / manifest exists,
* every API key the spec needs is set,
* every weight is present locally, or the hub is reachable to download it (a 3-second probe,
  never a minute of retries against a hub that is not there),
* the output folder can be created and written, and its disk is not full.

    >>> from repainter.spec import RunSpec
    >>> spec_problems(RunSpec())
    []
"""

from __future__ import annotations

import difflib
import inspect
import os
import shutil
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from repainter.errors import UserError
from repainter.spec import ComponentSpec, RunSpec

#: A run needs room for its images and records; below this the disk counts as full.
MIN_FREE_BYTES = 50 * 1024 * 1024
HUB_PROBE_SECONDS = 3.0


class PreflightError(UserError):
    """The spec cannot run; ``problems`` lists every reason (the message joins them)."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        count = f"{len(problems)} problems" if len(problems) > 1 else "1 problem"
        super().__init__(f"the run cannot start ({count}): " + " | ".join(problems))


def _unknown(registry, name: str) -> str:
    close = difflib.get_close_matches(name, registry.names(), n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    kind = registry.kind.removesuffix("s")  # "datasets" -> "dataset", "metrics" -> "metric"
    return (f"unknown {kind} {name!r}; {hint}registered: {', '.join(registry.names())} "
            "(see `repainter ls`)")


def _params_problem(registry, component: ComponentSpec) -> str | None:
    """Whether ``component.params`` fit the registered constructor's signature."""
    try:
        signature = inspect.signature(registry.get(component.name))
    except (TypeError, ValueError):  # builtins without a signature: let the build decide
        return None
    try:
        signature.bind(**component.params)
    except TypeError as exc:
        accepted = [p.name for p in signature.parameters.values()
                    if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        return (f"{registry.kind} {component.name!r}: bad params ({exc}); it accepts: "
                f"{', '.join(accepted) or 'none'}")
    return None


def component_problems(registry, components: list[ComponentSpec]) -> list[str]:
    problems = []
    for component in components:
        if component.name not in registry:
            problems.append(_unknown(registry, component.name))
            continue
        problem = _params_problem(registry, component)
        if problem:
            problems.append(problem)
    return problems


def dataset_problems(spec: RunSpec) -> list[str]:
    """Build the dataset (cheap: constructors only check paths) and report why it cannot be."""
    from repainter.datasets import DatasetError
    from repainter.registry import DATASETS

    if spec.dataset.name not in DATASETS:
        return [_unknown(DATASETS, spec.dataset.name)]
    problem = _params_problem(DATASETS, ComponentSpec(name=spec.dataset.name,
                                                      params=spec.dataset.params))
    if problem:
        return [problem.replace("datasets ", "dataset ", 1)]
    try:
        DATASETS.create(spec.dataset.name, **spec.dataset.params)
    except (DatasetError, ImportError) as exc:
        return [f"dataset {spec.dataset.name!r}: {exc}"]
    return []


def spec_problems(spec: RunSpec) -> list[str]:
    """Names, params and dataset paths: what ``repainter validate`` checks (no weights, no I/O)."""
    from repainter.registry import METRICS, MLLM, T2I

    problems = component_problems(T2I, list(spec.t2i))
    problems += component_problems(MLLM, list(spec.mllms))
    problems += component_problems(METRICS, list(spec.metrics))
    return problems + dataset_problems(spec) + tracker_problems(spec)


def tracker_problems(spec: RunSpec) -> list[str]:
    """Registered tracker names, fitting params and an installed package for each."""
    import importlib.util

    if not spec.runtime.trackers:
        return []
    from repainter.trackers import TRACKERS

    problems = component_problems(TRACKERS, list(spec.runtime.trackers))
    for component in spec.runtime.trackers:
        if component.name in TRACKERS:
            tracker = TRACKERS.get(component.name)
            package = getattr(tracker, "package", "")
            if package and importlib.util.find_spec(package) is None:
                problems.append(f"tracker {component.name!r} needs its package: pip install "
                                f"'repainter[{tracker.extra}]'")
    return problems


def hub_reachable(timeout: float = HUB_PROBE_SECONDS) -> bool:
    """One TCP connect to the Hugging Face endpoint (``HF_ENDPOINT``), never a retry loop."""
    endpoint = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        with socket.create_connection((endpoint.hostname or "huggingface.co", port), timeout):
            return True
    except OSError:
        return False


def weight_problems(spec: RunSpec) -> list[str]:
    """Missing keys always; missing weights when offline or when the hub cannot be reached."""
    from repainter.weights import doctor_rows, is_offline

    missing = [row for row in doctor_rows(spec) if not row["present"]]
    keys = [row for row in missing if row["kind"] == "api_key"]
    weights = [row for row in missing if row["kind"] != "api_key"]
    problems = [f"API key ${row['model']} for {row['label']} is not set: {row['how_to_fix']}"
                for row in keys]
    if weights:
        why = ("offline mode is on (HF_HUB_OFFLINE=1)" if is_offline()
               else None if hub_reachable() else "the Hugging Face hub is not reachable")
        if why:
            problems += [f"{row['kind']} weights {row['model']} for {row['label']} are not "
                         f"here and {why}: {row['how_to_fix']}" for row in weights]
            if not is_offline():  # the loaders would try the hub again: make them not
                os.environ["HF_HUB_OFFLINE"] = "1"
    return problems


def output_problems(run_dir: Path) -> list[str]:
    """The run folder (or its nearest existing parent) must be a writable folder with room."""
    target = Path(run_dir).expanduser().absolute()
    existing = target
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return [f"output folder {run_dir}: {existing} is a file, not a folder; choose another "
                "with --output-dir"]
    if not os.access(existing, os.W_OK | os.X_OK):
        return [f"output folder {run_dir}: {existing} is not writable; choose another with "
                "--output-dir or fix its permissions"]
    free = shutil.disk_usage(existing).free
    if free < MIN_FREE_BYTES:
        return [f"output folder {run_dir}: only {free // 2**20} MiB free on its disk; free some "
                "space or choose another with --output-dir"]
    return []


def preflight(spec: RunSpec) -> None:
    """Raise :class:`PreflightError` naming every problem that would stop ``spec``'s run."""
    problems: list[str] = spec_problems(spec)
    problems += weight_problems(spec)
    problems += output_problems(spec.run_dir)
    if problems:
        raise PreflightError(problems)


def describe(spec: RunSpec) -> dict[str, Any]:
    """What a run of ``spec`` would load, for ``repainter run --dry-run`` (nothing is loaded)."""
    from repainter.weights import doctor_rows

    return {"run_dir": str(spec.run_dir), "fingerprint": spec.fingerprint(),
            "needs": doctor_rows(spec), "problems": spec_problems(spec)}
