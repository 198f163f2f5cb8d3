"""Queue configs (YAML or TOML) -> validated models -> the job specs the journal records.

Pure: `parse(data, source)` takes the file's bytes and its name and either returns a
`Config` or raises one `ConfigError` line naming the file and the field
(`configs/x.yaml: $.jobs[3].alphas: expected a list of numbers`).
"""

from __future__ import annotations

import hashlib
import itertools
import math
import posixpath
import re
import shlex
import tomllib
import typing
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import attrs
import cattrs
import cattrs.cols
import yaml

from journalq import codec
from journalq.defaults import (
    DEFAULT_GRACE_SECONDS,
    DEFAULT_HEARTBEAT_SECONDS,
    DEFAULT_STALE_SECONDS,
    DEFAULT_SYNC_SECONDS,
    DEFAULT_WORKER,
)
from journalq.errors import ConfigError
from journalq.state import JobSpec

SUMMARY_FILE = "summary.tsv"

# Letters, digits, '.', '_' and '-', not starting with '.' or '-': safe as a file name
# and as a single command-line word, never a hidden file, a flag or a path.
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
# A YAML alias bomb is small on disk and huge once expanded; configs are never this big.
MAX_YAML_ALIASES = 100
MAX_CONFIG_NODES = 100_000


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
    defaults: Defaults = attrs.Factory(Defaults)
    jobs: list[JobConfig] = attrs.Factory(list)
    matrix: Matrix | None = None


@attrs.frozen
class Config:
    """A checked config: queue settings and every job's spec, in run order."""

    source: str
    sha256: str
    queue: str
    out_root: str
    stale_seconds: float
    heartbeat_seconds: float
    sync_dir: str | None
    sync_seconds: float
    grace_seconds: float
    jobs: Mapping[str, JobSpec]


def parse(data: bytes, source: str) -> Config:
    """The config in `data` (YAML, or TOML when `source` ends in .toml), checked whole."""
    raw = _load(data, source)
    try:
        written = _converter.structure(raw, QueueConfig)
    except Exception as exc:  # noqa: BLE001 - every structuring failure becomes one line
        raise ConfigError(f"{source}: {codec.first_problem(exc)}") from None
    try:
        return _check(written, source, hashlib.sha256(data).hexdigest())
    except _Problem as problem:
        raise ConfigError(f"{source}: {problem.path}: {problem.message}") from None


class _Problem(Exception):
    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


def _load(data: bytes, source: str) -> dict[str, Any]:
    if source.endswith(".toml"):
        try:
            raw: Any = tomllib.loads(data.decode("utf-8"))
        except UnicodeDecodeError:
            raise ConfigError(f"{source}: not UTF-8 text; save it as UTF-8") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{source}: TOML syntax error: {exc}") from None
        except (ValueError, RecursionError) as exc:
            raise _unconvertible(exc, source) from None
    else:
        raw = _load_yaml(data, source)
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: $: expected a mapping with at least `queue:`; "
                          "see the README's config reference")
    return raw


def _load_yaml(data: bytes, source: str) -> Any:
    raw = _load_yaml_fast(data)
    if raw is _SLOW:
        raw = _load_yaml_slow(data, source)
    try:
        too_big = _expanded_size(raw, {}) > MAX_CONFIG_NODES
    except RecursionError:
        too_big = True
    if too_big:
        raise ConfigError(f"{source}: expands to more than {MAX_CONFIG_NODES} values; "
                          "a config this large is a mistake (or a YAML alias bomb, or an alias "
                          "inside itself)")
    if codec.lone_surrogate(data, raw):
        raise ConfigError(f"{source}: {codec.LONE_SURROGATE}; write the character itself")
    return raw


_SLOW = object()  # "take the slow way": `_load_yaml_fast` could not, or would not, read it


def _load_yaml_fast(data: bytes) -> Any:
    """libyaml's parser, ten times faster (a 500-job config: 9 ms, not 73), for the common
    case: valid UTF-8, no characters YAML forbids, no aliases. Anything else, and any error,
    goes the slow way, whose checks and messages are the ones people see."""
    fast_loader = getattr(yaml, "CSafeLoader", None)
    if fast_loader is None:
        return _SLOW
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return _SLOW
    if "*" in text or _FORBIDDEN.search(text):  # aliases are counted by the slow loader
        return _SLOW
    try:
        return yaml.load(text, Loader=_FastLoader)  # noqa: S506 - a safe loader, as below
    except Exception:  # noqa: BLE001 - the slow way explains it
        return _SLOW


