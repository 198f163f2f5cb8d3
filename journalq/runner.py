"""The runner's process plumbing: the signals it turns into a flag for its loop, how a job
is started (argv, environment, its log), how an attempt ended, and stopping a job's group
that a killed runner left behind. The loop is `scheduler`; one attempt is `attempt`."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Mapping
from types import FrameType

import attrs

from journalq import host
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
        if self.received is None or signum == signal.SIGINT:
            self.count += 1
        self.received = self.received or signum

    # Signal handlers can only be set in the main thread (`journalq.run` from a notebook's
    # worker thread has none): the loop then looks at its children at least this often.
    poll_seconds: float | None = None

    def __enter__(self) -> Interrupts:
        if threading.current_thread() is not threading.main_thread():
            self.poll_seconds = 0.2
            return self
        for signum in _STOP_SIGNALS:
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
    happen rather than in 8 KiB blocks; a spec can still turn it off.
    """
    return {**os.environ, "PYTHONUNBUFFERED": "1", **spec.env, **extra}


def open_log(path: str) -> int:
    """Create the attempt's log (its folder exists); never overwrite one: each attempt has
    its own."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC,
                   0o644)


def _kill_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def kill_orphan(pid: int, start: int, grace_seconds: float) -> bool:
    """Stop a job's process group left running by a runner that was killed.

    Only when the group is still the one we spawned: its leader is that very process (same
    pid and start time), or the leader has exited and no process has taken its pid, so the
    members left are the job's own (say, a grandchild that outlived its worker; Linux does
    not hand out a pid while a process group of that number has members).
    Returns whether there was one.
    """
    if not host.group_survives(pid, start):
        return False
    _kill_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline and host.is_alive(pid, start):
        time.sleep(0.05)
    _kill_group(pid, signal.SIGKILL)
    return True


def log_text(fd: int, text: str) -> None:
    """Append journalq's own lines (header, trailer) to a log; a full disk must not kill
    the run (the attempt's own output warns about the log once)."""
    with contextlib.suppress(OSError):
        data = memoryview(text.encode())
        while data:
            data = data[os.write(fd, data):]
