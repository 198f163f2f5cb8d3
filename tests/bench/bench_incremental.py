"""P4 incremental status: `status` after one new append to a 1,000,000-event journal that
has a fold checkpoint, against `status` on the same bytes without one (a full replay).

What it measures: `journal_gen.py` writes the journal and its config; `journalq init` on
them (which changes nothing) leaves the checkpoint `<journal>.fold` when its session ends;
then one event is appended, as a runner would. The same bytes are copied to a second
journal with no checkpoint. Both are timed with `journalq status --state J`.

Target (issue 6): <= 0.05x a full replay.

    python tests/bench/bench_incremental.py [--jobs 10000] [--events 1000000] [--runs 5]
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from benchlib import (
    Case,
    Row,
    alternate,
    arg_parser,
    bench_env,
    journalq_command,
    print_table,
    save_json,
    scratch,
    size_args,
    spread_rows,
)
from journal_gen import generate

from journalq import codec
from journalq import events as ev
from journalq.clock import now_micros
from journalq.timestamps import format_ts


def main() -> int:
    parser = size_args(arg_parser(__doc__, runs=5))
    args = parser.parse_args()
    with scratch("incremental", args.keep) as tmp:
        journal, config = tmp / "bench.jsonl", tmp / "bench.yaml"
        stats = generate(journal, args.jobs, args.events, config_path=config)
        jq = journalq_command()
        subprocess.run([*jq, "init", "--config", str(config), "--state", str(journal)],
                       check=True, capture_output=True, env=bench_env(tmp))
        if not Path(f"{journal}.fold").exists():
            raise SystemExit("init left no checkpoint beside the journal")
        appended = ev.JobRetried(id="bench:1", ts=format_ts(now_micros()), session="bench",
                                 job="no-such-job")
        with journal.open("ab") as handle:
            handle.write(codec.encode(appended))
        plain = tmp / "plain.jsonl"
        shutil.copyfile(journal, plain)
        incremental = Case("status, checkpoint + 1 new line",
                           lambda _: ([*jq, "status", "--state", str(journal)], str(tmp)),
                           rss=True)
        full = Case("status, full replay",
                    lambda _: ([*jq, "status", "--state", str(plain)], str(tmp)), rss=True)
        cases = [incremental, full]
        alternate(cases, args.runs, env=bench_env(tmp))
        ratio = incremental.median / full.median
        rows = [
            Row("status after one append", f"{incremental.median:.2f} s", "full replay",
                f"{full.median:.2f} s", ratio, "<= 0.05x", ratio <= 0.05),
            Row("peak RSS", f"{incremental.maxrss_mb:.0f} MB", "full replay",
                f"{full.maxrss_mb:.0f} MB", None, "(info)", None),
        ]
        rows += spread_rows(cases, lambda case: f"{case.median:.2f} s")
        title = (f"P4 incremental status ({stats.events:,} events, {stats.jobs:,} jobs; "
                 f"median of {args.runs})")
        print_table(title, rows)
        save_json(args.json, title, rows, cases)
    return 0


if __name__ == "__main__":
    sys.exit(main())
