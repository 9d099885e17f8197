"""Check a spec before a run starts: every problem named at once, nothing loaded, nothing written.

``repainter run`` (and :func:`repainter.run`) calls :func:`preflight` before it opens the run
folder, so a typo never leaves a half-made folder behind. It checks what ``repainter doctor``
knows and more:

* every component and dataset name is registered (with a "did you mean"),
* every component's params fit its constructor (no model is built; read from its source when
  its extra is not installed),
* every Python package a component imports on use is installed (``packages`` on its class),
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

import ast
import difflib
import importlib.util
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


def _ast_signature(args: ast.arguments, *, bound: bool) -> inspect.Signature:
    """A signature with the names, kinds and optionality of ``args`` (default values are None:
    only binding is checked). ``bound`` drops the first parameter (``self``)."""
    param = inspect.Parameter
    positional = [*args.posonlyargs, *args.args]
    optional = [False] * (len(positional) - len(args.defaults)) + [True] * len(args.defaults)
    params = [param(arg.arg, param.POSITIONAL_ONLY if i < len(args.posonlyargs)
                    else param.POSITIONAL_OR_KEYWORD, default=None if has else param.empty)
              for i, (arg, has) in enumerate(zip(positional, optional))][int(bound):]
    if args.vararg:
        params.append(param(args.vararg.arg, param.VAR_POSITIONAL))
    params += [param(arg.arg, param.KEYWORD_ONLY, default=param.empty if dflt is None else None)
               for arg, dflt in zip(args.kwonlyargs, args.kw_defaults)]
    if args.kwarg:
        params.append(param(args.kwarg.arg, param.VAR_KEYWORD))
    return inspect.Signature(params)


def source_signature(target: str) -> inspect.Signature | None:
    """The constructor signature of ``"module:attr"`` read from its source, nothing imported (a
    component whose extra is not installed); None when the source does not show it."""
    module, _, attr = target.partition(":")
    try:
        origin = importlib.util.find_spec(module).origin
        tree = ast.parse(Path(origin).read_text(encoding="utf-8"))
    except Exception:  # noqa: BLE001 - a plugin we cannot read: the build decides
        return None
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == attr:
            return _ast_signature(node.args, bound=False)
        if isinstance(node, ast.ClassDef) and node.name == attr:
            init = [f for f in node.body if isinstance(f, ast.FunctionDef) and f.name == "__init__"]
            return _ast_signature(init[0].args, bound=True) if init else None  # inherited: unknown
    return None


def _params_problem(registry, component: ComponentSpec) -> str | None:
    """Whether ``component.params`` fit the registered constructor's signature."""
    try:
        signature = inspect.signature(registry.get(component.name))
    except ImportError:  # its extra is not installed (doctor says so): check against the source
        target = registry.target(component.name)
        signature = source_signature(target) if target else None
        if signature is None:
            return None
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
    from repainter.spec_checks import drawn_scene_problems

    problems += drawn_scene_problems(spec)
    return problems + dataset_problems(spec) + tracker_problems(spec)


def tracker_problems(spec: RunSpec) -> list[str]:
    """Registered tracker names, fitting params and an installed package for each."""
    if not spec.runtime.trackers:
        return []
    from repainter.trackers import TRACKERS

    problems = component_problems(TRACKERS, list(spec.runtime.trackers))
    for component in spec.runtime.trackers:
        if component.name in TRACKERS:
            tracker = TRACKERS.get(component.name)
            package = getattr(tracker, "package", "")
            if package and not _installed(package):
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


def _installed(package: str) -> bool:
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):  # a parent package missing, or an import left unfinished
        return False


def package_rows(spec: RunSpec) -> list[dict[str, Any]]:
    """One row (doctor's keys) per Python package a component imports on use.

    A component class that imports its package inside its methods loads without it, so it
    names it (``packages``, and the ``extra`` that installs it); without this row a base install
    would pass the checks and the run would die at the first call."""
    from repainter.registry import METRICS, MLLM, T2I

    rows = []
    for role, registry, components in (("t2i", T2I, spec.t2i), ("mllm", MLLM, spec.mllms),
                                       ("metrics", METRICS, spec.metrics)):
        for component in components:
            try:
                factory = registry.get(component.name)
            except (ImportError, KeyError):  # its own package row / an unknown name: elsewhere
                continue
            extra = getattr(factory, "extra", "") or "models"
            for package in getattr(factory, "packages", ()):
                present = _installed(package)
                rows.append({"role": role, "component": component.name,
                             "label": component.display_name, "kind": "package",
                             "model": package, "revision": None, "present": present,
                             "how_to_fix": "" if present else f"install the {extra} extra: pip "
                             f"install -e '.[{extra}]' (or pip install 'repainter[{extra}]')"})
    return rows


def needs_rows(spec: RunSpec) -> list[dict[str, Any]]:
    """What ``repainter doctor`` lists: the weights and keys of :func:`repainter.prefetch.doctor_rows`
    and the packages of :func:`package_rows`, each beside its component's other rows."""
    from repainter.prefetch import doctor_rows

    rows = doctor_rows(spec)
    for row in package_rows(spec):
        same = [i for i, r in enumerate(rows) if (r["role"], r["label"]) == (row["role"], row["label"])]
        rows.insert(same[0] if same else len(rows), row)
    # a component that needs a package no longer "needs nothing"
    packaged = {(r["role"], r["label"]) for r in rows if r["kind"] == "package"}
    return [r for r in rows if not (r["kind"] == "none" and (r["role"], r["label"]) in packaged)]


def weight_problems(spec: RunSpec) -> list[str]:
    """Missing packages and keys always; missing weights when offline or when the hub cannot be
    reached."""
    from repainter.weights import is_offline

    missing = [row for row in needs_rows(spec) if not row["present"]]
    keys = [row for row in missing if row["kind"] == "api_key"]
    packages = [row for row in missing if row["kind"] == "package"]
    weights = [row for row in missing if row["kind"] not in ("api_key", "package")]
    problems = [f"{row['role']} {row['label']!r} needs the Python package {row['model']!r}, "
                f"which is not installed: {row['how_to_fix']}" for row in packages]
    problems += [f"API key ${row['model']} for {row['label']} is not set: {row['how_to_fix']}"
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
    return {"run_dir": str(spec.run_dir), "fingerprint": spec.fingerprint(),
            "needs": needs_rows(spec), "problems": spec_problems(spec)}
