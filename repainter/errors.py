"""User errors: mistakes a person can fix, reported as one ``error:`` line (exit code 2).

Every command of the CLI runs inside :func:`user_message`'s net: an exception it knows (a bad spec,
an unknown component, a missing folder, missing weights or keys, an unwritable or full output
folder ...) becomes one line that says what is wrong and how to fix it; anything else is a bug and
keeps its traceback. ``repainter --debug ...`` shows the traceback of user errors too.

    >>> from repainter.spec import SpecError
    >>> user_message(SpecError("cannot parse spec a.yaml:\\n  line 3"))
    'cannot parse spec a.yaml: line 3'
    >>> user_message(ZeroDivisionError("a bug")) is None
    True
"""

from __future__ import annotations

import errno
import re

#: Exit code of a user error (click uses 2 for usage errors too).
USER_ERROR_EXIT = 2

#: OSError numbers that mean "the output folder cannot take these files".
_FOLDER_ERRNOS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
}


class UserError(Exception):
    """A mistake the user can fix; ``str()`` is the one line the CLI prints after ``error:``."""


def one_line(text: str) -> str:
    """Collapse a multi-line message into one line (indentation and blank lines dropped).

        >>> one_line("invalid run spec:\\n1 validation error\\n  t2i\\n    bad")
        'invalid run spec: 1 validation error; t2i; bad'
    """
    # pydantic's "[type=..., input_value=...]" tails repeat the whole input: drop them
    lines = [re.sub(r"\s*\[type=.*\]$", "", line.strip()) for line in str(text).splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        return ""
    head, rest = lines[0], lines[1:]
    # pydantic's links to its docs are noise in a one-line message
    rest = [line for line in rest if not line.startswith("For further information visit")]
    if not rest:
        return head
    sep = " " if head.endswith(":") else "; "
    return head + sep + "; ".join(rest)


def _known_types() -> tuple[type[BaseException], ...]:
    """Exception types that always mean a user mistake (imported lazily: some are heavy)."""
    from repainter.components import ComponentError
    from repainter.datasets import DatasetError
    from repainter.registry import UnknownComponentError
    from repainter.spec import SpecError
    from repainter.store import RunFolderError
    from repainter.weights import WeightsNotFoundError

    known: list[type[BaseException]] = [
        UserError, SpecError, ComponentError, DatasetError, UnknownComponentError,
        RunFolderError, WeightsNotFoundError,
    ]
    for module, name in (("repainter.rescore", "RescoreError"), ("repainter.export", "ExportError"),
                         ("repainter.dar.dialogues", "DialogueError"),
                         ("repainter.fetch", "DownloadError")):
        try:
            known.append(getattr(__import__(module, fromlist=[name]), name))
        except (ImportError, AttributeError):  # pragma: no cover - module renamed or removed
            continue
    return tuple(known)


def _folder_message(exc: OSError) -> str | None:
    reason = _FOLDER_ERRNOS.get(exc.errno or -1)
    if reason is None:
        return None
    where = exc.filename or "a file"
    return (f"{where}: {reason} (choose another folder with --output-dir, free some space, or "
            "fix the permissions)")


def user_message(exc: BaseException) -> str | None:
    """The one-line message for a user mistake, or None when ``exc`` is a bug (keep the traceback).

    Looks through ``raise ... from`` chains, so a wrapped user error is still one.
    """
    known = _known_types()
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, known):
            return one_line(str(current))
        if isinstance(current, OSError):
            text = _folder_message(current)
            if text:
                return text
        current = current.__cause__
    return None
