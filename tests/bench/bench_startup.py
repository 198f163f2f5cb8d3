"""P3 start-up: `journalq status` on a small journal vs `python -c 'import yaml, attrs, cattrs'`.

What it measures: the wall time of one `journalq status --state J` (stdout to /dev/null) on
a small journal made by `journal_gen.py` (6 jobs, 60 events), so that nearly all of it is
interpreter start-up and imports, against a process that only imports journalq's three
third-party dependencies. For information it also times a bare interpreter
(`python -c pass`), `journalq --version` (the CLI's floor: argparse and journalq.cli) and
`journalq status --json`.

Target (issue 6): status <= 1.0x the `import yaml, attrs, cattrs` process (import what a
command needs, when it needs it).

    python tests/bench/bench_startup.py [--runs 21]
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
    spread_rows,
)
from journal_gen import generate


def main() -> int:
    parser = arg_parser(__doc__, runs=21)
    args = parser.parse_args()
    with scratch("startup", args.keep) as tmp:
        journal = tmp / "small.jsonl"
        stats = generate(journal, 6, 60)
        jq = journalq_command()
        status = Case("journalq status (small journal)",
                      lambda _: ([*jq, "status", "--state", str(journal)], None))
        imports = Case("python -c 'import yaml, attrs, cattrs'",
                       lambda _: ([sys.executable, "-c", "import yaml, attrs, cattrs"], None))
        bare = Case("python -c pass", lambda _: ([sys.executable, "-c", "pass"], None))
        version = Case("journalq --version", lambda _: ([*jq, "--version"], None))
        as_json = Case("journalq status --json (small journal)",
                       lambda _: ([*jq, "status", "--state", str(journal), "--json"], None))
        cases = [status, imports, bare, version, as_json]
        print(f"P3: {stats.events} events, {stats.jobs} jobs; {args.runs} runs each",
              file=sys.stderr)
        alternate(cases, args.runs, warmup=2, env=bench_env(tmp))
        ratio = status.median / imports.median
        ms = lambda case: f"{case.median * 1000:.1f} ms"  # noqa: E731
        rows = [
            Row("journalq status (small journal)", ms(status), "import yaml, attrs, cattrs",
                ms(imports), ratio, "<= 1.0x", ratio <= 1.0),
            Row("journalq status, CPU time (user+sys)", f"{status.cpu_median * 1000:.1f} ms",
                "import yaml, attrs, cattrs", f"{imports.cpu_median * 1000:.1f} ms",
                status.cpu_median / imports.cpu_median, "(info)", None),
            Row("journalq status --json", ms(as_json), "import yaml, attrs, cattrs",
                ms(imports), as_json.median / imports.median, "(info)", None),
            Row("journalq --version", ms(version), "python -c pass", ms(bare),
                version.median / bare.median, "(info)", None),
            Row("journalq status, above a bare interpreter",
                f"{(status.median - bare.median) * 1000:.1f} ms", "imports, above bare",
                f"{(imports.median - bare.median) * 1000:.1f} ms",
                (status.median - bare.median) / (imports.median - bare.median), "(info)", None),
        ]
        rows += spread_rows(cases, ms)
        title = f"P3 start-up (median of {args.runs})"
        print_table(title, rows)
        save_json(args.json, title, rows, cases)
    return 0


if __name__ == "__main__":
    sys.exit(main())
