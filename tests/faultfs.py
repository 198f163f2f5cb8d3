"""A file system that fails on purpose: LevelDB's fault-injection env and the ALICE crash
model (Pillai et al., OSDI 2014), in miniature.

`FaultyFs` implements `journalq.fs.FileSystem` over the real files under one folder, and
- records every operation as an `Op` (name, path, size, and the errno if it failed);
- `crash_after(n)` lets n operations happen, then raises `Crash` from the next one and from
  every one after it, as if the process had died there. `Crash` is a BaseException, so no
  `except OSError` (or `except Exception`) in journalq can swallow it; closing a descriptor
  still works, as the kernel closes a dead process's descriptors;
- `fail(op, errno, ...)` makes matching operations raise OSError (ENOSPC, EIO, ENOTCONN...);
- `power_loss_image(rng)` is what the disk would hold after a power cut right now: only
  what was made durable. A file's bytes are those of its last fsync; a name (a file created,
  renamed or removed in a folder) is as of the folder's last fsync, so a file created since
  disappears and a rename is undone; bytes appended since the last fsync come back dropped,
  as NUL bytes, or as a prefix of what was written, as the seeded RNG picks (ext4 and xfs
  can each do all three). Folders made by `makedirs` are durable: that is its contract.

Run as a script it puts one behind journalq in a child process:
  python tests/faultfs.py [--fail OP:ERRNO[:MATCH[:SKIP[:TIMES]]]]... [--log FILE] -- ARGS
injects the faults (into operations whose path contains MATCH, after SKIP of them, TIMES
times or forever), runs `journalq ARGS`, and writes every operation to FILE as JSON lines.
"""

from __future__ import annotations

import argparse
import errno
import itertools
import json
import os
import posixpath
import random
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import attrs

import journalq.fs
from journalq.fs import RealFileSystem

T = TypeVar("T")

OPERATIONS = ("open_append", "write", "fsync", "fsync_dir", "truncate", "size", "close", "read",
              "write_file", "copy_file", "replace", "listdir", "exists", "stat", "makedirs",
              "remove")
FATES = ("dropped", "zeros", "prefix")  # what a power loss does to bytes not yet fsync'd


class Crash(BaseException):
    """The process died here (a simulated crash, never caught by journalq)."""


@attrs.frozen
class Op:
    """One file operation as journalq made it; `path` is relative to the root if under it."""

    name: str
    path: str
    size: int = 0
    error: str = ""
    target: str = ""


@attrs.define
class Fault:
    """Operations named `op` whose path contains `match` fail with `code`: all of them after
    the first `skip`, or only the next `times`."""

    op: str
    code: int
    match: str = ""
    skip: int = 0
    times: int | None = None
    seen: int = 0

    def fires(self, name: str, path: str) -> bool:
        if name != self.op or self.match not in path:
            return False
        self.seen += 1
        past = self.seen - self.skip
        return past > 0 and (self.times is None or past <= self.times)


@attrs.frozen
class Image:
    """What a power loss leaves under the root: files (relative path -> bytes) and folders,
    and what happened to each file's bytes that were not yet fsync'd."""

    files: dict[str, bytes]
    folders: frozenset[str]
    fates: dict[str, str]

    def write_to(self, where: Path) -> None:
        """Make the image real under `where`."""
        where.mkdir(parents=True, exist_ok=True)
        for folder in sorted(self.folders):
            (where / folder).mkdir(parents=True, exist_ok=True)
        for name, data in self.files.items():
            (where / name).write_bytes(data)


