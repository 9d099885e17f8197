"""Reading a spec file: YAML or TOML, bounded in size and in what its aliases expand to; a YAML
mapping that repeats a key is refused (plain YAML keeps the last value silently)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import yaml


class SpecError(ValueError):
    """A spec file or override could not be read or validated."""


#: A spec file larger than this is not a spec (checked before reading it).
MAX_SPEC_BYTES = 1_000_000
#: YAML aliases a spec may use, and nodes it may expand to ("billion laughs" defence).
MAX_YAML_ALIASES = 100
MAX_YAML_NODES = 100_000


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that refuses a key written twice in one mapping. Keys a merge (``<<:``)
    brings in may still be overridden: that is what a merge is for."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                if key in first_line:
                    raise SpecError(f"duplicate key {key!r} on line {line} (first on line "
                                    f"{first_line[key]}); keep one of them")
                first_line[key] = line
            except TypeError:  # an unhashable key: construction refuses it on its own
                continue
        return super().construct_mapping(node, deep=deep)


def safe_load_bounded(text: str) -> Any:
    """``yaml.safe_load`` that refuses documents whose aliases expand beyond a small bound.

    Aliases are resolved by reference while parsing, but everything after (validation, dumps,
    deep copies) walks the expanded tree: 400 bytes of nested aliases make billions of nodes.

    >>> safe_load_bounded("a: &x [1, 2]\\nb: *x")
    {'a': [1, 2], 'b': [1, 2]}
    """
    loader = _UniqueKeyLoader(text)
    try:
        if text.count("*") > MAX_YAML_ALIASES and _alias_count(text) > MAX_YAML_ALIASES:
            raise SpecError(f"the YAML uses more than {MAX_YAML_ALIASES} aliases")
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, {}) > MAX_YAML_NODES:
            raise SpecError(f"the YAML expands to more than {MAX_YAML_NODES} nodes through its "
                            "aliases")
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _alias_count(text: str) -> int:
    return sum(isinstance(event, yaml.AliasEvent) for event in yaml.parse(text, yaml.SafeLoader))


def _expanded_size(node: yaml.Node, sizes: dict[int, int]) -> int:
    """Nodes of ``node`` with every alias expanded; memoised, so shared nodes cost one visit."""
    key = id(node)
    if key not in sizes:
        sizes[key] = 0  # a recursive alias counts once (its construction fails on its own)
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        else:
            children = []
        sizes[key] = min(1 + sum(_expanded_size(c, sizes) for c in children), 10 * MAX_YAML_NODES)
    return sizes[key]


def read_spec_file(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise SpecError(f"cannot read spec {path}: {exc}") from exc
    if size > MAX_SPEC_BYTES:
        raise SpecError(f"cannot read spec {path}: {size} bytes is over the "
                        f"{MAX_SPEC_BYTES}-byte limit for a spec file")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"cannot read spec {path}: {exc}") from exc
    try:
        if path.suffix.lower() == ".toml":
            data = tomllib.loads(text)
        else:
            data = safe_load_bounded(text)
    except (yaml.YAMLError, tomllib.TOMLDecodeError, SpecError) as exc:
        raise SpecError(f"cannot parse spec {path}: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SpecError(f"spec {path} must hold a mapping at the top level")
    return data

