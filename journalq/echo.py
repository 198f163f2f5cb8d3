"""Jobs' output on the terminal: prefixed with the job's id, line by line and `\\r` update by
`\\r` update, never mixing two jobs' partial lines, and never blocking the runner.

A terminal that stops reading (Ctrl-S, `journalq run | less` left open, a notebook that
stopped polling) must not stop heartbeats and timeouts. So the runner only ever hands bytes
to `Terminal`, which queues them for one writer thread (it touches no journal) and drops
what does not fit in `BUFFER_BYTES`, saying once how much was dropped: the per-attempt log
keeps every byte anyway.
"""

from __future__ import annotations

import collections
import os
import select
import threading
from collections.abc import Callable

from journalq.render import Console

BUFFER_BYTES = 4 << 20


class Terminal:
    """A bounded, non-blocking queue of bytes for stdout and stderr, written by one thread."""

    def __init__(self, out: Callable[[bytes], None] | None = None,
                 err: Callable[[bytes], None] | None = None,
                 limit: int = BUFFER_BYTES) -> None:
        self._sinks = (out or _writer(1), err or _writer(2))
        self._limit = limit
        self._queue: collections.deque[tuple[int, bytes]] = collections.deque()
        self._queued = 0
        self._dropped = 0
        self._gone = False  # the terminal went away (EIO, EPIPE): nothing more is written
        self._lock = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._drain, name="journalq-terminal",
                                        daemon=True)
        self._thread.start()

    def echo(self, data: bytes) -> None:
        """Queue bytes of a job's output for stdout: dropped if the queue is full."""
        self._put(0, data, droppable=True)

    def out(self, data: bytes) -> None:
        """Queue bytes of journalq's own output for stdout (kept, like `err`)."""
        self._put(0, data, droppable=False)

    def err(self, data: bytes) -> None:
        """Queue bytes for stderr (progress, warnings): kept even past the limit, as they
        are few and say what happened."""
        self._put(1, data, droppable=False)

    def dropped(self) -> int:
        """How many bytes of job output were not echoed because nobody read them."""
        return self._dropped

    def _put(self, stream: int, data: bytes, *, droppable: bool) -> None:
        if not data:
            return
        with self._lock:
            if self._gone:
                return
            if droppable and self._queued + len(data) > self._limit:
                self._dropped += len(data)
                return
            self._queue.append((stream, data))
            self._queued += len(data)
            self._lock.notify()

    def _drain(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._closing:
                    self._lock.wait()
                if not self._queue:
                    return
                stream, data = self._queue.popleft()
            try:
                self._sinks[stream](data)
            except OSError:
                with self._lock:
                    self._gone = True
                    self._queue.clear()
                    self._queued = 0
                return
            with self._lock:
                self._queued -= len(data)
                self._lock.notify_all()

    def close(self, timeout: float = 2.0) -> None:
        """Write what is queued, waiting at most `timeout` seconds for a slow reader."""
        with self._lock:
            self._closing = True
            self._lock.notify_all()
        self._thread.join(timeout)


def _writer(fd: int) -> Callable[[bytes], None]:
    return lambda data: _write_all(fd, data)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:  # someone set the terminal non-blocking: wait for it
            select.select([], [fd], [])


class Prefixer:
    """Turns jobs' output chunks into terminal bytes with `<job> | ` at the start of every
    line and after every `\\r`, in one C-level replace per chunk (no Python loop per line).

    It tracks whose partial line (a progress bar without its newline) the terminal shows:
    output from another job first ends that line, so two jobs never share one.
    """

    def __init__(self, sink: Callable[[bytes], None]) -> None:
        self._sink = sink
        self._owner: bytes | None = None  # prefix of the job whose partial line is showing

    def feed(self, prefix: bytes, data: bytes) -> None:
        """Echo one chunk of a job's output."""
        if not data:
            return
        head = b""
        if self._owner is not None and self._owner != prefix:
            head = b"\n"  # end the other job's partial line
            self._owner = None
        if self._owner is None:
            head += prefix
        data = data.replace(b"\r\n", b"\n")
        body = data.replace(b"\n", b"\n" + prefix).replace(b"\r", b"\r" + prefix)
        if data.endswith(b"\n"):
            body = body[: -len(prefix)]
            self._owner = None
        else:
            self._owner = prefix
        self._sink(head + body)

    def end(self, prefix: bytes) -> None:
        """The job is over: end its partial line, if the terminal shows one."""
        if self._owner == prefix:
            self._owner = None
            self._sink(b"\n")


class Echo:
    """Jobs' output on the terminal: one prefixed stream per job, through one `Terminal`."""

    def __init__(self, terminal: Terminal) -> None:
        self._terminal = terminal
        self._prefixer = Prefixer(terminal.echo)

    def for_job(self, job: str) -> Callable[[bytes], None]:
        """Where the job's output goes to be echoed."""
        prefix = f"{job} | ".encode()
        return lambda data: self._prefixer.feed(prefix, data)

    def end(self, job: str) -> None:
        """The job is over: end its partial line, if one shows."""
        self._prefixer.end(f"{job} | ".encode())

    def dropped(self) -> int:
        """Bytes of output not echoed because the terminal did not keep up."""
        return self._terminal.dropped()


def terminal_for(console: Console) -> Terminal:
    """A terminal that writes through `console`'s own streams (a shell's, or a notebook
    cell's), from its writer thread."""
    return Terminal(out=console.echo,
                    err=lambda data: console.err(data.decode(errors="replace").removesuffix("\n")))


def console_on(terminal: Terminal) -> Console:
    """A console whose every line goes through `terminal`: nothing journalq prints while
    jobs run can stall the runner."""
    return Console(out=lambda text: terminal.out(f"{text}\n".encode()),
                   err=lambda text: terminal.err(f"{text}\n".encode()),
                   echo=terminal.echo, write=lambda text: terminal.out(text.encode()))
