"""Strict checks of parsed JSON (and YAML) values, shared by events and configs.

A journal line or a config saying `true` where a number belongs, or `"3"` where an integer
belongs, is a mistake: nothing here converts, it only accepts or refuses, with words people
read. Configs (through cattrs, in `schema`) and events (by hand, in `codec`) use the same
table, so both accept and refuse exactly the same values with the same messages.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any


class ValueProblem(ValueError):
    """A check's own message, shown to people as written (`expected a list of numbers`)."""


def describe(value: Any) -> str:
    """A short, safe description of a bad value for an error message."""
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
             list: "a list", dict: "a mapping", type(None): "nothing (null)"}
    return names.get(type(value), type(value).__name__)


def _expect(kind: type, name: str) -> Callable[[Any, Any], Any]:
    def check(value: Any, _: Any = None) -> Any:
        # bool is an int subclass; a journal or config saying `true` for a number is a mistake.
        if type(value) is not kind:
            raise ValueProblem(f"expected {name}, got {describe(value)}")
        return value

    return check


def number(value: Any, _: Any = None) -> float:
    """A finite int or float, as a float."""
    if type(value) not in (int, float):
        raise ValueProblem(f"expected a number, got {describe(value)}")
    if not math.isfinite(value):
        raise ValueProblem(f"expected a finite number, got {value}")
    return float(value)


def strings(value: Any, _: Any = None) -> tuple[str, ...]:
    """A list of strings, as a tuple."""
    if type(value) is not list or any(type(item) is not str for item in value):
        raise ValueProblem(f"expected a list of strings, got {describe(value)}")
    return tuple(value)


def string_map(value: Any, _: Any = None) -> dict[str, str]:
    """A mapping of strings to strings (JSON keys are strings already)."""
    if type(value) is not dict or any(type(v) is not str for v in value.values()):
        raise ValueProblem(f"expected a mapping of strings, got {describe(value)}")
    return dict(value)


# The checks by type, as the type is annotated (the text of the annotation: the models use
# `from __future__ import annotations`, and reading text is cheaper than evaluating it).
CHECKS: dict[str, Callable[[Any, Any], Any]] = {
    "str": _expect(str, "a string"), "int": _expect(int, "an integer"),
    "bool": _expect(bool, "true or false"), "float": number,
    "tuple[str, ...]": strings, "dict[str, str]": string_map,
}
# The plain types whose check is `type(value) is kind`: fast paths may inline exactly these.
PLAIN: dict[str, type] = {"str": str, "int": int, "bool": bool}


# JSON (and YAML) can spell a lone UTF-16 surrogate as an escape; no UTF-8 file or terminal
# can hold one, so printing or hashing the string would fail far from where it was read.
_SURROGATE_ESCAPE = re.compile(rb"\\(u|U0000)[dD][89a-fA-F]")
LONE_SURROGATE = "a string holds a lone UTF-16 surrogate escape (\\udXXX)"


def lone_surrogate(text: bytes, value: Any) -> bool:
    """Whether `value`, parsed from `text`, holds a string no UTF-8 text can (checked only
    when `text` has such an escape, so reading stays fast)."""
    if not _SURROGATE_ESCAPE.search(text):
        return False
    try:
        json.dumps(value, ensure_ascii=False, default=str, skipkeys=True).encode()
    except UnicodeEncodeError:
        return True
    return False
