"""Resume cost: `journalq run` on a journal whose 10,000 jobs are all done vs `status` on it.

What it measures: the wall time of `journalq run --quiet --config C --state J` where J is a
~1,000,000-event journal made by `journal_gen.py` and C the config it was generated from
(so run finds nothing to add, nothing changed, nothing running and nothing pending, and
appends nothing: the script checks that J's size does not change), against
`journalq status --state J` on the same file. Both replay the whole journal; `run` also
parses the 10,000-job config, takes the writer lock and reconciles specs. Peak RSS of both
comes from GNU `/usr/bin/time -f %M`.

Target (issue 6): run <= 1.5x status.

    python tests/bench/bench_resume.py [--jobs 10000] [--events 1000000] [--runs 5]
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
    spread_rows,
)
from journal_gen import generate


def main() -> int:
    parser = size_args(arg_parser(__doc__, runs=5))
    args = parser.parse_args()
    with scratch("resume", args.keep) as tmp:
        journal, config = tmp / "bench.jsonl", tmp / "bench.yaml"
        stats = generate(journal, args.jobs, args.events, config_path=config)
        size = journal.stat().st_size
        print(f"resume: generated {journal}: {stats.events:,} events, {stats.jobs:,} jobs "
              f"(all done) in {stats.seconds:.1f} s", file=sys.stderr)
        jq = journalq_command()
        run = Case("journalq run (all done)",
                   lambda _: ([*jq, "run", "--quiet", "--config", str(config), "--state",
                               str(journal)], str(tmp)), rss=True)
        status = Case("journalq status",
                      lambda _: ([*jq, "status", "--state", str(journal)], str(tmp)), rss=True)
        cases = [run, status]
        alternate(cases, args.runs, env=bench_env(tmp))
        if journal.stat().st_size != size:
            raise SystemExit(f"{journal} changed size: run appended to a finished journal")
        ratio = run.median / status.median
        rows = [
            Row(f"run, all {stats.jobs:,} jobs done", f"{run.median:.2f} s", "status",
                f"{status.median:.2f} s", ratio, "<= 1.5x", ratio <= 1.5),
            Row("run, CPU time (user+sys)", f"{run.cpu_median:.2f} s", "status",
                f"{status.cpu_median:.2f} s", run.cpu_median / status.cpu_median,
                "(info: <= 1.5x)", None),
            Row("run, peak RSS", f"{run.maxrss_mb:.0f} MB", "status",
                f"{status.maxrss_mb:.0f} MB", run.maxrss_mb / status.maxrss_mb, "(info)",
                None),
        ]
        rows += spread_rows(cases, lambda case: f"{case.median:.2f} s")
        title = (f"Resume ({stats.events:,} events, {stats.jobs:,} jobs all done; "
                 f"median of {args.runs})")
        print_table(title, rows)
        save_json(args.json, title, rows, cases)
    return 0


if __name__ == "__main__":
    sys.exit(main())
