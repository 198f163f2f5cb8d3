"""A config file as written: attrs models, and the one cattrs converter that builds them.

The models say what a file may hold, and nothing more (`forbid_extra_keys`: a typo like
`max_attempt` is an error, not a silent default). The converter's hooks refuse rather than
convert, and say what was expected: `$.jobs[3].alphas: expected a list of numbers, like
[0.5, 1, 2]`. Checks that span fields, and matrix expansion, come after (`expand`).
"""

from __future__ import annotations

import math
import re
import typing
from collections.abc import Callable
from typing import Any, Literal, TypeVar

import attrs
import cattrs
import cattrs.cols

from journalq import problems
from journalq.defaults import (
    DEFAULT_GRACE_SECONDS,
    DEFAULT_HEARTBEAT_SECONDS,
    DEFAULT_STALE_SECONDS,
    DEFAULT_SYNC_SECONDS,
    DEFAULT_WORKER,
)
from journalq.strict import CHECKS, ValueProblem, describe, strings

SUMMARY_FILE = "summary.tsv"
T = TypeVar("T")
# Where a run's slots get their GPUs: `auto` (found at run time), or device ids.
Gpus = Literal["auto"] | tuple[str, ...]


@attrs.frozen
class Layers:
    """Which layers to steer: a range `10-14` or a list `8,12,16`, as run_sweep.py takes it."""

    text: str


@attrs.frozen(kw_only=True)
class SweepArgs:
    """The flags of `scripts/run_sweep.py` that a job sets; out_dir and summary are derived."""

    model: str
    layers: Layers
    alphas: tuple[float, ...]
    summary_name: str = SUMMARY_FILE
    extra: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class JobOptions:
    """Per-job settings that fall back to `defaults` when left out."""

    shell: bool = False
    max_attempts: int | None = None
    timeout: float | None = None
    env: dict[str, str] | None = None
    cwd: str | None = None


@attrs.frozen(kw_only=True)
class JobConfig(JobOptions):
    """One job: run_sweep.py `args`, or a raw `command`."""

    id: str
    args: SweepArgs | None = None
    command: tuple[str, ...] | str | None = None


@attrs.frozen(kw_only=True)
class Matrix(JobOptions):
    """A grid of jobs: every combination of `axes`, in order, the last axis varying fastest."""

    id: str
    axes: dict[str, list[Any]]
    args: dict[str, Any] = attrs.Factory(dict)
    command: tuple[str, ...] | str | None = None


@attrs.frozen(kw_only=True)
class Defaults:
    """What a job gets when it does not say: no retry, no timeout, run in the current folder."""

    max_attempts: int = 1
    timeout: float | None = None
    env: dict[str, str] = attrs.Factory(dict)
    cwd: str = "."


@attrs.frozen(kw_only=True)
class QueueConfig:
    """A config file as written, before jobs are expanded and checked."""

    queue: str
    worker: tuple[str, ...] | str = DEFAULT_WORKER
    out_root: str | None = None
    stale_seconds: float = DEFAULT_STALE_SECONDS
    heartbeat_seconds: float = DEFAULT_HEARTBEAT_SECONDS
    sync_dir: str | None = None
    sync_seconds: float = DEFAULT_SYNC_SECONDS
    grace_seconds: float = DEFAULT_GRACE_SECONDS
    slots: int | None = None
    gpus: Gpus | None = None
    jobs_per_gpu: int = 1
    halt_after_failures: int | None = None
    defaults: Defaults = attrs.Factory(Defaults)
    jobs: list[JobConfig] = attrs.Factory(list)
    matrix: Matrix | None = None


# ---- structuring hooks: the messages people see for a wrong value ----------------------------

def _layers(value: Any, _: Any) -> Layers:
    problem = ValueProblem(
        "expected a range like '10-14' or a list of layers like [8, 12, 16]"
    )
    if type(value) is int and value >= 0:
        return Layers(str(value))
    if type(value) is list and value and all(type(v) is int and v >= 0 for v in value):
        return Layers(",".join(str(v) for v in value))
    if type(value) is str:
        text = value.replace(" ", "")
        # ASCII digits only: `\d` also matches Arabic-Indic or full-width digits, which
        # `int()` reads but run_sweep.py's --layers does not.
        if re.fullmatch(r"[0-9]+-[0-9]+", text):
            low, high = (int(part) for part in text.split("-"))
            if low <= high:
                return Layers(f"{low}-{high}")
        elif re.fullmatch(r"[0-9]+(,[0-9]+)*", text):
            return Layers(text)
    raise problem


def _alphas(value: Any, _: Any) -> tuple[float, ...]:
    if type(value) in (int, float):
        value = [value]
    if (type(value) is not list or not value
            or any(type(v) not in (int, float) or not math.isfinite(v) for v in value)):
        raise ValueProblem("expected a list of numbers, like [0.5, 1, 2]")
    return tuple(value)


