"""What running jobs needs around the loop: how an attempt ended (`Exit`), stop signals
turned into a flag and a wake-up (`Interrupts`), a child's argv, environment and log, and
stopping what a killed runner left behind (`kill_orphans`).

The loop is `journalq.scheduler`; one running attempt (its process group, output, timeout
and grace kill) is `journalq.attempt`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from types import FrameType

import attrs

from journalq import host
from journalq.errors import Hangup, Terminated, UsageError
from journalq.state import JobSpec

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@attrs.frozen
class Exit:
    """How an attempt ended: its exit status and why it stopped."""

    return_code: int | None
    signal: int | None
    reason: str  # exit | signal | timeout | interrupted
    duration: float
    interrupted_by: int | None = None

    @property
    def succeeded(self) -> bool:
        """Exited by itself with status 0."""
        return self.reason == "exit" and self.return_code == 0


class Interrupts:
    """Turns SIGINT/SIGTERM/SIGHUP into a flag the run loop polls, and wakes it up.

    Python retries `select` after a signal handler runs (PEP 475), so a handler that only
    sets a flag would not be noticed until the next timeout; the wakeup fd makes `select`
    return at once. SIGCHLD gets a no-op handler for the same reason: a child's exit wakes us.
    """

    def __init__(self) -> None:
        self.received: int | None = None
        self.count = 0
        self._read_fd, self._write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._previous: dict[int, object] = {}
        self._previous_wakeup = -1

    @property
    def wakeup_fd(self) -> int:
        """Readable whenever a signal arrived."""
        return self._read_fd

    def drain(self) -> None:
        """Empty the wakeup pipe."""
        with contextlib.suppress(BlockingIOError):
            while os.read(self._read_fd, 512):
                pass

    def _handle(self, signum: int, _: FrameType | None) -> None:
        if not self.armed:
            raise (Hangup() if signum == signal.SIGHUP
                   else Terminated() if signum == signal.SIGTERM else KeyboardInterrupt())
        if self.received is None or signum == signal.SIGINT:
            self.count += 1
        self.received = self.received or signum

    # Until the loop starts jobs (a new runtime's merge, recovery, the checks before), a
    # stop signal ends `run` at once, as it ends every other command: no job runs that it
    # would leave behind. From `arm` on, it is a flag the loop acts on (jobs stop first).
    armed = False

    def arm(self) -> None:
        """From now on, a stop signal is for the loop to act on."""
        self.armed = True

    # Signal handlers can only be set in the main thread (`journalq.run` from a notebook's
    # worker thread has none): the loop then looks at its children at least this often.
    poll_seconds: float | None = None

    def __enter__(self) -> Interrupts:
        if threading.current_thread() is not threading.main_thread():
            if signal.getsignal(signal.SIGCHLD) == signal.SIG_IGN:
                # The kernel then reaps every child itself: each job would "exit 0" whatever
                # it returned. The main thread can set a handler over it; a thread cannot.
                os.close(self._read_fd)
                os.close(self._write_fd)
                raise UsageError(
                    "SIGCHLD is ignored in this process, so the jobs' exit statuses would "
                    "be lost; call journalq.run from the main thread, or restore it first "
                    "(signal.signal(signal.SIGCHLD, signal.SIG_DFL))")
            self.poll_seconds = 0.2
            return self
        for signum in _STOP_SIGNALS:
            # A signal ignored when we started was ignored on purpose: `nohup journalq run`
            # must survive the terminal closing, and a shell's background job Ctrl-C.
            if signal.getsignal(signum) == signal.SIG_IGN:
                continue
            self._previous[signum] = signal.signal(signum, self._handle)
        self._previous[signal.SIGCHLD] = signal.signal(signal.SIGCHLD, lambda *_: None)
        self._previous_wakeup = signal.set_wakeup_fd(self._write_fd, warn_on_full_buffer=False)
        return self

    def __exit__(self, *_: object) -> None:
        if self._previous:
            signal.set_wakeup_fd(self._previous_wakeup)
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
        os.close(self._read_fd)
        os.close(self._write_fd)


def resolve_argv(spec: JobSpec) -> list[str]:
    """The argv to exec: `python`/`python3` mean the interpreter journalq runs under, and a
    shell command runs through /bin/sh only because the config said `shell: true`."""
    if spec.shell:
        return ["/bin/sh", "-c", spec.argv[0]]
    argv = list(spec.argv)
    if argv and argv[0] in ("python", "python3"):
        argv[0] = sys.executable
    return argv


def child_env(spec: JobSpec, extra: Mapping[str, str]) -> dict[str, str]:
    """The child's environment: ours, the spec's, and journalq's own variables on top.

    PYTHONUNBUFFERED makes a Python worker's prints reach the log and the terminal as they
    happen rather than in 8 KiB blocks; a spec can still turn it off. A shell command finds
    `python` on PATH: run from a venv that is not activated, journalq puts the venv's bin
    first, as activating it would, so that `python` there means journalq's interpreter as
    it does in an argv (`resolve_argv`). Outside a venv (/usr/bin/python3, Colab's kernel)
    PATH is left alone: /usr/bin first would shadow /usr/local/bin. A spec's PATH is its own.
    """
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **spec.env, **extra}
    if spec.shell and "PATH" not in spec.env and sys.prefix != sys.base_prefix:
        env["PATH"] = os.pathsep.join(filter(None, (os.path.dirname(sys.executable),
                                                    env.get("PATH"))))
    return env


def open_log(path: str) -> int:
    """Create the attempt's log (its folder exists); never overwrite one: each attempt has
    its own."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC,
                   0o644)


