"""One running attempt: a child in its own process group, its output pumped to the log (and
the echo), and the clock of its heartbeat, timeout and kill grace.

The scheduler owns the loop; an attempt only says what it needs (`wake_at`) and reacts
when asked. Output moves in large reads, one `write` to the log and one hand-off to the echo
per read, so a chatty job costs the runner little.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Callable, Mapping

import attrs

from journalq import reaper
from journalq.runner import Exit, resolve_argv
from journalq.state import JobSpec

READ_BYTES = 1 << 20
_PIPE_BYTES = 1 << 20  # a bigger pipe: fewer wake-ups for a chatty job (Linux F_SETPIPE_SZ)
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)


@attrs.frozen
class Timing:
    """How to watch one attempt: heartbeat cadence, timeout and the kill grace period."""

    heartbeat_seconds: float
    timeout: float | None
    grace_seconds: float


class Running:
    """A spawned attempt, watched until it exits and is reaped."""

    def __init__(self, *, job: str, number: int, slot: int, timing: Timing, log_fd: int,
                 echo: Callable[[bytes], None] | None, warn: Callable[[str], None],
                 log_path: str = "") -> None:
        self.job = job
        self.log_path = log_path
        self.number = number
        self.slot = slot
        self.timing = timing
        self.log_fd = log_fd
        self._echo = echo
        self._warn = warn
        self._log_failed = False
        self._line_open = False  # the log's last byte is not a newline (a progress bar)
        self.child: subprocess.Popen[bytes] | None = None
        self.read_fd = -1
        self.started = time.monotonic()
        self.next_beat = self.started + timing.heartbeat_seconds
        self.deadline = None if timing.timeout is None else self.started + timing.timeout
        self.term_sent: float | None = None
        self.killed = False
        self.reason = "exit"
        self.eof = False
        self.tag = ""

    @property
    def pid(self) -> int:
        """The job's process group (its leader's pid)."""
        assert self.child is not None
        return self.child.pid

    def spawn(self, spec: JobSpec, *, cwd: str, env: Mapping[str, str]) -> Exit | None:
        """Start the child; an Exit (return code 127) if it cannot be started at all."""
        argv = resolve_argv(spec)
        self.tag = env.get(reaper.TAG_VARIABLE, "")
        reaper.become_subreaper()
        read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
        with contextlib.suppress(OSError):
            fcntl.fcntl(read_fd, _F_SETPIPE_SZ, _PIPE_BYTES)
        self.started = time.monotonic()
        try:
            self.child = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=write_fd, stderr=subprocess.STDOUT,
                cwd=cwd, env=dict(env), process_group=0, close_fds=True,
            )
        except (OSError, ValueError) as exc:
            # ValueError: a NUL byte in an argument or the environment (an edited journal,
            # a YAML "\0"). Either way the attempt is recorded as one that could not start,
            # never left `running` for --resume to charge.
            os.close(read_fd)
            os.close(write_fd)
            # Popen names what failed: the program, or the folder it was to run in.
            where = f"its cwd {cwd}: " if getattr(exc, "filename", None) == cwd else ""
            why = (f"{exc} in its command or environment" if isinstance(exc, ValueError)
                   else exc.strerror or str(exc))
            command = shlex.join(argv).replace("\0", "\\0")
            self.output(f"journalq: cannot start {command}: {where}{why}\n".encode())
            return Exit(return_code=127, signal=None, reason="exit",
                        duration=time.monotonic() - self.started)
        os.close(write_fd)
        os.set_blocking(read_fd, False)
        self.read_fd = read_fd
        self.next_beat = self.started + self.timing.heartbeat_seconds
        if self.timing.timeout is not None:
            self.deadline = self.started + self.timing.timeout
        return None

    def output(self, data: bytes) -> None:
        """Hand one chunk of the job's output to its log and its echo."""
        self._log(data)
        if self._echo is not None:
            self._echo(data)

    def line_break(self) -> str:
        """What journalq's own line in the log must start with: a newline after output
        that did not end one, so that `# exit:` is never glued to a progress bar."""
        return "\n" if self._line_open else ""

    def _log(self, data: bytes) -> None:
        if data:
            self._line_open = not data.endswith(b"\n")
        view = memoryview(data)
        while view and not self._log_failed:
            try:
                view = view[os.write(self.log_fd, view):]
            except InterruptedError:
                continue
            except OSError as exc:
                # A full disk must not kill the job (the journal records its outcome), but
                # a log with a hole in it must not pass for a whole one: say so, once.
                self._log_failed = True
                self._warn(f"cannot write {self.log_path or 'the log'} of {self.job} attempt "
                           f"{self.number} ({errno.errorcode.get(exc.errno or 0, 'error')}: "
                           f"{exc.strerror}); its output from here on is not in the log")

    def pump(self) -> None:
        """Move what output is waiting (one large read); notes end of file."""
        try:
            data = os.read(self.read_fd, READ_BYTES)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            self.output(data)
        else:
            self.eof = True

    def has_exited(self) -> bool:
        """Whether the leader has exited, without reaping it (so its pid, the group's
        number, stays reserved until every leftover of the group is killed)."""
        try:
            return os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) \
                is not None
        except ChildProcessError:
            return True

    def stop(self, reason: str, now: float) -> None:
        """Ask the whole group to end (SIGTERM); SIGKILL follows after the grace period.

        Also a job whose exit the loop has not reaped yet: it may have ended of the very
        same stop (Slurm signals every process of a task; a job that checkpoints on
        SIGTERM exits 0), and taking it for done would never finish its work. Run again
        is the safe reading."""
        if self.term_sent is None:
            self.reason, self.term_sent = reason, now
            self.signal_group(signal.SIGTERM)

    def kill_now(self) -> None:
        """SIGKILL the group at once (a second Ctrl-C, or the grace period is over)."""
        if not self.killed:
            self.killed = True
            self.signal_group(signal.SIGKILL)

    def signal_group(self, signum: int) -> None:
        """Send a signal to the job's process group."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signum)

    def wake_at(self) -> float:
        """The next moment this attempt needs the loop: heartbeat, timeout or grace end."""
        times = [self.next_beat]
        if self.deadline is not None and self.term_sent is None:
            times.append(self.deadline)
        if self.term_sent is not None and not self.killed:
            times.append(self.term_sent + self.timing.grace_seconds)
        return min(times)

    def finish(self, interrupted_by: int | None, leaders: set[int]) -> Exit:
        """After the leader exited: take the output left, kill what is left of its group
        and what it left outside it (`reaper`), reap the leader, close the pipe."""
        while not self.eof and _readable(self.read_fd):
            self.pump()
        self.signal_group(signal.SIGKILL)
        assert self.child is not None
        code = self.child.wait()
        if self.tag:
            killed = reaper.kill_leftovers(self.tag, leaders - {self.pid})
            if killed:
                self._log(f"{self.line_break()}# journalq: killed {len(killed)} process(es) "
                          f"the job left behind outside its process group: "
                          f"{' '.join(map(str, killed))}\n".encode())
        os.close(self.read_fd)
        elapsed = time.monotonic() - self.started
        return_code, signum = (code, None) if code >= 0 else (None, -code)
        reason = self.reason
        if reason == "exit" and signum is not None:
            reason = "signal"
        return Exit(return_code, signum, reason, elapsed,
                    interrupted_by if reason == "interrupted" else None)

    def abandon(self) -> None:
        """We cannot record this attempt any more (the journal refused a line): a job
        nobody records is wasted work, and one left running an orphan. Stop it now."""
        if self.child is None:
            return
        self.signal_group(signal.SIGKILL)
        self.child.wait()
        if self.tag:
            reaper.kill_leftovers(self.tag)
        with contextlib.suppress(OSError):
            os.close(self.read_fd)


def _readable(fd: int) -> bool:
    import select

    ready, _, _ = select.select([fd], [], [], 0)
    return bool(ready)
