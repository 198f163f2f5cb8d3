"""Run `journalq ARGS` noting, through the file-system seam, every push of this session's
copy to the sync folder: `python tests/pushcount.py --log pushes.json -- run --config c.yaml`.

A push ends with the rename of a whole segment over `<queue>.<session>[-n].jsonl` (see
`journalq.sync`), and every rename goes through `journalq.fs.REAL.replace`; wrapping it
notes each push as (wall time, file name, bytes of the journal it holds), however close
together pushes come (polling the folder from outside would miss those that come fast).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time

import journalq.fs

COPY = re.compile(r"[^/]+\.[0-9a-f]{12}(-\d+)?\.jsonl")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="pushcount")
    parser.add_argument("--log", required=True)
    parser.add_argument("args", nargs=argparse.REMAINDER)
    options = parser.parse_args(argv)
    pushes: list[tuple[float, str, int]] = []
    real_replace = journalq.fs.REAL.replace

    def noting(source: str, target: str) -> None:
        real_replace(source, target)
        name = os.path.basename(target)
        if COPY.fullmatch(name):
            pushes.append((time.time(), name, os.stat(target).st_size))

    journalq.fs.REAL.replace = noting  # type: ignore[method-assign]
    from journalq import cli

    args = options.args[1:] if options.args[:1] == ["--"] else options.args
    try:
        return cli.main(args)
    finally:
        with open(options.log, "w") as log:
            json.dump(pushes, log)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