def _load_yaml_slow(data: bytes, source: str) -> Any:
    try:
        # The loader decodes and checks every character up front, so it is what fails first.
        loader = _CountingLoader(data)
    except yaml.reader.ReaderError as exc:
        raise _unreadable(exc, source) from None
    try:
        raw = loader.get_single_data()
    except _TooManyAliases:
        raise ConfigError(f"{source}: uses more than {MAX_YAML_ALIASES} YAML aliases; "
                          "write the values out") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError(f"{source}{where}: YAML syntax error: {problem}") from None
    except (yaml.YAMLError, UnicodeDecodeError, RecursionError) as exc:
        raise ConfigError(f"{source}: not valid YAML ({type(exc).__name__}); "
                          "check the file's syntax and encoding") from None
    except ValueError as exc:
        raise _unconvertible(exc, source) from None
    finally:
        loader.dispose()
    return raw


def _unconvertible(exc: BaseException, source: str) -> ConfigError:
    """One line for a value the parser matched but Python cannot build: a number past
    Python's 4300-digit limit, a date like 2020-13-45, `!!int abc`, or nesting too deep."""
    if isinstance(exc, RecursionError):
        return ConfigError(f"{source}: nested too deeply to read; flatten it")
    detail = str(exc).partition(";")[0].splitlines()[0][:100] if str(exc) else type(exc).__name__
    return ConfigError(f"{source}: a value cannot be read ({detail}); quote it if it is text")


def _unreadable(exc: yaml.reader.ReaderError, source: str) -> ConfigError:
    """One line for a file YAML cannot even read: bytes that are not UTF-8, or a control
    character (PyYAML's own message spans two lines)."""
    if exc.encoding == "unicode":  # decoded fine, but holds a character YAML forbids
        return ConfigError(f"{source}: character #x{exc.character:04x} at position "
                           f"{exc.position} is not allowed in YAML; remove it")
    return ConfigError(f"{source}: not UTF-8 text (bad byte at position {exc.position}); "
                       "save it as UTF-8")


class _TooManyAliases(Exception):
    pass


class _UniqueKeys(yaml.constructor.SafeConstructor):
    """Mappings whose keys are all different."""

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        # PyYAML keeps the last of two equal keys: a second `jobs:` would silently drop
        # every job of the first. (Keys merged in with `<<:` may be overridden, as usual.)
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    repeated = key in seen
                except TypeError:  # unhashable: the base class refuses it with a mark
                    continue
                if repeated:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r}", key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep)


class _CountingLoader(yaml.SafeLoader, _UniqueKeys):
    """The safe loader, refusing configs that lean on aliases (the billion-laughs attack)."""

    aliases = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_YAML_ALIASES:
                raise _TooManyAliases
        return super().compose_node(parent, index)


# What PyYAML's own reader refuses (control characters and the like): such a file goes the
# slow way, so that it is refused with the same message whichever parser is present.
_FORBIDDEN = yaml.reader.Reader.NON_PRINTABLE

if hasattr(yaml, "CSafeLoader"):
    class _FastLoader(yaml.CSafeLoader, _UniqueKeys):
        """libyaml's parser, with the same unique-key rule as the slow loader."""


def _expanded_size(value: Any, seen: dict[int, int]) -> int:
    """How many values `value` holds once every shared (aliased) part is counted each time."""
    key = id(value)
    if key in seen:
        return seen[key]
    size = 1
    # A value inside itself (`x: &a [*a]`, which yaml.safe_load builds) never ends when
    # expanded: count it as too big, or job ids and commands made from it recurse forever.
    if isinstance(value, dict):
        seen[key] = MAX_CONFIG_NODES + 1
        size += sum(_expanded_size(k, seen) + _expanded_size(v, seen) for k, v in value.items())
    elif isinstance(value, list):
        seen[key] = MAX_CONFIG_NODES + 1
        size += sum(_expanded_size(item, seen) for item in value)
    seen[key] = size
    return size


