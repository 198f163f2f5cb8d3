"""Everything journalq shows people: the status table, `--json`, progress lines, summaries,
and the `Console` the words go through.

Pure functions from values to text; the `Console` a command is handed decides where it goes.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Collection
from typing import Any

import attrs

from journalq.state import Attempt, Job, Queue, Status


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
    # Whether it writes to this process's stdout and stderr descriptors (the command line):
    # then a run's terminal thread writes them itself; otherwise (a notebook cell's
    # streams) it writes through this console.
    descriptors: bool = False
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


def tries(job: Job) -> str:
    """Attempts charged against the budget / the budget (an interrupted one is free)."""
    return f"{job.charged}/{job.spec.max_attempts}"


def age(seconds: float) -> str:
    """`12s ago`; a time ahead of our clock is `just now` and says by how much, never a
    negative age."""
    if seconds < -1:
        return f"just now (its clock is {duration(-seconds)} ahead of ours)"
    return f"{duration(max(0.0, seconds))} ago"


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
    if selected is not None and len(selected) != len(queue.jobs):
        counts = dict.fromkeys(Status, 0)
        for job_id in selected:
            if job_id in queue.jobs:
                counts[queue.jobs[job_id].status] += 1
        parts = ", ".join(f"{counts[status]} {status.value}" for status in Status)
        lines.append(f"  of them selected by this run: {len(selected)} jobs: {parts}")
    failed = [job for job in queue.by_status(Status.FAILED)
              if selected is None or job.id in selected]
    lines.extend(failed_line(job) for job in failed)
    if failed:
        lines.append("rerun them with `journalq retry --failed` then `journalq run` again")
    return "\n".join(lines)


def return_code_text(attempt: Attempt | None) -> str:
    """`0`, `sig9`, or `-` (no attempt, or none recorded)."""
    if attempt is None:
        return "-"
    if attempt.signal is not None and attempt.return_code is None:
        return f"sig{attempt.signal}"
    return "-" if attempt.return_code is None else str(attempt.return_code)


def failed_line(job: Job) -> str:
    """`  failed gpt2-L4-8  rc=3  reason=exit  log=...`: a failed job and where to look."""
    last = job.last
    log = last.log if last else "-"
    return safe(f"  failed {job.id}  rc={return_code_text(last)}  reason={job.reason}  log={log}")
