"""`journalq collect`: one table across the queue, what a sweep ends with (layers x alphas
-> metrics). Each job's facts and axis values, joined with the rows of a result file in
its out_dir: one output row per (job x result row), a job without rows once.

Columns never clash, whatever the axes and the result files are called: the job's own
(`id`, `status`, `attempt`, `return_code`, `duration`, `out_dir`), then `axis.<name>` in
config order, then `result.<column>` in the order first seen. Read-only, like `status`.
"""

from __future__ import annotations

import os
import posixpath
import stat
from collections.abc import Iterable
from typing import Any

from journalq import axes, tabular
from journalq.errors import EXIT_OK, ConfigError, JournalError, UsageError
from journalq.opened import Opened
from journalq.reading import read_with_copies
from journalq.render import safe
from journalq.results import format_of, read_rows
from journalq.state import Job, Queue, Status

JOB_COLUMNS = ("id", "status", "attempt", "return_code", "duration", "out_dir")
AXIS = "axis."
RESULT = "result."


def collect(opened: Opened, *, file: str | None = None, fmt: str | None = None,
            out: str | None = None, done_only: bool = False) -> int:
    """Write the queue's table to `out` (atomically) or the console, as `fmt` (default:
    `out`'s extension, else tsv)."""
    if file is not None:
        _check_name(file)
    if fmt is None and out is not None and posixpath.splitext(out)[1] and not format_of(out):
        raise UsageError(f"--out {out}: cannot tell a format by its extension; name a .tsv, "
                         ".csv or .jsonl file, or pass --format")
    fmt = fmt or (format_of(out) if out else None) or "tsv"
    if fmt not in tabular.FORMATS:
        raise UsageError(f"--format {fmt!r}: use one of {', '.join(tabular.FORMATS)}")
    queue = read_with_copies(opened)
    jobs = [job for job in queue.jobs.values() if not done_only or job.status is Status.DONE]
    columns, rows = table(opened, queue, jobs, file)
    lines = tabular.table(fmt, columns, rows)
    if out is None:
        for line in lines:
            opened.console.write(line)
    else:
        _write_atomically(out, lines)
        opened.console.err(f"collect: {len(rows)} row(s) of {len(jobs)} job(s) -> {out}")
    return EXIT_OK


def table(opened: Opened, queue: Queue, jobs: list[Job],
          file: str | None) -> tuple[list[str], list[dict[str, Any]]]:
    """The columns and rows of the collected table."""
    found = _axes(opened, jobs)
    seen: dict[str, None] = {}  # result columns, first seen first
    rows: list[dict[str, Any]] = []
    missing: list[str] = []
    warn = opened.console.warn
    for job in jobs:
        last = job.last
        base: dict[str, Any] = {
            "id": job.id, "status": job.status.value, "attempt": job.attempt,
            "return_code": last.return_code if last else None,
            "duration": last.duration if last else None, "out_dir": job.spec.out_dir,
        }
        base.update({AXIS + name: value for name, value in found.values[job.id].items()})
        path = _result_path(job, file)
        results = read_rows(path, warn) if path else None
        if path and results is None and job.status is Status.DONE:
            missing.append(f"{job.id}: {path}")
        for result in results or [{}]:
            named = {RESULT + str(key): value for key, value in result.items()}
            seen.update(dict.fromkeys(named))
            rows.append({**base, **named})
    _say_missing(opened, jobs, file, missing)
    columns = [*JOB_COLUMNS, *(AXIS + name for name in found.names), *seen]
    return columns, rows


def _axes(opened: Opened, jobs: list[Job]) -> axes.Axes:
    argvs = {job.id: None if job.spec.shell else job.spec.argv for job in jobs}
    cfg = opened.config
    if cfg is None:
        return axes.axes(argvs)
    from journalq import configfile, schema

    try:
        with open(cfg.source, "rb") as handle:
            raw = configfile.load(handle.read(), cfg.source)
        written = schema.structure(raw, schema.QueueConfig)
    except (OSError, schema.Unstructurable) as exc:  # it changed since it was checked
        raise ConfigError(f"{cfg.source}: cannot read it again ({exc})") from None
    return axes.axes(argvs, written, list(cfg.jobs))


def _result_path(job: Job, file: str | None) -> str | None:
    """`file` in the job's out_dir, else its run_sweep.py --summary-path, if any."""
    if file is not None:
        return posixpath.join(job.spec.out_dir, file)
    if job.spec.shell:
        return None
    return axes.sweep_args(job.spec.argv).get(axes.SUMMARY_FLAG)


def _check_name(file: str) -> None:
    parts = file.split("/")
    if not file or file.startswith("/") or ".." in parts:
        raise UsageError(f"--file {file!r}: give a file name inside each job's out_dir, like "
                         "results.jsonl")
    if format_of(file) is None:
        raise UsageError(f"--file {file!r}: name a .tsv, .csv, .jsonl or .json file (the "
                         "format is told by the extension)")


def _say_missing(opened: Opened, jobs: list[Job], file: str | None,
                 missing: list[str]) -> None:
    warn = opened.console.warn
    if file is None and jobs and all(_result_path(job, None) is None for job in jobs):
        warn("no job names a result file (run_sweep.py's --summary-path); pass --file NAME "
             "to join each job's out_dir/NAME")
    elif missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        warn(safe(f"{len(missing)} done job(s) have no result file ({missing[0]}{more}); "
                  "they appear once, with empty result columns"))


def _write_atomically(path: str, lines: Iterable[str]) -> None:
    """Write the file beside itself and rename it into place: a reader (or a crash) never
    sees half a table. A symlink is written through (the link stays, its target gets the
    table), and what is not a file (`/dev/stdout`, a FIFO) is written to as it is: a rename
    would put a regular file in its place."""
    real = os.path.realpath(path)
    try:
        mode = os.stat(real).st_mode
    except FileNotFoundError:
        mode = stat.S_IFREG
    except OSError as exc:
        raise JournalError(f"cannot write {path} ({exc.strerror}); check --out") from None
    if stat.S_ISDIR(mode):
        raise UsageError(f"--out {path} is a folder; name a file in it, like "
                         f"{posixpath.join(path, 'results.tsv')}")
    try:
        if not stat.S_ISREG(mode):
            with open(real, "w", encoding="utf-8", newline="") as handle:
                handle.writelines(lines)
            return
        _replace(real, lines)
    except OSError as exc:
        raise JournalError(f"cannot write {path} ({exc.strerror}); check that its folder "
                           "exists and is writable, and the free space") from None


def _replace(path: str, lines: Iterable[str]) -> None:
    folder = posixpath.dirname(path) or "."
    temp = posixpath.join(folder, f".{posixpath.basename(path)}.tmp-{os.getpid()}")
    try:
        with open(temp, "w", encoding="utf-8", newline="") as handle:
            handle.writelines(lines)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.remove(temp)
        raise