# ---- structuring hooks: the messages people see for a wrong value ----------------------------

def _layers(value: Any, _: Any) -> Layers:
    problem = codec.ValueProblem(
        "expected a range like '10-14' or a list of layers like [8, 12, 16]"
    )
    if type(value) is int and value >= 0:
        return Layers(str(value))
    if type(value) is list and value and all(type(v) is int and v >= 0 for v in value):
        return Layers(",".join(str(v) for v in value))
    if type(value) is str:
        text = value.replace(" ", "")
        if re.fullmatch(r"\d+-\d+", text):
            low, high = (int(part) for part in text.split("-"))
            if low <= high:
                return Layers(f"{low}-{high}")
        elif re.fullmatch(r"\d+(,\d+)*", text):
            return Layers(text)
    raise problem


def _alphas(value: Any, _: Any) -> tuple[float, ...]:
    if type(value) in (int, float):
        value = [value]
    if (type(value) is not list or not value
            or any(type(v) not in (int, float) or not math.isfinite(v) for v in value)):
        raise codec.ValueProblem("expected a list of numbers, like [0.5, 1, 2]")
    return tuple(value)


def _command(value: Any, _: Any) -> tuple[str, ...] | str:
    if type(value) is str and value.strip():
        return value
    if type(value) is list and value and all(type(v) is str for v in value):
        return tuple(value)
    raise codec.ValueProblem("expected a list of words like [python, train.py, --lr, '0.1'] "
                             "(or a string with shell: true)")


def _env(value: Any, _: Any) -> dict[str, str]:
    if type(value) is not dict:
        raise codec.ValueProblem("expected a mapping of variable names to values")
    env: dict[str, str] = {}
    for name, item in value.items():
        if type(name) is not str or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise codec.ValueProblem(f"{name!r} is not an environment variable name")
        if type(item) not in (str, int, float):
            raise codec.ValueProblem(f"the value of {name} must be a string or number; "
                                     "quote it")
        env[name] = str(item)
    return env


def _axes(value: Any, _: Any) -> dict[str, list[Any]]:
    if type(value) is not dict or not value:
        raise codec.ValueProblem("expected a mapping of axis names to lists of values")
    for name, values in value.items():
        if type(name) is not str or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise codec.ValueProblem(f"axis name {name!r} must be a word like `alphas`")
        if type(values) is not list or not values:
            raise codec.ValueProblem(f"axis {name} must be a non-empty list of values")
    return dict(value)


def _any_mapping(value: Any, _: Any) -> dict[str, Any]:
    if type(value) is not dict:
        raise codec.ValueProblem("expected a mapping")
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
                raise codec.ValueProblem(f"expected {what}, got {codec.describe(value)}")
            return inner(value, target)

        return hook

    return factory


_strict_list = _only(list, "a list", cattrs.cols.list_structure_factory)
_strict_mapping = _only(dict, "a mapping", cattrs.gen.make_dict_structure_fn)


_converter = codec.make_converter(detailed=True, forbid_extra_keys=True)
_converter.register_structure_hook_factory(
    _is_typed_list, _strict_list
)
_converter.register_structure_hook_factory(attrs.has, _strict_mapping)
_converter.register_structure_hook(Layers, _layers)
_converter.register_structure_hook_func(lambda t: t == tuple[float, ...], _alphas)
_converter.register_structure_hook_func(lambda t: t == tuple[str, ...] | str, _command)
_converter.register_structure_hook_func(lambda t: t == tuple[str, ...] | str | None,
                                        lambda v, t: None if v is None else _command(v, t))
_converter.register_structure_hook_func(lambda t: t == dict[str, str], _env)
_converter.register_structure_hook_func(lambda t: t == dict[str, list[Any]], _axes)
_converter.register_structure_hook_func(lambda t: t == dict[str, Any], _any_mapping)


# ---- checks that span fields, and expansion into specs ------------------------------------

