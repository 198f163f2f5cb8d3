"""Run `journalq ARGS` counting, through the file-system seam, what it does to each file:
`python tests/readcount.py --log counts.json -- status --state j.jsonl`.

Every journal and sync-folder operation goes through `journalq.fs.REAL` (the seam), so
wrapping its methods counts, per absolute path, whichever module does it:

- `read`: the bytes the process's reads yielded (a replay, a checkpoint's fingerprint, a
  merge's pull);
- `copied`: the bytes `copy_file` moved out of a file by the kernel (copy_file_range or
  sendfile: a push), which never pass through the process and so are not in `read`;
- `written`: the bytes put into a file, by `write`, `write_file` or `copy_file` (a temp
  file renamed into place counts under its temp name, as Drive uploads what lands);
- `writes`, `fsyncs`: how many `write` calls and fsyncs each file had;
- `copies`: every `copy_file` in order, as [source, start, end, target].

The log is `{"read": {path: bytes}, "copied": ..., "written": ..., "writes": ...,
"fsyncs": ..., "copies": [...]}`.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
from collections.abc import Iterator

import journalq.fs

KINDS = ("read", "copied", "written", "writes", "fsyncs")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="readcount")
    parser.add_argument("--log", required=True)
    parser.add_argument("args", nargs=argparse.REMAINDER)
    options = parser.parse_args(argv)
    counts = {kind: collections.Counter[str]() for kind in KINDS}
    copies: list[tuple[str, int, int, str]] = []
    paths: dict[int, str] = {}  # descriptor -> the file `open_append` opened on it
    real = journalq.fs.REAL
    real_read, real_copy, real_write_file = real.read, real.copy_file, real.write_file
    real_open, real_write, real_fsync = real.open_append, real.write, real.fsync

    def read(path: str, offset: int = 0, chunk: int = journalq.fs.CHUNK) -> Iterator[bytes]:
        for data in real_read(path, offset, chunk):
            counts["read"][os.path.abspath(path)] += len(data)
            yield data

    def copy_file(source: str, start: int, end: int, target: str,
                  durable: bool = True) -> None:
        real_copy(source, start, end, target, durable)
        counts["copied"][os.path.abspath(source)] += end - start
        counts["written"][os.path.abspath(target)] += end - start
        counts["fsyncs"][os.path.abspath(target)] += durable
        copies.append((os.path.abspath(source), start, end, os.path.abspath(target)))

    def write_file(path: str, data: bytes, durable: bool = True) -> None:
        real_write_file(path, data, durable)
        counts["written"][os.path.abspath(path)] += len(data)
        counts["fsyncs"][os.path.abspath(path)] += durable

    def open_append(path: str) -> int:
        fd = real_open(path)
        paths[fd] = os.path.abspath(path)
        return fd

    def write(fd: int, data: bytes) -> int:
        written = real_write(fd, data)
        counts["written"][paths.get(fd, f"fd {fd}")] += written
        counts["writes"][paths.get(fd, f"fd {fd}")] += 1
        return written

    def fsync(fd: int) -> None:
        real_fsync(fd)
        counts["fsyncs"][paths.get(fd, f"fd {fd}")] += 1

    for name, wrapper in (("read", read), ("copy_file", copy_file),
                          ("write_file", write_file), ("open_append", open_append),
                          ("write", write), ("fsync", fsync)):
        setattr(real, name, wrapper)
    from journalq import cli

    args = options.args[1:] if options.args[:1] == ["--"] else options.args
    try:
        return cli.main(args)
    finally:
        with open(options.log, "w") as log:
            json.dump({**{kind: dict(counter) for kind, counter in counts.items()},
                       "copies": copies}, log)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
