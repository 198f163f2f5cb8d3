"""Jobs' output on the terminal: prefixed with the job's id, line by line and `\\r` update by
`\\r` update, never mixing two jobs' partial lines, and never blocking the runner.

A terminal that stops reading (Ctrl-S, `journalq run | less` left open, a notebook that
stopped polling) must not stop heartbeats and timeouts. So the runner only ever hands bytes
to `Terminal`, which queues them for a writer thread per stream (they touch no journal) and
drops job output that does not fit in `BUFFER_BYTES`, saying once how much was dropped: the
per-attempt log keeps every byte anyway. A stalled stdout never holds back stderr.
"""

from __future__ import annotations

import collections
import os
import select
import threading
import time
from collections.abc import Callable

from journalq.render import Console

BUFFER_BYTES = 4 << 20


class Terminal:
    """Bounded, non-blocking queues of bytes for stdout and stderr, written by threads.

    stdout and stderr on one terminal share one queue and thread, so what shows there comes
    in the order it happened (a job's last lines, then the line saying it is done). Apart
    (`journalq run | less`), each has its own, so a stdout nobody reads never holds back
    the progress lines, warnings and summary on stderr."""

    def __init__(self, out: Callable[[bytes], None] | None = None,
                 err: Callable[[bytes], None] | None = None, *, out_fd: int = 1,
                 err_fd: int = 2, limit: int = BUFFER_BYTES,
                 on_gone: Callable[[OSError], None] = lambda _: None) -> None:
        # Given writers (a notebook cell's streams, which never block) share one thread, in
        # order; descriptors share one only when they lead to the same file.
        self.shared = (out is not None or err is not None) or _same_file(out_fd, err_fd)
        self._writers = (out or _writer(out_fd), err or _writer(err_fd))
        first = _Stream(limit, "stdout", on_gone)
        self._streams = (first, first if self.shared else _Stream(limit, "stderr", on_gone))

    def echo(self, data: bytes) -> None:
        """Queue bytes of a job's output for stdout: dropped if the queue is full."""
        self._streams[0].put(self._writers[0], data, droppable=True)

    def out(self, data: bytes) -> None:
        """Queue bytes of journalq's own output for stdout (kept, like `err`)."""
        self._streams[0].put(self._writers[0], data, droppable=False)

    def err(self, data: bytes) -> None:
        """Queue bytes for stderr (progress, warnings): kept even past the limit, as they
        are few and say what happened."""
        self._streams[1].put(self._writers[1], data, droppable=False)

    def dropped(self) -> int:
        """How many bytes of job output were not echoed because nobody read them."""
        return self._streams[0].dropped

    def close(self, timeout: float = 2.0) -> None:
        """Write what is queued, waiting at most `timeout` seconds for a slow reader."""
        deadline = time.monotonic() + timeout
        for stream in self._streams:
            stream.close()
        for stream in self._streams:
            stream.join(max(0.0, deadline - time.monotonic()))


def _same_file(one: int, other: int) -> bool:
    """Whether two descriptors lead to one file (a terminal, a pipe, a log)."""
    try:
        first, second = os.fstat(one), os.fstat(other)
    except OSError:
        return False
    return (first.st_dev, first.st_ino) == (second.st_dev, second.st_ino)


class _Stream:
    """One queue and the thread that writes it (it touches no journal)."""

    def __init__(self, limit: int, name: str, on_gone: Callable[[OSError], None]) -> None:
        self._limit = limit
        self._on_gone = on_gone  # a write failed: the terminal hung up, or the reader left
        self._queue: collections.deque[tuple[Callable[[bytes], None], bytes]] = (
            collections.deque())
        self._queued = 0
        self.dropped = 0
        self._gone = False  # the reader went away (EIO, EPIPE): nothing more is written
        self._lock = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._drain, name=f"journalq-{name}",
                                        daemon=True)
        self._thread.start()

    def put(self, write: Callable[[bytes], None], data: bytes, *, droppable: bool) -> None:
        if not data:
            return
        with self._lock:
            if self._gone:
                return
            if droppable and self._queued + len(data) > self._limit:
                self.dropped += len(data)
                return
            self._queue.append((write, data))
            self._queued += len(data)
            self._lock.notify()

    def _drain(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._closing:
                    self._lock.wait()
                if not self._queue:
                    return
                write, data = self._queue.popleft()
            try:
                write(data)
            except OSError as exc:
                with self._lock:
                    self._gone = True
                    self._queue.clear()
                    self._queued = 0
                self._on_gone(exc)
                return
            with self._lock:
                self._queued -= len(data)

    def close(self) -> None:
        with self._lock:
            self._closing = True
            self._lock.notify_all()

    def join(self, timeout: float) -> None:
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
        if b"\r" in data:  # progress bars; searching for two bytes costs ten times one
            data = data.replace(b"\r\n", b"\n")
            body = data.replace(b"\n", b"\n" + prefix).replace(b"\r", b"\r" + prefix)
        else:
            body = data.replace(b"\n", b"\n" + prefix)
        if data.endswith(b"\n"):
            body = body[: -len(prefix)]
            self._owner = None
        else:
            self._owner = prefix
        self._sink(head + body)

    def end(self, prefix: bytes) -> None:
        """The job is over: end its partial line, if the terminal shows one."""
        if self._owner == prefix:
            self.break_line()

    def break_line(self) -> None:
        """End the partial line the terminal shows, if any (before a line of journalq's)."""
        if self._owner is not None:
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

    def break_line(self) -> None:
        """End a job's partial line (a progress bar) before a line of journalq's."""
        self._prefixer.break_line()


def terminal_for(console: Console) -> Terminal:
    """The terminal for a run: the process's own descriptors under the command line, else
    (a notebook) the streams `console` writes to, from the writer thread."""
    if console.descriptors:
        return Terminal(on_gone=console.on_gone)
    return Terminal(out=console.echo,
                    err=lambda data: console.err(data.decode(errors="replace").removesuffix("\n")))


def console_on(terminal: Terminal, echo: Echo | None = None) -> Console:
    """A console whose every line goes through `terminal`: nothing journalq prints while
    jobs run can stall the runner. On a terminal that shows jobs' output (`echo`), each
    line starts on a line of its own, never after a job's progress bar."""
    def line(put: Callable[[bytes], None], shared: bool) -> Callable[[str], None]:
        def write(text: str) -> None:
            if echo is not None and shared:
                echo.break_line()
            put(f"{text}\n".encode())
        return write

    return Console(out=line(terminal.out, True), err=line(terminal.err, terminal.shared),
                   echo=terminal.echo, write=lambda text: terminal.out(text.encode()))
