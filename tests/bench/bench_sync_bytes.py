"""Issue 10.4: what a sync folder costs: wall time, bytes written into it, what it holds.

What it measures: `journalq run --quiet` over `--jobs` jobs of `true` (default 2,000) on a
fresh journal, with `--sync-dir D` (a fresh, empty folder each run) and without, ABBA order,
median of `--runs`. After a run with the folder: the folder's size (every file in it) and
the final local journal's size (the merged journal: this runtime is the only one).

Bytes written into the folder over a run: one more run with `--sync-dir`, under `strace -f
-y` (untimed: tracing slows it), adding up every byte that any write-type syscall (write,
pwrite64, writev, pwritev, sendfile, copy_file_range, splice) put into a file under D;
temp files that are renamed into place count, as Drive uploads what lands in the folder.
Why strace: /proc/<pid>/io counts a process's writes to every file together (the journal,
logs, the folder), and watching the folder afterwards sees only the files that are left, not
the versions that replaced each other; strace attributes each write to its file, whatever
code path journalq uses, without changing journalq. Bytes written to the local journal are
shown beside it.

Bars (issue 10): with `--sync-dir` <= 1.5x the wall time without; bytes written into the
folder <= 10x the final journal; folder size after the run <= 3x the merged journal.

    python tests/bench/bench_sync_bytes.py [--jobs 2000] [--runs 3] [--quick] [--json FILE]
"""

from __future__ import annotations

import shutil
import sys

from benchlib import (
    Case,
    Row,
    alternate,
    arg_parser,
    bench_env,
    journalq_command,
    print_table,
    quick_arg,
    save_json,
    scratch,
    spread_rows,
    strace_available,
    trace_io,
    tree_size,
)
from journal_gen import config_text


def mb(n: float) -> str:
    return f"{n / 1e6:.2f} MB" if n < 1e9 else f"{n / 1e9:.2f} GB"


def main() -> int:
    parser = quick_arg(arg_parser(__doc__, runs=3))
    parser.add_argument("--jobs", type=int, default=2_000)
    args = parser.parse_args()
    n, runs = (100, 1) if args.quick else (args.jobs, args.runs)
    jq = journalq_command()
    with scratch("syncbytes", args.keep) as tmp:
        config = tmp / "jobs.yaml"
        config.write_text(config_text(n, command=["true"], max_attempts=1))
        env = bench_env(tmp)

        def case(name: str, sync: bool) -> Case:
            def prepare(run: int) -> tuple[list[str], str | None]:
                shutil.rmtree(tmp / f"{name}-{run - 1}", ignore_errors=True)
                work = tmp / f"{name}-{run}"
                work.mkdir()
                flags = ["--sync-dir", "sd"] if sync else []
                return [*jq, "run", "--quiet", "--config", str(config), "--state", "j.jsonl",
                        *flags], str(work)
            return Case(f"journalq run --quiet{' --sync-dir' if sync else ''} ({n} x true)",
                        prepare)

        plain, synced = case("plain", False), case("synced", True)
        cases = [synced, plain]
        print(f"sync bytes: {n} x `true`, {runs} runs each (ABBA) in {tmp}", file=sys.stderr)
        alternate(cases, runs, env=env)
        last = tmp / f"synced-{runs}"
        journal_size = (last / "j.jsonl").stat().st_size
        folder_size = tree_size(last / "sd")

        written = journal_written = None
        if strace_available():
            work = tmp / "traced"
            work.mkdir()
            print("  one more run with --sync-dir under strace (untimed) ...", file=sys.stderr,
                  flush=True)
            io = trace_io([*jq, "run", "--quiet", "--config", str(config), "--state",
                           "j.jsonl", "--sync-dir", "sd"], cwd=work, env=env)
            written = io.written_under(work / "sd")
            journal_written = io.written.get(str((work / "j.jsonl").resolve()), 0)
            traced_journal = (work / "j.jsonl").stat().st_size
        else:
            print("  strace not installed: bytes written not measured "
                  "(apt-get install -y strace)", file=sys.stderr)

        ratio = synced.median / plain.median
        rows = [
            Row(f"run --sync-dir, {n} x true", f"{synced.median:.2f} s", "without --sync-dir",
                f"{plain.median:.2f} s", ratio, "<= 1.5x", ratio <= 1.5),
            Row("  CPU time (user+sys, info)", f"{synced.cpu_median:.2f} s",
                "without --sync-dir", f"{plain.cpu_median:.2f} s",
                synced.cpu_median / plain.cpu_median, "", None),
        ]
        if written is not None:
            rows += [
                Row("bytes written into the sync folder over the run", mb(written),
                    "final journal", mb(traced_journal), written / traced_journal, "<= 10x",
                    written / traced_journal <= 10),
                Row("  bytes written to the local journal (info)", mb(journal_written or 0),
                    "final journal", mb(traced_journal),
                    (journal_written or 0) / traced_journal, "", None),
            ]
        else:
            rows.append(Row("bytes written into the sync folder over the run",
                            "not measured (no strace)", "final journal", mb(journal_size),
                            None, "<= 10x", None))
        rows += [
            Row("sync folder size after the run", mb(folder_size), "merged journal",
                mb(journal_size), folder_size / journal_size, "<= 3x",
                folder_size / journal_size <= 3),
        ]
        rows += spread_rows(cases, lambda case: f"{case.median:.2f} s")
        title = f"Sync bytes (issue 10.4): {n} x `true`, median of {runs}"
        print_table(title, rows)
        save_json(args.json, title, rows, cases,
                  {"bytes_written_into_folder": written, "journal_bytes": journal_size,
                   "folder_bytes": folder_size, "journal_bytes_written": journal_written})
    return 0


if __name__ == "__main__":
    sys.exit(main())
