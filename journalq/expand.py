"""The file as written -> one `JobSpec` per job, in run order.

A matrix becomes every combination of its axes (first axis slowest); run_sweep.py `args`
become that script's flags; `{axis}`, `{out_dir}` and `{job}` placeholders are filled in
(quoted, in a shell command, so a value never becomes shell syntax). Every problem is a
`Problem` naming where it is (`$.matrix (at alphas=2).args.layers`); `config` turns it into
the one line people read.
"""

from __future__ import annotations

import itertools
import posixpath
import re
import shlex
from collections.abc import Iterator, Mapping
from typing import Any

import attrs

from journalq.schema import (
    Defaults,
    JobConfig,
    JobOptions,
    Matrix,
    QueueConfig,
    SweepArgs,
    Unstructurable,
    structure,
)
from journalq.state import JobSpec

# Letters, digits, '.', '_' and '-', not starting with '.' or '-': safe as a file name
# and as a single command-line word, never a hidden file, a flag or a path.
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class Problem(Exception):
    """What is wrong (`message`) and where (`path`, like `$.jobs[3].timeout`)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


def job_specs(written: QueueConfig, worker: tuple[str, ...], out_root: str) -> dict[str, JobSpec]:
    """Every job of the file, expanded and checked, by id in run order."""
    specs: dict[str, JobSpec] = {}
    for path, job in _jobs(written):
        if job.id in specs:
            raise Problem(path, f"job id {job.id!r} is used twice; ids must be unique")
        specs[job.id] = _spec(job, path, worker, out_root, written.defaults)
    if not specs:
        raise Problem("$.jobs", "the config has no jobs; add `jobs:` or a `matrix:`")
    return specs


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
            raise Problem("$.matrix.id", f"{{{placeholder}}} is not one of the axes "
                           f"({', '.join(names)})")
    if matrix.command is None:
        flags = {field.name for field in attrs.fields(SweepArgs)}
        for name in [*matrix.args, *names]:
            if name not in flags:
                raise Problem(f"$.matrix.axes.{name}", f"not a run_sweep.py flag "
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
        return structure(raw, SweepArgs, path="")
    except Unstructurable as exc:
        field, _, message = exc.line.partition(": ")
        raise Problem(f"{path}{field}", message) from None


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
    check_name(job.id, f"{path}.id", "job id")
    out_dir = posixpath.join(out_root, job.id)
    if (job.args is None) == (job.command is None):
        raise Problem(path, "give either `args` (run_sweep.py flags) or `command`, not both")
    if job.args is not None:
        if job.shell:
            raise Problem(f"{path}.shell", "shell: true needs a `command` string")
        args = job.args
        check_name(args.summary_name, f"{path}.args.summary_name", "summary file name")
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
    check_attempts(max_attempts, f"{path}.max_attempts")
    timeout = job.timeout if job.timeout is not None else defaults.timeout
    if timeout is not None:
        check_positive(timeout, f"{path}.timeout")
    cwd = folder_path(job.cwd if job.cwd is not None else defaults.cwd, f"{path}.cwd")
    env = {**defaults.env, **(job.env or {})}
    _check_no_nul(argv, f"{path}.args" if job.args is not None else f"{path}.command")
    for name, value in env.items():
        where = f"{path}.env" if job.env and name in job.env else "$.defaults.env"
        _check_no_nul((name, value), f"{where}.{name}")
    return JobSpec.build(
        argv=argv, shell=job.shell, cwd=cwd, env=env,
        out_dir=out_dir, max_attempts=max_attempts, timeout=timeout,
    )


def _check_no_nul(words: tuple[str, ...], path: str) -> None:
    """A NUL byte (YAML's "\\0") cannot be passed to a program: refused here, at load, and
    not by every attempt failing to start."""
    if any("\0" in word for word in words):
        raise Problem(path, "contains a NUL byte (\\0), which no program can be given; "
                            "remove it")


def _command_argv(command: tuple[str, ...] | str, shell: bool, path: str) -> tuple[str, ...]:
    if isinstance(command, str):
        if not shell:
            raise Problem(f"{path}.command", "a string command runs through a shell: write "
                           "it as a list of words, or set shell: true")
        return (command,)
    if shell:
        raise Problem(f"{path}.shell", "shell: true needs the command as one string")
    return command


def words(worker: tuple[str, ...] | str, path: str) -> tuple[str, ...]:
    """A command given as a list of words, or as one string split the way a shell would."""
    if isinstance(worker, tuple):
        split = worker
    else:
        try:
            split = tuple(shlex.split(worker))
        except ValueError as exc:
            raise Problem(path, f"cannot split into words ({exc})") from None
        if not split:
            raise Problem(path, "the worker command is empty")
    _check_no_nul(split, path)
    return split


def is_safe_name(value: str) -> bool:
    """Whether `value` may name a job or a queue: a plain file name, never a path."""
    return bool(_SAFE_NAME.fullmatch(value)) and ".." not in value


def check_name(value: str, path: str, what: str) -> None:
    """Refuse a queue or job name that could be a path, a flag or a hidden file."""
    if not is_safe_name(value):
        raise Problem(path, f"{value!r} is not a valid {what}: use letters, digits, '.', "
                       "'_' and '-' (no '..', no leading '.' or '-', at most 128 characters)")


def folder_path(path_text: str, path: str) -> str:
    """A folder path, normalised (`a/./b/` is `a/b`)."""
    if not path_text or "\0" in path_text:
        raise Problem(path, "expected a folder path")
    return posixpath.normpath(path_text)


def check_positive(value: float, path: str) -> None:
    """Refuse a number of seconds that is zero or negative."""
    if not value > 0:
        raise Problem(path, f"expected a positive number of seconds, got {value}")


def check_attempts(value: int, path: str) -> None:
    """Refuse an attempt budget outside 1..1000."""
    if not 1 <= value <= 1000:
        raise Problem(path, f"expected a whole number from 1 to 1000, got {value}")