def _check(written: QueueConfig, source: str, sha256: str) -> Config:
    _name(written.queue, "$.queue", "queue name")
    _positive(written.stale_seconds, "$.stale_seconds")
    _positive(written.heartbeat_seconds, "$.heartbeat_seconds")
    _positive(written.sync_seconds, "$.sync_seconds")
    _positive(written.grace_seconds, "$.grace_seconds")
    defaults = written.defaults
    _attempts(defaults.max_attempts, "$.defaults.max_attempts")
    if defaults.timeout is not None:
        _positive(defaults.timeout, "$.defaults.timeout")
    worker = _words(written.worker, "$.worker")
    out_root = _relative_or_absolute(written.out_root or f"runtime_state/outputs/{written.queue}",
                                     "$.out_root")
    specs: dict[str, JobSpec] = {}
    for path, job in _jobs(written):
        if job.id in specs:
            raise _Problem(path, f"job id {job.id!r} is used twice; ids must be unique")
        specs[job.id] = _spec(job, path, worker, out_root, defaults)
    if not specs:
        raise _Problem("$.jobs", "the config has no jobs; add `jobs:` or a `matrix:`")
    return Config(
        source=source, sha256=sha256, queue=written.queue, out_root=out_root,
        stale_seconds=written.stale_seconds, heartbeat_seconds=written.heartbeat_seconds,
        sync_dir=written.sync_dir, sync_seconds=written.sync_seconds,
        grace_seconds=written.grace_seconds, jobs=specs,
    )


def _jobs(written: QueueConfig) -> Iterator[tuple[str, JobConfig]]:
    for index, job in enumerate(written.jobs):
        yield f"$.jobs[{index}]", job
    if written.matrix is not None:
        yield from _expand(written.matrix)


def _expand(matrix: Matrix) -> Iterator[tuple[str, JobConfig]]:
    """Every combination of the matrix's axes as a job, first axis slowest."""
    names = list(matrix.axes)
    for placeholder in _PLACEHOLDER.findall(matrix.id):
        if placeholder not in names:
            raise _Problem("$.matrix.id", f"{{{placeholder}}} is not one of the axes "
                           f"({', '.join(names)})")
    if matrix.command is None:
        flags = {field.name for field in attrs.fields(SweepArgs)}
        for name in [*matrix.args, *names]:
            if name not in flags:
                raise _Problem(f"$.matrix.axes.{name}", f"not a run_sweep.py flag "
                               f"({', '.join(sorted(flags))}); give matrix.command to use "
                               "your own command with {" + name + "} in it")
    options = attrs.asdict(matrix, recurse=False, filter=lambda a, _: a.name in _OPTIONS)
    for combo in itertools.product(*(matrix.axes[name] for name in names)):
        values = dict(zip(names, combo, strict=True))
        job_id = _render_id(matrix.id, values)
        where = ", ".join(f"{name}={value!r}" for name, value in values.items())
        path = f"$.matrix (at {where})"
        if matrix.command is None:
            args = _sweep_args({**matrix.args, **values}, f"{path}.args")
            yield path, JobConfig(id=job_id, args=args, **options)
        else:
            command = _fill(matrix.command, values, path)
            yield path, JobConfig(id=job_id, command=command, **options)


_OPTIONS = {field.name for field in attrs.fields(JobOptions)}


def _sweep_args(raw: dict[str, Any], path: str) -> SweepArgs:
    try:
        return _converter.structure(raw, SweepArgs)
    except Exception as exc:  # noqa: BLE001 - reported as one line with its path
        problem = codec.first_problem(exc, path="")
        field, _, message = problem.partition(": ")
        raise _Problem(f"{path}{field}", message) from None


def _render_id(template: str, values: Mapping[str, Any]) -> str:
    return _PLACEHOLDER.sub(lambda m: _id_text(values[m.group(1)]), template)


def _id_text(value: Any) -> str:
    """An axis value as it appears in a job id: lists joined by '_', never a comma or space."""
    if isinstance(value, list):
        return "_".join(_id_text(item) for item in value)
    return str(value).replace(",", "_").replace(" ", "")


def _arg_text(value: Any) -> str:
    """An axis value as it appears on a command line: lists joined by ','."""
    if isinstance(value, list):
        return ",".join(_arg_text(item) for item in value)
    return str(value)


def _fill(command: tuple[str, ...] | str, values: Mapping[str, Any],
          path: str) -> tuple[str, ...] | str:
    """A command with `{axis}` placeholders replaced; `{out_dir}` and `{job}` are left
    for `_spec` to fill in, and any other braces are left alone (think `python -c`)."""
    texts = {name: _arg_text(value) for name, value in values.items()}
    if isinstance(command, str):
        return fill_placeholders(command, texts, quoted=True)
    return tuple(fill_placeholders(word, texts, quoted=False) for word in command)


