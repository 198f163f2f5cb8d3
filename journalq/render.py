"""Everything journalq shows people: the status table, `--json`, progress lines, summaries,
and the `Console` the words go through.

Pure functions from values to text; the `Console` a command is handed decides where it goes.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable, Collection, Iterable, Iterator
from datetime import datetime
from typing import Any

import attrs

from journalq.state import Attempt, Job, Queue, Status
from journalq.timestamps import seconds_between

JSON_SCHEMA_VERSION = 1


def _no_hook(_: OSError) -> None:
    pass


@attrs.frozen
class Console:
    """Where a command's words go: results to `out`, warnings and progress to `err`, a
    job's output to `echo`, and streamed text (`status --json`) to `write`.

    Writing never raises. A terminal or pipe that went away (EIO after a hangup, EPIPE when
    the reader left) silences the sink that failed, for good, and is told once to
    `on_gone`; the command goes on (a job's output still reaches its log), and the command
    line decides what the loss means (a hangup, or exit 141 for `status | head`).
    """

    _out: Callable[[str], None] = attrs.field(alias="out")
    _err: Callable[[str], None] = attrs.field(alias="err")
    _echo: Callable[[bytes], None] = attrs.field(alias="echo")
    _write: Callable[[str], None] = attrs.field(alias="write", default=print)
    on_gone: Callable[[OSError], None] = _no_hook
    _lost: set[str] = attrs.field(factory=set, init=False, eq=False, repr=False)

    def out(self, text: str) -> None:
        """A result line."""
        self._send("out", self._out, text)

    def err(self, text: str) -> None:
        """A progress or error line."""
        self._send("err", self._err, text)

    def echo(self, data: bytes) -> None:
        """A job's output, as it came."""
        self._send("echo", self._echo, data)

    def write(self, text: str) -> None:
        """Streamed text, without an added newline."""
        self._send("write", self._write, text)

    def warn(self, message: str) -> None:
        """A warning line, prefixed so it is never mistaken for output."""
        self.err(f"journalq: warning: {message}")

    @property
    def lost(self) -> frozenset[str]:
        """The sinks that went away (`out`, `err`, `echo`, `write`)."""
        return frozenset(self._lost)

    def _send(self, name: str, sink: Callable[[Any], None], value: Any) -> None:
        if name in self._lost:
            return
        try:
            sink(value)
        except OSError as exc:
            self._lost.add(name)
            self.on_gone(exc)

# An edited or foreign journal can hold any text; shown raw, a newline or an escape sequence
# in a job id would forge table rows or drive the terminal. Controls are shown escaped.
_CONTROLS = {code: f"\\x{code:02x}" for code in (*range(0x20), *range(0x7F, 0xA0))}


def safe(text: str) -> str:
    """Text from the journal made harmless to print: control characters escaped."""
    return text.translate(_CONTROLS)


def duration(seconds: float | None) -> str:
    """A short human duration: `0.4s`, `12s`, `1m02s`, `3h04m`."""
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def command_text(job: Job) -> str:
    """The job's command as one line a person could paste into a shell."""
    if job.spec.shell:
        return job.spec.argv[0]
    return shlex.join(job.spec.argv)


def counts_line(queue: Queue) -> str:
    """`12 jobs: 9 done, 1 running, 1 pending, 1 failed, 0 cancelled`."""
    counts = queue.counts()
    parts = ", ".join(f"{counts[status]} {status.value}" for status in Status)
    return f"{len(queue.jobs)} jobs: {parts}"


def status_table(queue: Queue, now: datetime, jobs: Iterable[Job] | None = None) -> str:
    """The status view: a counts line (of the whole queue), one row per job shown (`jobs`,
    default all), then notes and anomalies."""
    rows = [("JOB", "STATUS", "ATTEMPT", "TRIES", "RC", "DURATION", "HEARTBEAT", "OUT_DIR")]
    shown = list(queue.jobs.values()) if jobs is None else list(jobs)
    for job in shown:
        rows.append((
            safe(job.id), _status_word(job), str(job.attempt), tries(job),
            _rc(job.last), duration(_duration(job.last, now)), _beat_age(job, now),
            safe(job.spec.out_dir),
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = [f"queue {safe(queue.name or '?')}: {counts_line(queue)}", ""]
    if len(shown) != len(queue.jobs):
        lines[-1:] = [f"{len(shown)} of {len(queue.jobs)} jobs shown (filtered)", ""]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    lines.extend(notes(queue))
    return "\n".join(lines)


def tries(job: Job) -> str:
    """Attempts charged against the budget / the budget (an interrupted one is free)."""
    return f"{job.charged}/{job.spec.max_attempts}"


def _status_word(job: Job) -> str:
    if job.status is Status.DONE and job.changed_after_done:
        return "done*"
    if job.status is Status.FAILED and job.reason and job.reason != "exit":
        return f"failed({job.reason})"
    return job.status.value


def _rc(attempt: Attempt | None) -> str:
    if attempt is None:
        return "-"
    if attempt.signal is not None and attempt.return_code is None:
        return f"sig{attempt.signal}"
    return "-" if attempt.return_code is None else str(attempt.return_code)


def _duration(attempt: Attempt | None, now: datetime) -> float | None:
    if attempt is None:
        return None
    if attempt.duration is not None:
        return attempt.duration
    if attempt.finished is None:
        return max(0.0, seconds_between(attempt.started, now))
    return None


def _beat_age(job: Job, now: datetime) -> str:
    attempt = job.last
    if job.status is not Status.RUNNING or attempt is None:
        return "-"
    return age(seconds_between(attempt.heartbeat or attempt.started, now))


def age(seconds: float) -> str:
    """`12s ago`; a time ahead of our clock is `just now` and says by how much, never a
    negative age."""
    if seconds < -1:
        return f"just now (its clock is {duration(-seconds)} ahead of ours)"
    return f"{duration(max(0.0, seconds))} ago"


def notes(queue: Queue) -> list[str]:
    """Lines that explain anything unusual: changed specs, anomalies, newer event types."""
    lines: list[str] = []
    changed = [job.id for job in queue.jobs.values() if job.changed_after_done]
    if changed:
        lines.append("")
        lines.append(f"done* = the config changed after the job was done "
                     f"({safe(', '.join(changed))}); "
                     "it is not rerun unless you `journalq retry` it")
    if queue.anomalies:
        lines.append("")
        lines.append(f"{len(queue.anomalies)} event(s) did not fit the state (kept, ignored):")
        for anomaly in queue.anomalies:
            times = f" (x{anomaly.count})" if anomaly.count > 1 else ""
            lines.append(safe(f"  {anomaly.event_id} {anomaly.job or '-'}: {anomaly.message}")
                         + times)
    if queue.unknown_types:
        lines.append("")
        lines.append("events from a newer journalq were skipped: "
                     + safe(", ".join(sorted(queue.unknown_types))))
    return lines


def job_json(job: Job) -> dict[str, Any]:
    """One job as `status --json` shows it (documented in the README)."""
    last = job.last
    return {
        "id": job.id,
        "status": job.status.value,
        "attempt": job.attempt,
        "max_attempts": job.spec.max_attempts,
        "attempts_left": job.attempts_left,
        "command": list(job.spec.argv),
        "shell": job.spec.shell,
        "cwd": job.spec.cwd,
        "out_dir": job.spec.out_dir,
        "created": job.added,
        "started": last.started if last else None,
        "finished": last.finished if last else None,
        "last_heartbeat": last.heartbeat if last else None,
        "return_code": last.return_code if last else None,
        "signal": last.signal if last else None,
        "duration": last.duration if last else None,
        "reason": job.reason,
        "log": last.log if last else None,
        "spec_sha256": job.spec.sha256,
        "changed_after_done": job.changed_after_done,
        "attempts": [_attempt_json(attempt) for attempt in job.attempts],
    }


def _attempt_json(attempt: Attempt) -> dict[str, Any]:
    return {
        "attempt": attempt.number, "session": attempt.session, "host": attempt.host,
        "started": attempt.started, "finished": attempt.finished,
        "last_heartbeat": attempt.heartbeat, "outcome": attempt.outcome,
        "reason": attempt.reason, "return_code": attempt.return_code,
        "signal": attempt.signal, "duration": attempt.duration, "log": attempt.log,
        "charged": attempt.charged,
    }


def status_json(queue: Queue, journal: str, warnings: Iterable[str],
                jobs: Iterable[Job] | None = None) -> Iterator[str]:
    """The whole `status --json` document, in pieces: one line per job, so that ten
    thousand jobs never sit in memory twice (as values and as text). `jobs` (default all)
    are the ones listed; `counts` is always the whole queue's."""
    head = {
        "schema": JSON_SCHEMA_VERSION,
        "queue": queue.name,
        "journal": journal,
        "events": queue.events,
        "counts": {status.value: count for status, count in queue.counts().items()},
    }
    yield json.dumps(head, ensure_ascii=False)[:-1] + ',\n "jobs": ['
    for number, job in enumerate(queue.jobs.values() if jobs is None else jobs):
        yield ("\n  " if number == 0 else ",\n  ") + json.dumps(job_json(job),
                                                                ensure_ascii=False)
    tail = {
        "anomalies": [
            {"event": a.event_id, "ts": a.ts, "job": a.job, "message": a.message,
             "count": a.count} for a in queue.anomalies
        ],
        "unknown_event_types": sorted(queue.unknown_types),
        "warnings": list(warnings),
    }
    yield "\n ],\n " + json.dumps(tail, ensure_ascii=False)[1:] + "\n"


def wait_line(done: int, failed: int, cancelled: int, running: int, pending: int) -> str:
    """`wait: 7/12 settled (5 done, 2 failed), 3 running, 2 pending`."""
    settled = done + failed + cancelled
    total = settled + running + pending
    parts = [f"{done} done", f"{failed} failed"]
    if cancelled:
        parts.append(f"{cancelled} cancelled")
    line = f"wait: {settled}/{total} settled ({', '.join(parts)})"
    return line + f", {running} running, {pending} pending"


def progress(position: int, total: int, word: str, job: Job, detail: str = "",
             eta: float | None = None) -> str:
    """One progress line: `[3/12] done   gpt2-L4-8  rc=0  1m02s  (eta 9m)`."""
    width = len(str(total))
    tail = f"  (eta {duration(eta)})" if eta is not None else ""
    detail = f"  {detail}" if detail else ""
    return f"[{position:>{width}}/{total}] {word:<7}{safe(job.id)}{detail}{tail}"


def finish_detail(attempt: Attempt) -> str:
    """`rc=0  1m02s` for a finished attempt."""
    code = f"rc={attempt.return_code}" if attempt.return_code is not None else (
        f"signal={attempt.signal}")
    reason = f" ({attempt.reason})" if attempt.reason not in (None, "exit") else ""
    return f"{code}{reason}  {duration(attempt.duration)}"


def summary(queue: Queue, selected: Collection[str] | None = None) -> str:
    """The closing lines of `run`: counts, then each failed job (of those it selected, when
    it selected some) with its code and log."""
    lines = [f"{queue.name}: {counts_line(queue)}"]
    failed = [job for job in queue.by_status(Status.FAILED)
              if selected is None or job.id in selected]
    lines.extend(failed_line(job) for job in failed)
    if failed:
        lines.append("rerun them with `journalq retry --failed` then `journalq run` again")
    return "\n".join(lines)


def failed_line(job: Job) -> str:
    """`  failed gpt2-L4-8  rc=3  reason=exit  log=...`: a failed job and where to look."""
    last = job.last
    log = last.log if last else "-"
    return safe(f"  failed {job.id}  rc={_rc(last)}  reason={job.reason}  log={log}")
