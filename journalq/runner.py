"""Run one attempt of one job: a child in its own process group, watched until it exits.

The child's stdout and stderr go to a per-attempt log (never overwritten) and, line by line
with the job id in front, to the terminal. While it runs, the runner heartbeats; past its
timeout, or when the operator stops journalq, the whole process group gets SIGTERM and,
after a grace period, SIGKILL, so no grandchild outlives its job.
"""

from __future__ import annotations

import contextlib
import errno
import os
import selectors
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
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

    def __enter__(self) -> Interrupts:
        for signum in _STOP_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)
        self._previous[signal.SIGCHLD] = signal.signal(signal.SIGCHLD, lambda *_: None)
        self._previous_wakeup = signal.set_wakeup_fd(self._write_fd, warn_on_full_buffer=False)
        return self

    def __exit__(self, *_: object) -> None:
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


class LineEcho:
    """Writes a child's output to the terminal with `<job> | ` before every line."""

    def __init__(self, prefix: str, sink: Callable[[bytes], None]) -> None:
        self._prefix = prefix.encode()
        self._sink: Callable[[bytes], None] | None = sink
        self._partial = b""

    def feed(self, data: bytes) -> None:
        """Echo every complete line in `data`; keep a trailing partial line for later."""
        *lines, self._partial = (self._partial + data).split(b"\n")
        if lines:
            self._emit(b"".join(self._prefix + line + b"\n" for line in lines))

    def flush(self) -> None:
        """Echo a final line that had no newline."""
        if self._partial:
            self._emit(self._prefix + self._partial + b"\n")
            self._partial = b""

    def _emit(self, data: bytes) -> None:
        if self._sink is None:
            return
        try:
            self._sink(data)
        except OSError:
            # The terminal went away (`journalq run | head`, a closed notebook tab): the log
            # still gets every line, and the jobs must not die of it. Stop echoing.
            self._sink = None


@attrs.frozen
class Watch:
    """How to watch one attempt: heartbeat cadence, timeout and the kill grace period, and
    `due`/`on_due`: another timer of the runner's (a deferred sync push) that must fire on
    time while the job runs."""

    heartbeat_seconds: float
    timeout: float | None
    grace_seconds: float
    due: Callable[[], float | None] = lambda: None
    on_due: Callable[[], None] = lambda: None


def run_attempt(
    spec: JobSpec,
    *,
    cwd: str,
    env: Mapping[str, str],
    log_fd: int,
    watch: Watch,
    interrupts: Interrupts,
    on_spawn: Callable[[int], None],
    on_heartbeat: Callable[[], None],
    echo: LineEcho | None,
) -> Exit:
    """Spawn the job, pump its output, heartbeat, enforce its timeout, and reap it."""
    argv = resolve_argv(spec)
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    started = time.monotonic()
    try:
        child = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=write_fd, stderr=subprocess.STDOUT,
            cwd=cwd, env=dict(env), process_group=0, close_fds=True,
        )
    except OSError as exc:
        os.close(read_fd)
        os.close(write_fd)
        message = f"journalq: cannot start {shlex.join(argv)}: {exc.strerror or exc}\n"
        _write_all(log_fd, message.encode())
        if echo:
            echo.feed(message.encode())
        return Exit(return_code=127, signal=None, reason="exit",
                    duration=time.monotonic() - started)
    os.close(write_fd)
    try:
        on_spawn(child.pid)
        os.set_blocking(read_fd, False)
        reason = _watch(child, read_fd, log_fd, watch, interrupts, on_heartbeat, echo, started)
    except BaseException:
        # We cannot watch it any more (the journal refused a heartbeat, say): a job nobody
        # records is wasted work, and one left running would be an orphan. Stop it now.
        _kill_group(child.pid, signal.SIGKILL)
        child.wait()
        os.close(read_fd)
        raise
    _drain(read_fd, log_fd, echo)
    # The group leader is still a zombie (waitid WNOWAIT), so its pgid cannot be reused yet:
    # killing the group now reaches only this job's leftover processes.
    _kill_group(child.pid, signal.SIGKILL)
    code = child.wait()
    os.close(read_fd)
    if echo:
        echo.flush()
    elapsed = time.monotonic() - started
    return_code, signum = (code, None) if code >= 0 else (None, -code)
    if reason == "exit" and signum is not None:
        reason = "signal"
    interrupted_by = interrupts.received if reason == "interrupted" else None
    return Exit(return_code, signum, reason, elapsed, interrupted_by)