def fill_placeholders(word: str, values: Mapping[str, str], *, quoted: bool) -> str:
    """`word` with each `{name}` of `values` replaced; in a shell command the value is
    quoted, so a value (an axis, a path) can never become shell syntax."""
    if "{" not in word:  # most words: a matrix of 10,000 jobs has 200,000 of them
        return word

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            return match.group(0)
        return shlex.quote(values[name]) if quoted else values[name]

    return _PLACEHOLDER.sub(value, word)


def _spec(job: JobConfig, path: str, worker: tuple[str, ...], out_root: str,
          defaults: Defaults) -> JobSpec:
    _name(job.id, f"{path}.id", "job id")
    out_dir = posixpath.join(out_root, job.id)
    if (job.args is None) == (job.command is None):
        raise _Problem(path, "give either `args` (run_sweep.py flags) or `command`, not both")
    if job.args is not None:
        if job.shell:
            raise _Problem(f"{path}.shell", "shell: true needs a `command` string")
        args = job.args
        _name(args.summary_name, f"{path}.args.summary_name", "summary file name")
        argv = (*worker, "--model", args.model, "--layers", args.layers.text,
                "--alphas", ",".join(str(alpha) for alpha in args.alphas),
                "--output-dir", out_dir,
                "--summary-path", posixpath.join(out_dir, args.summary_name), *args.extra)
    else:
        assert job.command is not None
        argv = _command_argv(job.command, job.shell, path)
    known = {"out_dir": out_dir, "job": job.id}
    argv = tuple(fill_placeholders(word, known, quoted=job.shell) for word in argv)
    max_attempts = job.max_attempts if job.max_attempts is not None else defaults.max_attempts
    _attempts(max_attempts, f"{path}.max_attempts")
    timeout = job.timeout if job.timeout is not None else defaults.timeout
    if timeout is not None:
        _positive(timeout, f"{path}.timeout")
    cwd = _relative_or_absolute(job.cwd if job.cwd is not None else defaults.cwd, f"{path}.cwd")
    return JobSpec.build(
        argv=argv, shell=job.shell, cwd=cwd, env={**defaults.env, **(job.env or {})},
        out_dir=out_dir, max_attempts=max_attempts, timeout=timeout,
    )


def _command_argv(command: tuple[str, ...] | str, shell: bool, path: str) -> tuple[str, ...]:
    if isinstance(command, str):
        if not shell:
            raise _Problem(f"{path}.command", "a string command runs through a shell: write "
                           "it as a list of words, or set shell: true")
        return (command,)
    if shell:
        raise _Problem(f"{path}.shell", "shell: true needs the command as one string")
    return command


def _words(worker: tuple[str, ...] | str, path: str) -> tuple[str, ...]:
    if isinstance(worker, tuple):
        return worker
    try:
        words = tuple(shlex.split(worker))
    except ValueError as exc:
        raise _Problem(path, f"cannot split into words ({exc})") from None
    if not words:
        raise _Problem(path, "the worker command is empty")
    return words


def is_safe_name(value: str) -> bool:
    """Whether `value` may name a job or a queue: a plain file name, never a path."""
    return bool(_SAFE_NAME.fullmatch(value)) and ".." not in value


def _name(value: str, path: str, what: str) -> None:
    if not is_safe_name(value):
        raise _Problem(path, f"{value!r} is not a valid {what}: use letters, digits, '.', "
                       "'_' and '-' (no '..', no leading '.' or '-', at most 128 characters)")


def _relative_or_absolute(path_text: str, path: str) -> str:
    if not path_text or "\0" in path_text:
        raise _Problem(path, "expected a folder path")
    return posixpath.normpath(path_text)


def _positive(value: float, path: str) -> None:
    if not value > 0:
        raise _Problem(path, f"expected a positive number of seconds, got {value}")


def _attempts(value: int, path: str) -> None:
    if not 1 <= value <= 1000:
        raise _Problem(path, f"expected a whole number from 1 to 1000, got {value}")