class FaultyFs:
    """The real files under `root`, with every operation recorded, crashes and failures on
    demand, and the power-loss image of what was durable (see the module docstring)."""

    def __init__(self, root: str | Path) -> None:
        self.root = os.path.abspath(root)
        self.ops: list[Op] = []
        self.crashed = False
        self._real = RealFileSystem()
        self._crash_at: int | None = None
        self._faults: list[Fault] = []
        self._inodes = itertools.count(1)
        self._live: dict[str, int] = {}  # file path -> inode, as the files are now
        self._durable: dict[str, int] = {}  # file path -> inode, as a power loss leaves them
        self._live_folders: set[str] = set()
        self._durable_folders: set[str] = set()
        self._synced: dict[int, bytes] = {}  # inode -> the bytes its last fsync made durable
        self._fds: dict[int, tuple[str, int]] = {}  # descriptor -> (path, inode or 0)
        for folder, folders, files in os.walk(self.root):
            for name in folders:
                self._live_folders.add(posixpath.join(folder, name))
            for name in files:
                path = posixpath.join(folder, name)
                inode = next(self._inodes)
                self._live[path] = inode
                self._synced[inode] = Path(path).read_bytes()
        self._durable = dict(self._live)
        self._durable_folders = set(self._live_folders)

    # ---- faults ----------------------------------------------------------------------------

    def crash_after(self, count: int) -> None:
        """Let `count` operations happen; the next one (and every later one) raises Crash."""
        self._crash_at = count

    def fail(self, op: str, code: int, *, match: str = "", skip: int = 0,
             times: int | None = None) -> None:
        """Make operations named `op` on paths containing `match` raise OSError(`code`)."""
        self._faults.append(Fault(op, code, match, skip, times))

    def _begin(self, name: str, path: str) -> None:
        if self.crashed:
            raise Crash(f"{name} {self._show(path)} after the crash")
        if self._crash_at is not None and len(self.ops) >= self._crash_at:
            self.crashed = True
            raise Crash(f"crashed at operation {len(self.ops) + 1}: {name} {self._show(path)}")
        for fault in self._faults:
            if fault.fires(name, path):
                raise OSError(fault.code, os.strerror(fault.code), path)

    def _op(self, name: str, path: str, action: Callable[[], T],
            size: Callable[[T], int] = lambda _: 0, target: str = "") -> T:
        try:
            self._begin(name, path)
            result = action()
        except OSError as exc:
            code = errno.errorcode.get(exc.errno or 0, "OSError")
            self.ops.append(Op(name, self._show(path), 0, code, self._show(target)))
            raise
        self.ops.append(Op(name, self._show(path), size(result), "", self._show(target)))
        return result

    # ---- the FileSystem interface ----------------------------------------------------------

    def open_append(self, path: str) -> int:
        path = os.path.abspath(path)

        def action() -> int:
            fd = self._real.open_append(path)
            if self._tracked(path) and path not in self._live:
                inode = self._live[path] = next(self._inodes)
                self._synced[inode] = b""
            self._fds[fd] = (path, self._live.get(path, 0))
            return fd

        return self._op("open_append", path, action)

    def write(self, fd: int, data: bytes) -> int:
        return self._op("write", self._fds[fd][0], lambda: self._real.write(fd, data),
                        lambda written: written)

    def fsync(self, fd: int) -> None:
        path, inode = self._fds[fd]

        def action() -> None:
            self._real.fsync(fd)
            if inode:
                self._synced[inode] = self._contents(inode) or b""

        self._op("fsync", path, action)

    def fsync_dir(self, path: str) -> None:
        path = os.path.abspath(path or ".")

        def action() -> None:
            self._real.fsync_dir(path)
            self._sync_entries(path)

        self._op("fsync_dir", path, action)

    def truncate(self, fd: int, size: int) -> None:
        self._op("truncate", self._fds[fd][0], lambda: self._real.truncate(fd, size),
                 lambda _: size)

    def size(self, fd: int) -> int:
        return self._op("size", self._fds[fd][0], lambda: self._real.size(fd), lambda n: n)

    def close(self, fd: int) -> None:
        """Always closes (a dead process's descriptors are closed too); if the crash falls
        here, it is raised by the next operation instead."""
        path, _ = self._fds.pop(fd, ("?", 0))
        if not self.crashed:
            if self._crash_at is not None and len(self.ops) >= self._crash_at:
                self.crashed = True
            else:
                self.ops.append(Op("close", self._show(path)))
        self._real.close(fd)

    def read(self, path: str, offset: int = 0, chunk: int = journalq.fs.CHUNK
             ) -> Iterator[bytes]:
        path = os.path.abspath(path)
        chunks = self._op("read", path,
                          lambda: _opened(self._real.read(path, offset, chunk)),
                          lambda _: max(0, os.path.getsize(path) - offset))
        yield from chunks

    def copy_file(self, source: str, start: int, end: int, target: str,
                  durable: bool = True) -> None:
        """A copy is a write of the bytes it copies (what a crash can leave of it)."""
        data = b"".join(self._real.read(os.path.abspath(source), start))[: end - start]
        self.write_file(target, data, durable)

    def write_file(self, path: str, data: bytes, durable: bool = True) -> None:
        path = os.path.abspath(path)

        def action() -> None:
            self._real.write_file(path, data, durable)
            if self._tracked(path):
                inode = self._live.setdefault(path, next(self._inodes))
                if durable:
                    self._synced[inode] = bytes(data)

        self._op("write_file", path, action, lambda _: len(data))

    def replace(self, source: str, target: str) -> None:
        source, target = os.path.abspath(source), os.path.abspath(target)

        def action() -> None:
            self._real.replace(source, target)
            if source in self._live:
                self._live[target] = self._live.pop(source)

        self._op("replace", source, action, target=target)

    def listdir(self, path: str) -> list[str]:
        path = os.path.abspath(path)
        return self._op("listdir", path, lambda: self._real.listdir(path), len)

    def exists(self, path: str) -> bool:
        path = os.path.abspath(path)
        return self._op("exists", path, lambda: self._real.exists(path))

    def stat(self, path: str) -> os.stat_result:
        path = os.path.abspath(path)
        return self._op("stat", path, lambda: self._real.stat(path))

    def makedirs(self, path: str) -> None:
        path = os.path.abspath(path)

        def action() -> None:
            missing = []
            folder = path
            while not os.path.isdir(folder):
                missing.append(folder)
                folder = posixpath.dirname(folder)
            self._real.makedirs(path)
            for folder in reversed(missing):  # each made durable in its parent, top down
                self._live_folders.add(folder)
                self._sync_entries(posixpath.dirname(folder))

        self._op("makedirs", path, action)

    def remove(self, path: str) -> None:
        path = os.path.abspath(path)

        def action() -> None:
            self._real.remove(path)
            self._live.pop(path, None)

        self._op("remove", path, action)

    # ---- the power-loss model ----------------------------------------------------------------

    def power_loss_image(self, rng: random.Random) -> Image:
        """What the disk under the root holds after a power cut now (see the docstring)."""
        files: dict[str, bytes] = {}
        fates: dict[str, str] = {}
        for path, inode in sorted(self._durable.items()):
            if not self._survives(posixpath.dirname(path)):
                continue
            data = synced = self._synced[inode]
            now = self._contents(inode)
            name = self._show(path)
            if now is not None and len(now) > len(synced) and now.startswith(synced):
                unsynced = now[len(synced):]
                fates[name] = fate = rng.choice(FATES)
                data += {"dropped": b"", "zeros": b"\0" * len(unsynced),
                         "prefix": unsynced[: rng.randint(0, len(unsynced))]}[fate]
            files[name] = data
        folders = frozenset(self._show(f) for f in self._durable_folders if self._survives(f))
        return Image(files, folders, fates)

    def _survives(self, folder: str) -> bool:
        while folder != self.root:
            if folder not in self._durable_folders:
                return False
            folder = posixpath.dirname(folder)
        return True

    def _sync_entries(self, folder: str) -> None:
        """fsync of `folder`: its entries as they are now become durable."""
        for path in [p for p in self._durable if posixpath.dirname(p) == folder]:
            del self._durable[path]
        self._durable.update({p: i for p, i in self._live.items()
                              if posixpath.dirname(p) == folder})
        self._durable_folders = {f for f in self._durable_folders
                                 if posixpath.dirname(f) != folder}
        self._durable_folders |= {f for f in self._live_folders if posixpath.dirname(f) == folder}

    def _contents(self, inode: int) -> bytes | None:
        """The inode's bytes now, or None if no name leads to it any more."""
        path = next((p for p, i in self._live.items() if i == inode), None)
        return None if path is None else Path(path).read_bytes()

    def _tracked(self, path: str) -> bool:
        return path.startswith(self.root + os.sep)

    def _show(self, path: str) -> str:
        return posixpath.relpath(path, self.root) if path and self._tracked(path) else path


