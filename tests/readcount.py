"""Run `journalq ARGS` counting, through the file-system seam, the bytes each file's reads
yield: `python tests/readcount.py --log counts.json -- status --state j.jsonl`.

Every journal read goes through `journalq.fs.REAL.read` (the seam), so wrapping it counts
what a command reads of the local journal, however many times it reads it.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
from collections.abc import Iterator

import journalq.fs


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="readcount")
    parser.add_argument("--log", required=True)
    parser.add_argument("args", nargs=argparse.REMAINDER)
    options = parser.parse_args(argv)
    counts: collections.Counter[str] = collections.Counter()
    real_read = journalq.fs.REAL.read

    def counting(path: str, offset: int = 0, chunk: int = journalq.fs.CHUNK
                 ) -> Iterator[bytes]:
        for data in real_read(path, offset, chunk):
            counts[os.path.abspath(path)] += len(data)
            yield data

    journalq.fs.REAL.read = counting  # type: ignore[method-assign]
    from journalq import cli

    args = options.args[1:] if options.args[:1] == ["--"] else options.args
    try:
        return cli.main(args)
    finally:
        with open(options.log, "w") as log:
            json.dump(dict(counts), log)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
