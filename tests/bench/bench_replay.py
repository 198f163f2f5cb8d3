"""P2 replay: `journalq status --json` on a 1,000,000-event journal vs a stdlib json.loads loop.

What it measures: wall time and peak RSS of `journalq status --state J --json` (stdout to
/dev/null) on a journal made by `journal_gen.py` (10,000 jobs, ~97% heartbeats, ~180 MB),
against a fresh `python -c` process that does nothing but `json.loads` every line of the
same file (the floor for any pure-Python replay). `status` without --json is shown for
information (it separates the fold from the JSON rendering). Peak RSS comes from GNU
`/usr/bin/time -f %M` around each command (see benchlib.measure).

Targets (issue 6): status --json <= 1.5x the json.loads loop; peak RSS <= 64 MB (memory
grows with jobs, not events).

    python tests/bench/bench_replay.py [--jobs 10000] [--events 1000000] [--runs 5]
"""

from __future__ import annotations

import sys

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
)
from journal_gen import generate

JSON_LOOP = """\
import json, sys
loads = json.loads
with open(sys.argv[1], "rb") as handle:
    for line in handle:
        loads(line)
"""
RSS_TARGET_MB = 64


def main() -> int:
    parser = size_args(arg_parser(__doc__, runs=5))
    parser.add_argument("--no-table", action="store_true",
                        help="skip the informational `status` (table) case")
    args = parser.parse_args()
    with scratch("replay", args.keep) as tmp:
        journal = tmp / "bench.jsonl"
        stats = generate(journal, args.jobs, args.events)
        print(f"P2: generated {journal}: {stats.events:,} events, {stats.bytes / 1e6:.0f} MB, "
              f"{stats.jobs:,} jobs in {stats.seconds:.1f} s", file=sys.stderr)
        jq = journalq_command()
        status_json = Case("journalq status --json",
                           lambda _: ([*jq, "status", "--state", str(journal), "--json"], None),
                           rss=True)
        loop = Case("python json.loads loop",
                    lambda _: ([sys.executable, "-c", JSON_LOOP, str(journal)], None), rss=True)
        cases = [status_json, loop]
        table = None
        if not args.no_table:
            table = Case("journalq status (table)",
                         lambda _: ([*jq, "status", "--state", str(journal)], None), rss=True)
            cases.append(table)
        alternate(cases, args.runs, env=bench_env(tmp))
        ratio = status_json.median / loop.median
        rows = [
            Row(f"status --json, {stats.events:,} events", f"{status_json.median:.2f} s",
                "json.loads loop", f"{loop.median:.2f} s", ratio, "<= 1.5x", ratio <= 1.5),
            Row("status --json, peak RSS", f"{status_json.maxrss_mb:.0f} MB",
                "json.loads loop", f"{loop.maxrss_mb:.0f} MB", None,
                f"<= {RSS_TARGET_MB} MB", status_json.maxrss_mb <= RSS_TARGET_MB),
        ]
        if table is not None:
            rows.append(Row("status (table)", f"{table.median:.2f} s", "json.loads loop",
                            f"{loop.median:.2f} s", table.median / loop.median, "(info)",
                            None))
            rows.append(Row("status (table), peak RSS", f"{table.maxrss_mb:.0f} MB", "", "",
                            None, "(info)", None))
        cpu_ratio = status_json.cpu_median / loop.cpu_median
        rows.insert(1, Row("status --json, CPU time (user+sys)",
                           f"{status_json.cpu_median:.2f} s", "json.loads loop",
                           f"{loop.cpu_median:.2f} s", cpu_ratio, "(info: <= 1.5x)", None))
        for case in cases:
            rows.append(Row(f"  {case.name}", f"{case.median:.2f} s", "cpu (median)",
                            f"{case.cpu_median:.2f} s", None, case.spread(), None))
        title = (f"P2 replay ({stats.events:,} events, {stats.jobs:,} jobs, "
                 f"{stats.bytes / 1e6:.0f} MB; median of {args.runs})")
        print_table(title, rows)
        save_json(args.json, title, rows, cases)
    return 0


if __name__ == "__main__":
    sys.exit(main())
