"""cattrs' structuring errors as the lines people read: `<path>: <what is wrong>`.

cattrs collects every problem of a config with where it is (`transform_error`); we word them
as journalq does elsewhere (`$.jobs[3].timeout: expected a number, got a string`) and show
the first, with a count of the others, as one line.
"""

from __future__ import annotations

import cattrs
from cattrs.errors import ForbiddenExtraKeysError

from journalq.strict import ValueProblem


def every(exc: BaseException, path: str = "$") -> list[str]:
    """Every structuring problem in `exc` as `<path>: <what is wrong>`."""
    if isinstance(exc, (cattrs.ClassValidationError, cattrs.IterableValidationError)):
        lines = cattrs.transform_error(exc, path=path, format_exception=_format)
        return [_swap(line) for line in lines]
    return [f"{path}: {_format(exc, None)}"]


def first(exc: BaseException, path: str = "$") -> str:
    """The first problem, with a count of the others, as one line."""
    found = every(exc, path)
    more = f" (and {len(found) - 1} more problems)" if len(found) > 1 else ""
    return found[0] + more


def _format(exc: BaseException, typ: type | None) -> str:
    if isinstance(exc, ValueProblem):
        return str(exc)
    if isinstance(exc, KeyError):
        return "required field missing"
    if isinstance(exc, ForbiddenExtraKeysError):
        # YAML keys need not be strings (`1: a`); sorting ints with strings would crash.
        # A key like "a\nb" or "\x1b[2J" is quoted, so the message stays one harmless line.
        names = (str(k) if str(k).isprintable() else repr(k) for k in exc.extra_fields)
        return f"unknown field(s) {', '.join(sorted(names))}"
    return cattrs.v.format_exception(exc, typ)


def _swap(line: str) -> str:
    """cattrs says `<problem> @ <path>`; people read `<path>: <problem>` more easily."""
    problem, sep, path = line.rpartition(" @ ")
    return f"{path}: {problem}" if sep else line
