"""From input to a validated spec: ``--set`` overrides applied to a spec's values, what an
override reaches into copied from the spec they make, its preset filled in, one validation.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from repainter.spec.files import SpecError, read_spec_file
from repainter.spec.hints import unknown_key_hints
from repainter.spec.run_spec import RunSpec, deep_merge


def apply_override(data: dict[str, Any], assignment: str) -> None:
    """Apply ``"loop.rounds=5"`` or ``"t2i.0.params.steps=4"`` to ``data`` in place.

    Values are parsed as YAML, so ``5`` is an int, ``[a, b]`` a list and ``null`` None.
    """
    key, sep, raw = assignment.partition("=")
    if not sep or not key.strip():
        raise SpecError(f"override {assignment!r} must look like key.path=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise SpecError(f"override {assignment!r}: cannot parse value ({exc})") from exc
    parts = key.strip().split(".")
    node: Any = data
    for i, part in enumerate(parts[:-1]):
        if isinstance(node, list):
            node = node[_list_index(node, part, assignment)]
            continue
        nxt = node.get(part)
        if nxt is None:
            # create a list when the next key is an index, else a mapping
            nxt = [] if parts[i + 1].isdigit() else {}
            node[part] = nxt
        node = nxt
    last = parts[-1]
    if isinstance(node, list):
        node[_list_index(node, last, assignment)] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise SpecError(f"override {assignment!r}: {'.'.join(parts[:-1])} is not a mapping")


def _list_index(node: list, part: str, assignment: str) -> int:
    if not part.isdigit() or int(part) >= len(node):
        raise SpecError(f"override {assignment!r}: {part!r} is not an index of a {len(node)}-list")
    return int(part)


def build_spec(data: dict[str, Any] | None = None, overrides: list[str] = ()) -> RunSpec:
    """Validate ``data`` (a parsed spec file) with ``overrides`` applied, over its preset.

    Overrides apply to the given values, so a spec keeps what it did not give open to its preset
    and to the defaults that follow its models (``--set t2i.0.name=diffusers`` on the bench gets
    the real-model preset, as a file naming diffusers does). An override that reaches into what
    the values leave out (``t2i.0.params.steps=4`` where ``data`` lists no ``t2i``) first copies
    that list or component from the spec ``data`` makes. ``preset=NAME`` among the overrides
    replaces the file's preset: NAME fills in what the file leaves out.

    >>> build_spec({}, ["preset=paper"]).selection
    {'clip_i': 0.5, 'dinov2': 0.5}
    >>> build_spec({}, ["t2i.0.params.steps=4"]).t2i[0].model_dump(mode="json")["params"]
    {'steps': 4}
    """
    data = copy.deepcopy(data or {})
    rest = []
    for assignment in overrides:
        if assignment.partition("=")[0].strip() == "preset":
            apply_override(data, assignment)
        else:
            rest.append(assignment)
    if not rest:
        return _validate(data)
    first = _validate(data)
    full = first.model_dump(mode="json")
    for assignment in rest:
        _materialise(data, full, assignment)
        apply_override(data, assignment)
    auto = first._auto_preset
    if auto is not None and "preset" not in data and ("metrics" in data or "selection" in data):
        data["preset"] = first.preset  # what was copied in came from that preset: keep it
    spec = _validate(data)
    if auto is not None and spec._auto_preset is None and spec.preset == first.preset:
        spec._auto_preset = auto
    return spec


def _materialise(data: dict[str, Any], full: dict[str, Any], assignment: str) -> None:
    """Copy from ``full`` (the validated spec's dump) what an override reaches into that
    ``data`` lacks and that an empty mapping cannot stand for: a list it indexes, a component
    (a mapping with a ``name``, or a component given by its name alone)."""
    parts = assignment.partition("=")[0].strip().split(".")
    node: Any = data
    source: Any = full
    for i, part in enumerate(parts[:-1]):
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                return  # apply_override names the bad index
            index = int(part)
            node = node[index]
            source = source[index] if isinstance(source, list) and index < len(source) else None
            continue
        if not isinstance(node, dict):
            return
        src = source.get(part) if isinstance(source, dict) else None
        component = isinstance(src, dict) and "name" in src
        if node.get(part) is None or (isinstance(node.get(part), str) and component):
            if src is None or not (parts[i + 1].isdigit() or component):
                return  # apply_override makes the mapping
            node[part] = copy.deepcopy(src)
        node, source = node[part], src


def override_spec(spec: RunSpec, overrides: list[str]) -> RunSpec:
    """``spec`` with ``overrides`` applied (the Python API's ``run(spec, overrides=...)``).

    A ``preset=`` override starts again from the values ``spec`` was built from, so the new
    preset fills in what they leave out; otherwise the overrides apply to ``spec`` as it is now.

    >>> override_spec(RunSpec(), ["preset=gill"]).selection
    {'clip_i': 1.0}
    """
    switches_preset = any(a.partition("=")[0].strip() == "preset" for a in overrides)
    base = spec.own_values() if switches_preset else spec.model_dump(mode="json")
    return build_spec(base, overrides)


def _validate(data: dict[str, Any]) -> RunSpec:
    try:
        return RunSpec.model_validate(data)
    except ValueError as exc:
        hints = unknown_key_hints(exc)
        raise SpecError(f"invalid run spec:\n{exc}" + "".join(f"\n{h}" for h in hints)) from exc


def load_spec(path: str | Path | None = None, overrides: list[str] = ()) -> RunSpec:
    """Load a spec file (YAML or TOML; none = the built-in world) and apply overrides. A run
    folder's own ``spec.yaml`` (next to its ``run.json``) is read as :func:`load_run_spec` reads
    it, so ``--spec RUN/spec.yaml`` means what that run ran."""
    data = read_spec_file(path) if path is not None else {}
    if path is not None and Path(path).name == "spec.yaml" and (Path(path).parent / "run.json").exists():
        data = _with_legacy_strategy(data)
    return build_spec(data, overrides)


def _with_legacy_strategy(data: dict[str, Any]) -> dict[str, Any]:
    from repainter.spec.sections import LEGACY_DEFAULT_STRATEGY

    loop = data.get("loop")
    if loop is None or (isinstance(loop, dict) and "strategy" not in loop):
        data = {**data, "loop": {"strategy": LEGACY_DEFAULT_STRATEGY, **(loop or {})}}
    return data


def load_run_spec(path: str | Path) -> RunSpec:
    """The spec a run folder's ``spec.yaml`` records. A stored spec leaves ``loop.strategy``
    out when it is ``refine`` (the default before 0.3.0, so older specs keep their text and
    fingerprint), so a stored spec without it ran ``refine``, not today's default.

        >>> import tempfile, pathlib
        >>> old = pathlib.Path(tempfile.mkdtemp()) / "spec.yaml"
        >>> _ = old.write_text("loop: {rounds: 2}")
        >>> load_run_spec(old).loop.strategy, load_spec(old).loop.strategy
        ('refine', 'adaptive')
    """
    return build_spec(_with_legacy_strategy(read_spec_file(path)))


def strategy_change_hint(previous: RunSpec, spec: RunSpec) -> str:
    """Why a run folder's spec and a new one differ when it is the loop strategy, whose default
    changed in 0.3.0 (empty when it is not)."""
    if previous.loop.strategy == spec.loop.strategy:
        return ""
    return (f": that run's loop.strategy is {previous.loop.strategy}, this one's "
            f"{spec.loop.strategy} (the default became adaptive in 0.3.0; --set "
            f"loop.strategy={previous.loop.strategy} resumes it)")


def resolve_spec(spec: RunSpec | str | Path | None = None, overrides: list[str] = (),
                 settings: dict[str, Any] | None = None) -> RunSpec:
    """A spec from a RunSpec, a file or None (the built-in world), with Python-value ``settings``
    merged in (``{"loop": {"rounds": 5}}``) and then ``overrides`` strings applied.

        >>> resolve_spec(None, ["loop.variants=2"], {"loop": {"rounds": 5}}).loop.rounds
        5
    """
    if isinstance(spec, RunSpec):
        if not settings:
            return override_spec(spec, overrides) if overrides else spec
        # a new preset starts again from the values the spec was built from (as override_spec)
        data = spec.own_values() if "preset" in settings else spec.model_dump(mode="json")
    else:
        data = read_spec_file(spec) if spec is not None else {}
    if settings:
        data = deep_merge(data, settings)
    return build_spec(data, overrides)
