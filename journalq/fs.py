"""The file-system seam: every journal and sync file operation goes through a `FileSystem`.

The real one is a thin layer over `os`. Tests substitute one that records each operation,
crashes after any of them, and on a simulated power loss keeps only what was fsync'd; the
journal and sync code cannot tell the difference.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
from collections.abc import Iterator
from typing import Protocol

from journalq.timestamps import format_ts

CHUNK = 1 << 20


class FileSystem(Protocol):
    """The operations the journal and sync code may perform on files."""

    def open_append(self, path: str) -> int:
        """A descriptor for appending to `path`, created (mode 0644) if missing."""
        ...

    def write(self, fd: int, data: bytes) -> int:
        """Write once; returns how many bytes the kernel took (maybe fewer than asked)."""
        ...

    def fsync(self, fd: int) -> None:
        """Make everything written to `fd` durable."""
        ...

    def fsync_dir(self, path: str) -> None:
        """Make the directory's entries (files created or renamed in it) durable."""
        ...

    def truncate(self, fd: int, size: int) -> None:
        """Cut the file open on `fd` back to `size` bytes."""
        ...

    def size(self, fd: int) -> int:
        """The current size of the file open on `fd`."""
        ...

    def close(self, fd: int) -> None:
        """Release the descriptor."""
        ...

    def read(self, path: str, offset: int = 0, chunk: int = CHUNK) -> Iterator[bytes]:
        """The file's bytes from `offset`, in chunks of `chunk` bytes; FileNotFoundError if
        it is missing."""
        ...

    def write_file(self, path: str, data: bytes, durable: bool = True) -> None:
        """Create or overwrite `path` with `data`, fsync'd unless not `durable`."""
        ...

    def copy_file(self, source: str, start: int, end: int, target: str,
                  durable: bool = True) -> None:
        """Create or overwrite `target` with bytes [start, end) of `source`, copied by the
        kernel where it can (no pass through this process), fsync'd unless not `durable`."""
        ...

    def replace(self, source: str, target: str) -> None:
        """Atomically rename `source` over `target`."""
        ...

    def listdir(self, path: str) -> list[str]:
        """The names in a directory."""
        ...

    def exists(self, path: str) -> bool:
        """Whether `path` exists."""
        ...

    def stat(self, path: str) -> os.stat_result:
        """The file's metadata (following a symlink); FileNotFoundError if it is missing."""
        ...

    def makedirs(self, path: str) -> None:
        """Create `path` and its parents if missing, durably (each new folder's parent is
        fsync'd, or a power loss could take the folder and the fsync'd files in it)."""
        ...

    def remove(self, path: str) -> None:
        """Delete a file if it exists."""
        ...


class RealFileSystem:
    """The operating system's files, with the durability calls made explicit."""

    def open_append(self, path: str) -> int:
        return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)

    def write(self, fd: int, data: bytes) -> int:
        return os.write(fd, data)

    def fsync(self, fd: int) -> None:
        os.fsync(fd)

    def fsync_dir(self, path: str) -> None:
        _fsync_dir(path)

    def truncate(self, fd: int, size: int) -> None:
        os.ftruncate(fd, size)

    def size(self, fd: int) -> int:
        return os.fstat(fd).st_size

    def close(self, fd: int) -> None:
        os.close(fd)

    def read(self, path: str, offset: int = 0, chunk: int = CHUNK) -> Iterator[bytes]:
        with open(path, "rb", buffering=0) as handle:
            if offset:
                handle.seek(offset)
            while data := handle.read(chunk):
                yield data

    def copy_file(self, source: str, start: int, end: int, target: str,
                  durable: bool = True) -> None:
        source_fd = os.open(source, os.O_RDONLY | os.O_CLOEXEC)
        try:
            target_fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC,
                                0o644)
            try:
                _copy_range(source_fd, target_fd, start, end)
                if durable:
                    os.fsync(target_fd)
            finally:
                os.close(target_fd)
        finally:
            os.close(source_fd)

    def write_file(self, path: str, data: bytes, durable: bool = True) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)

    def replace(self, source: str, target: str) -> None:
        os.replace(source, target)

    def listdir(self, path: str) -> list[str]:
        return os.listdir(path)

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def stat(self, path: str) -> os.stat_result:
        return os.stat(path)

    def makedirs(self, path: str) -> None:
        missing = []
        folder = os.path.abspath(path)
        while not os.path.isdir(folder):
            missing.append(folder)
            folder = os.path.dirname(folder)
        os.makedirs(path, exist_ok=True)
        for created in reversed(missing):
            _fsync_dir(os.path.dirname(created))

    def remove(self, path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)


def _copy_range(source_fd: int, target_fd: int, start: int, end: int) -> None:
    """Copy bytes [start, end) of one file into another at its start: copy_file_range, else
    sendfile (another file system: Drive's FUSE mount), else read and write."""
    offset, target = start, 0
    while offset < end:
        try:
            copied = os.copy_file_range(source_fd, target_fd, end - offset, offset, target)
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP,
                                 errno.EBADF):
                raise
            break
        if copied == 0:
            break
        offset, target = offset + copied, target + copied
    if offset < end:
        os.lseek(target_fd, target, os.SEEK_SET)
        while offset < end:
            try:
                copied = os.sendfile(target_fd, source_fd, offset, end - offset)
            except OSError as exc:
                if exc.errno not in (errno.EINVAL, errno.ENOSYS):
                    raise
                copied = _read_write(source_fd, target_fd, offset, end)
            if copied == 0:
                raise OSError(errno.EIO, f"the source ended {end - offset} bytes early")
            offset += copied


def _read_write(source_fd: int, target_fd: int, offset: int, end: int) -> int:
    data = os.pread(source_fd, min(CHUNK, end - offset), offset)
    view = memoryview(data)
    while view:
        view = view[os.write(target_fd, view):]
    return len(data)


def _fsync_dir(path: str) -> None:
    fd = os.open(path or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


REAL: FileSystem = RealFileSystem()


def aside_path(fs: FileSystem, path: str, kind: str, micros: int) -> str:
    """`<path>.<kind>-<time>` (a torn tail moved aside, a repair's backup), never the name
    of a file already there: a clock that went back must not overwrite a saved copy."""
    stamp = format_ts(micros).replace(":", "").replace("-", "")
    candidate = f"{path}.{kind}-{stamp}"
    number = 1
    while fs.exists(candidate):
        number += 1
        candidate = f"{path}.{kind}-{stamp}-{number}"
    return candidate

STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


@contextlib.contextmanager
def held_stops() -> Iterator[None]:
    """Stop signals wait (the kernel holds them) while a line is written and counted: a
    Ctrl-C raised between the two left the line in the file but not in our size, and the
    next push cut the sync copy mid-line. Delivered the moment the section ends."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
