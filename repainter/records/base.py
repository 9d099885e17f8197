"""Schema versions, migrations and the one missing-value policy of every record repainter writes.

Missing values (decided here, nowhere else):

* A value that was not measured (a metric that failed on a case, a statistic over no cases, a
  judge that did not run) is ``None`` in Python and ``null`` in JSON. It is never NaN or inf.
* Writers refuse non-finite floats: a NaN reaching a record is a bug upstream, so it fails loudly
  (``json.dumps(..., allow_nan=False)``). Statistics pass their results through
  :func:`finite_or_none` first, because "no value" is a legitimate outcome there.
* Readers treat ``None`` as "not measured": it is left out of means and counts, and formatters
  show it as a dash.

Versions: each record class names its ``kind`` and ``current_version``. A file without a
``schema_version`` was written before versions existed and counts as version 0. Reading a file
upgrades it step by step through the functions registered with :func:`migration`; a file from a
newer repainter, or one with no path to the current version, raises :class:`RecordVersionError`
naming the file kind and both versions.

>>> from typing import ClassVar
>>> class Note(VersionedRecord):
...     kind: ClassVar[str] = "doctest-note"
...     current_version: ClassVar[int] = 1
...     text: str
>>> @migration("doctest-note", 0)
... def _note_v0(data):
...     return {"text": data["body"]}
>>> load_record(Note, {"body": "hello"}).text
'hello'
>>> dump_record(Note(text="hi"))
{'schema_version': 1, 'text': 'hi'}
>>> load_record(Note, {"schema_version": 7, "text": "x"})
Traceback (most recent call last):
...
repainter.records.base.RecordVersionError: doctest-note has schema_version 7 but this repainter reads up to 1: upgrade repainter to read it
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, model_validator

Migration = Callable[[dict[str, Any]], dict[str, Any]]

_MIGRATIONS: dict[tuple[str, int], Migration] = {}

R = TypeVar("R", bound="VersionedRecord")


class RecordVersionError(ValueError):
    """A record file this repainter cannot read: too new, or no migration path."""


class VersionedRecord(BaseModel):
    """Base of every record written to a run folder: carries ``schema_version`` first."""

    model_config = ConfigDict(extra="forbid")

    kind: ClassVar[str] = "record"
    current_version: ClassVar[int] = 1

    schema_version: int = 0

    @model_validator(mode="before")
    @classmethod
    def _stamp_version(cls, data: Any) -> Any:
        # a record built in code is always at the current version; files go through upgrade()
        if isinstance(data, dict) and "schema_version" not in data:
            return {"schema_version": cls.current_version, **data}
        return data


def migration(kind: str, from_version: int) -> Callable[[Migration], Migration]:
    """Register ``fn`` as the step that turns a ``kind`` record at ``from_version`` into the next.

    The step returns the data without ``schema_version`` or with ``from_version + 1``.
    """

    def register(fn: Migration) -> Migration:
        key = (kind, from_version)
        if key in _MIGRATIONS:
            raise ValueError(f"two migrations registered for {kind} schema {from_version}")
        _MIGRATIONS[key] = fn
        return fn

    return register


def upgrade(kind: str, data: dict[str, Any], current_version: int) -> dict[str, Any]:
    """``data`` (a ``kind`` record as read from a file) brought to ``current_version``."""
    if not isinstance(data, dict):
        raise RecordVersionError(f"{kind} is not a JSON object (got {type(data).__name__})")
    version = data.get("schema_version", 0)
    if not isinstance(version, int) or version < 0:
        raise RecordVersionError(f"{kind} has an invalid schema_version {version!r}")
    if version > current_version:
        raise RecordVersionError(
            f"{kind} has schema_version {version} but this repainter reads up to "
            f"{current_version}: upgrade repainter to read it")
    while version < current_version:
        step = _MIGRATIONS.get((kind, version))
        if step is None:
            raise RecordVersionError(
                f"{kind} has schema_version {version} and no migration to {version + 1} exists")
        data = {k: v for k, v in step(dict(data)).items() if k != "schema_version"}
        version += 1
        data = {"schema_version": version, **data}
    return data


def load_record(model: type[R], data: dict[str, Any]) -> R:
    """Validate ``data`` as a ``model`` record, upgrading an older ``schema_version`` first."""
    return model.model_validate(upgrade(model.kind, data, model.current_version))


def dump_record(record: VersionedRecord) -> dict[str, Any]:
    """The JSON-ready dict of ``record`` (field order as declared, ``schema_version`` first)."""
    return record.model_dump(mode="json")


def finite_or_none(value: float | None) -> float | None:
    """``value`` if it is a finite number, else ``None``: the missing-value policy for statistics.

    >>> finite_or_none(0.5), finite_or_none(float("nan")), finite_or_none(None)
    (0.5, None, None)
    """
    if value is None or isinstance(value, bool):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


__all__ = ["RecordVersionError", "VersionedRecord", "dump_record", "finite_or_none", "load_record",
           "migration", "upgrade"]