def _opened(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """`chunks` with its first chunk read already, so a missing file fails at the call."""
    first = next(chunks, None)
    return iter(()) if first is None else itertools.chain([first], chunks)


def install(fs: journalq.fs.FileSystem) -> None:
    """Route every default file operation of journalq (all go to journalq.fs.REAL) to `fs`."""
    for name in OPERATIONS:
        setattr(journalq.fs.REAL, name, getattr(fs, name))


def main(argv: list[str]) -> int:
    """`journalq ARGS` with faults injected at the seam (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="faultfs")
    parser.add_argument("--fail", action="append", default=[], metavar="OP:ERRNO[:MATCH...]")
    parser.add_argument("--log", metavar="FILE")
    parser.add_argument("args", nargs=argparse.REMAINDER)
    options = parser.parse_args(argv)
    fs = FaultyFs(os.getcwd())
    for spec in options.fail:
        op, code, *given = spec.split(":")
        match, skip, times = [*given, *["", "0", "0"][len(given):]]
        fs.fail(op, getattr(errno, code), match=match, skip=int(skip),
                times=int(times) or None)
    install(fs)
    from journalq import cli

    args = options.args[1:] if options.args[:1] == ["--"] else options.args
    try:
        return cli.main(args)
    finally:
        if options.log:
            with open(options.log, "w") as log:
                log.writelines(json.dumps(attrs.asdict(op)) + "\n" for op in fs.ops)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