def _kill_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except OSError as exc:
            if exc.errno == errno.EINTR:
                continue
            return  # a full disk must not kill the job; the journal will report it
        view = view[written:]


def kill_orphan(pid: int, start: int, grace_seconds: float) -> bool:
    """Stop a job's process group left running by a runner that was killed (see
    `kill_orphans`); returns whether there was one."""
    return bool(kill_orphans([(pid, start)], {}, grace_seconds))


def kill_orphans(groups: Sequence[tuple[int, int]], loose: Mapping[int, int],
                 grace_seconds: float) -> list[tuple[int, int]]:
    """Stop what a killed runner left running, all at once: SIGTERM to every job process
    group in `groups` (leader pid, leader start) and to every `loose` process (pid ->
    start: its attempts' processes found by their tag, a setsid daemon among them), one
    grace period for all of them, then SIGKILL to what is left. A runner of eight slots
    must not cost eight grace periods. Returns the groups that were there.

    A group is stopped only while it is still the one we spawned: its leader is that very
    process (same pid and start time), or the leader has exited and no process has taken
    its pid, so the members left are the job's own (Linux does not hand out a pid while a
    process group of that number has members).
    """
    live = [(pid, start) for pid, start in groups if host.group_survives(pid, start)]
    for pid, _ in live:
        _kill_group(pid, signal.SIGTERM)
    for pid, start in loose.items():
        _kill_process(pid, start, signal.SIGTERM)
    watched = [*live, *loose.items()]
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline and any(host.is_alive(p, s) for p, s in watched):
        time.sleep(0.05)
    for pid, start in live:
        if host.group_survives(pid, start):
            _kill_group(pid, signal.SIGKILL)
    for pid, start in loose.items():
        _kill_process(pid, start, signal.SIGKILL)
    return live


def _kill_process(pid: int, start: int, signum: int) -> None:
    """Signal that very process (same pid and start time), if it still runs (a zombie
    has ended: `is_alive` says no)."""
    if host.is_alive(pid, start):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)


def log_text(fd: int, text: str) -> None:
    """Append journalq's own lines (header, trailer) to a log."""
    _write_all(fd, text.encode())
