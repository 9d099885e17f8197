"""``did you mean`` hints for the unknown keys of a spec (or of any spec section model)."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel

from repainter.spec.run_spec import RunSpec


def _section_model(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The spec section (a pydantic model) at ``loc`` under ``model``; list indexes and
    pydantic's union tags are stepped over."""
    import typing

    for part in loc:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        if field is None:
            continue  # an index or a union member's tag
        candidates = [field.annotation]
        found = None
        while candidates:
            annotation = candidates.pop()
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                found = annotation
                break
            candidates.extend(typing.get_args(annotation))
        if found is None:
            return None
        model = found
    return model


def unknown_key_hints(exc: Exception, root: type[BaseModel] | None = None) -> list[str]:
    """``did you mean`` lines for the unknown keys of a validation error.

        >>> from pydantic import ValidationError
        >>> try:
        ...     RunSpec.model_validate({"loop": {"roudns": 3}})
        ... except ValidationError as exc:
        ...     unknown_key_hints(exc)
        ["loop.roudns: unknown key; did you mean 'rounds'?"]
    """
    import difflib

    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return []
    hints = []
    for error in errors():
        if error.get("type") != "extra_forbidden":
            continue
        loc = tuple(error["loc"])
        section = _section_model(root or RunSpec, loc[:-1])
        if section is None or not isinstance(loc[-1], str):
            continue
        close = difflib.get_close_matches(loc[-1], list(section.model_fields), n=1, cutoff=0.6)
        # pydantic names union members in loc ("ComponentSpec", "list[ComponentSpec]"): not keys
        where = ".".join(str(p) for p in loc if not _UNION_TAG.match(str(p)))
        if close:
            hints.append(f"{where}: unknown key; did you mean {close[0]!r}?")
    return hints


_UNION_TAG = re.compile(r"^[A-Z]|^list\[|^dict\[")