def _command(value: Any, _: Any) -> tuple[str, ...] | str:
    if type(value) is str and value.strip():
        return value
    if type(value) is list and value and all(type(v) is str for v in value):
        return tuple(value)
    raise ValueProblem("expected a list of words like [python, train.py, --lr, '0.1'] "
                             "(or a string with shell: true)")


def _env(value: Any, _: Any) -> dict[str, str]:
    if type(value) is not dict:
        raise ValueProblem("expected a mapping of variable names to values")
    env: dict[str, str] = {}
    for name, item in value.items():
        if type(name) is not str or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ValueProblem(f"{name!r} is not an environment variable name")
        if type(item) not in (str, int, float):
            raise ValueProblem(f"the value of {name} must be a string or number; "
                                     "quote it")
        env[name] = str(item)
    return env


def _axes(value: Any, _: Any) -> dict[str, list[Any]]:
    if type(value) is not dict or not value:
        raise ValueProblem("expected a mapping of axis names to lists of values")
    for name, values in value.items():
        if type(name) is not str or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ValueProblem(f"axis name {name!r} must be a word like `alphas`")
        if type(values) is not list or not values:
            raise ValueProblem(f"axis {name} must be a non-empty list of values")
    return dict(value)


def gpus(value: Any, _: Any = None) -> Gpus:
    """`auto`, or device ids (numbers, or strings like a GPU UUID or MIG id)."""
    if value == "auto":
        return "auto"
    words = value if type(value) is list else None
    if (not words or any(type(v) not in (int, str) or (type(v) is int and v < 0)
                         or (type(v) is str and not re.fullmatch(r"[A-Za-z0-9:._-]+", v))
                         for v in words)):
        raise ValueProblem("expected `auto` or a list of device ids like [0, 1]")
    ids = tuple(str(v) for v in words)
    if len(set(ids)) != len(ids):
        raise ValueProblem("a device is listed twice")
    return ids


def _any_mapping(value: Any, _: Any) -> dict[str, Any]:
    if type(value) is not dict:
        raise ValueProblem("expected a mapping")
    return dict(value)


def _is_typed_list(kind: Any) -> bool:
    return typing.get_origin(kind) is list and typing.get_args(kind) != (Any,)


def _only(python_type: type, what: str, make: Callable[[Any, cattrs.Converter], Any]) -> Any:
    """A hook factory that refuses values of another JSON type before cattrs sees them:
    cattrs makes a list of any iterable (a mapping's keys, a string's letters), and calls a
    list where a mapping belongs an `unknown error`. We say what was expected instead."""
    def factory(kind: Any, converter: cattrs.Converter) -> Any:
        inner = make(kind, converter)

        def hook(value: Any, target: Any) -> Any:
            if type(value) is not python_type:
                raise ValueProblem(f"expected {what}, got {describe(value)}")
            return inner(value, target)

        return hook

    return factory


_strict_list = _only(list, "a list", cattrs.cols.list_structure_factory)
_strict_mapping = _only(dict, "a mapping", cattrs.gen.make_dict_structure_fn)


_converter = cattrs.Converter(detailed_validation=True, forbid_extra_keys=True)
for _kind in (str, int, bool, float):
    _converter.register_structure_hook(_kind, CHECKS[_kind.__name__])
_converter.register_structure_hook_func(lambda t: t == tuple[str, ...], strings)
_converter.register_structure_hook_factory(_is_typed_list, _strict_list)
_converter.register_structure_hook_factory(attrs.has, _strict_mapping)
_converter.register_structure_hook(Layers, _layers)
_converter.register_structure_hook_func(lambda t: t == tuple[float, ...], _alphas)
_converter.register_structure_hook_func(lambda t: t == tuple[str, ...] | str, _command)
_converter.register_structure_hook_func(lambda t: t == tuple[str, ...] | str | None,
                                        lambda v, t: None if v is None else _command(v, t))
_converter.register_structure_hook_func(lambda t: t == dict[str, str], _env)
_converter.register_structure_hook_func(lambda t: t == dict[str, list[Any]], _axes)
_converter.register_structure_hook_func(lambda t: t == dict[str, Any], _any_mapping)
_converter.register_structure_hook_func(lambda t: t == Gpus | None,
                                        lambda v, t: None if v is None else gpus(v))


class Unstructurable(ValueError):
    """Raw data that does not fit the models; `.line` is the first problem, one line."""

    def __init__(self, line: str) -> None:
        super().__init__(line)
        self.line = line


def structure(raw: Any, model: type[T], path: str = "$") -> T:
    """`raw` as a `model`; raises Unstructurable with the first problem as `<path>: <what>`."""
    try:
        return _converter.structure(raw, model)
    except Exception as exc:  # noqa: BLE001 - every structuring failure becomes one line
        raise Unstructurable(problems.first(exc, path)) from None