def _watch(child: subprocess.Popen[bytes], read_fd: int, log_fd: int, watch: Watch,
           interrupts: Interrupts, on_heartbeat: Callable[[], None], echo: LineEcho | None,
           started: float) -> str:
    """Wait for the child to exit while pumping output; returns why it stopped."""
    reason = "exit"
    term_sent: float | None = None
    killed = False
    next_beat = started + watch.heartbeat_seconds
    deadline = started + watch.timeout if watch.timeout is not None else None
    with selectors.DefaultSelector() as selector:
        selector.register(read_fd, selectors.EVENT_READ)
        selector.register(interrupts.wakeup_fd, selectors.EVENT_READ)
        while not _has_exited(child.pid):
            now = time.monotonic()
            if interrupts.received is not None and term_sent is None:
                reason, term_sent = "interrupted", now
                _kill_group(child.pid, signal.SIGTERM)
            elif deadline is not None and now >= deadline and term_sent is None:
                reason, term_sent = "timeout", now
                _kill_group(child.pid, signal.SIGTERM)
            hurry = interrupts.count >= 2  # a second Ctrl-C means now
            if term_sent is not None and not killed and (
                    hurry or now >= term_sent + watch.grace_seconds):
                killed = True
                _kill_group(child.pid, signal.SIGKILL)
            if now >= next_beat:
                on_heartbeat()
                next_beat = now + watch.heartbeat_seconds
            due = watch.due()
            if due is not None and now >= due:
                watch.on_due()
                due = watch.due()
            wake = [next_beat] if due is None else [next_beat, due]
            if deadline is not None and term_sent is None:
                wake.append(deadline)
            if term_sent is not None and not killed:
                wake.append(term_sent + watch.grace_seconds)
            for key, _ in selector.select(max(0.0, min(wake) - time.monotonic())):
                if key.fd == read_fd:
                    if not _pump(read_fd, log_fd, echo):
                        selector.unregister(read_fd)
                else:
                    interrupts.drain()
    return reason


def _has_exited(pid: int) -> bool:
    """Whether the child has exited, without reaping it (so its pid stays reserved)."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _pump(read_fd: int, log_fd: int, echo: LineEcho | None) -> bool:
    """Move available output to the log and the echo; False at end of file."""
    try:
        data = os.read(read_fd, 65536)
    except BlockingIOError:
        return True
    if not data:
        return False
    _write_all(log_fd, data)
    if echo:
        echo.feed(data)
    return True


def _drain(read_fd: int, log_fd: int, echo: LineEcho | None) -> None:
    """Take what output is left, without waiting for processes that still hold the pipe."""
    with contextlib.suppress(OSError):
        while _pump(read_fd, log_fd, echo):
            if not _readable(read_fd):
                break


def _readable(fd: int) -> bool:
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        return bool(selector.select(0))


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
    while time.monotonic() < deadline and any(_running(p, s) for p, s in watched):
        time.sleep(0.05)
    for pid, start in live:
        if host.group_survives(pid, start):
            _kill_group(pid, signal.SIGKILL)
    for pid, start in loose.items():
        _kill_process(pid, start, signal.SIGKILL)
    return live


def _running(pid: int, start: int) -> bool:
    """Whether that very process still runs (a zombie nobody reaped has ended)."""
    if not host.is_alive(pid, start):
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            data = stat.read()
    except OSError:
        return True  # no /proc: alive, as `is_alive` said
    return data[data.rindex(b")") + 2:][:1] not in b"ZX"


def _kill_process(pid: int, start: int, signum: int) -> None:
    """Signal that very process (same pid and start time), if it still runs."""
    if _running(pid, start):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)


@contextlib.contextmanager
def opened_log(path: str) -> Iterator[int]:
    """The attempt's log descriptor, closed afterwards."""
    fd = open_log(path)
    try:
        yield fd
    finally:
        os.close(fd)


def log_text(fd: int, text: str) -> None:
    """Append journalq's own lines (header, trailer) to a log."""
    _write_all(fd, text.encode())
