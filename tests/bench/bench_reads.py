"""Issue 10.5: how many times each command reads the local journal's bytes.

What it measures: `journal_gen.py` writes a `--events` event journal (default 50,000:
above the 20,000 events at which writers leave a fold checkpoint) for `--jobs` jobs (500),
all done, and its config; `journalq init` (untimed, untraced) leaves the checkpoint, as a
real writer would. Then, each command under `strace -f -y` (see `benchlib.trace_io`), in
this order, on that journal:

    retry J0 -> run (runs J0) -> status -> retry J0 -> cancel J0 -> sync -> recover

once without a sync folder (no `sync`) and once with `--sync-dir D`, where D holds a copy
of the starting journal (as the runtime that wrote it left it). The job's command is a
`scripts/run_sweep.py` that exits 0 at once.

The figure is the bytes each command's whole process tree read from the local journal
(every read-type syscall on it, and sendfile / copy_file_range / splice from it) divided by
the journal's size before the command: 1.0x is one full read. Opens of the journal, bytes
read from the checkpoint and any mmap of the journal are shown beside it (bytes read through
a mapping cannot be counted: a non-zero mmap count means the figure may be low).

Bar (issue 10): each command reads the local journal's bytes at most once (bytes read <=
the journal's size after the command, which allows reading back what it appended itself).
This is the figure; the test of the bar, through the file-system seam, is written apart.

    python tests/bench/bench_reads.py [--events 50000] [--jobs 500] [--quick] [--json FILE]
"""

from __future__ import annotations

import shutil
import subprocess
import sys

from benchlib import (
    Row,
    arg_parser,
    bench_env,
    journal_events,
    journalq_command,
    print_table,
    quick_arg,
    save_json,
    scratch,
    strace_available,
    trace_io,
)
from journal_gen import generate

# Telling a journal from a config reads its first 4 KiB: once for the lock, once to read.
SAMPLES = 2 * 4096


def main() -> int:
    parser = quick_arg(arg_parser(__doc__, runs=1))
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--jobs", type=int, default=500)
    args = parser.parse_args()
    if not strace_available():
        print("bench_reads: strace is not installed (apt-get install -y strace); "
              "nothing measured", file=sys.stderr)
        return 1
    n_events, n_jobs = (5_000, 50) if args.quick else (args.events, args.jobs)
    jq = journalq_command()
    with scratch("reads", args.keep) as tmp:
        source, config = tmp / "source.jsonl", tmp / "bench.yaml"
        stats = generate(source, n_jobs, n_events, config_path=config)
        first_job = str(next(e["job"] for e in journal_events(source)
                             if e["type"] == "job_added"))
        last_session = str(journal_events(source)[-1]["session"])
        env = bench_env(tmp)
        print(f"reads: a journal of {stats.events:,} events ({source.stat().st_size / 1e6:.1f}"
              f" MB), {n_jobs} jobs, in {tmp}", file=sys.stderr)

        steps: list[tuple[str, list[str]]] = [
            ("retry", ["retry", "--state", "j.jsonl", first_job]),
            ("run", ["run", "--quiet", "--config", str(config), "--state", "j.jsonl"]),
            ("status", ["status", "--state", "j.jsonl"]),
            ("retry", ["retry", "--state", "j.jsonl", first_job]),
            ("cancel", ["cancel", "--state", "j.jsonl", first_job]),
            ("sync", ["sync", "--state", "j.jsonl"]),
            ("recover", ["recover", "--state", "j.jsonl"]),
        ]
        results: list[dict[str, object]] = []
        for variant, sync in (("", False), (" --sync-dir", True)):
            work = tmp / ("synced" if sync else "plain")
            (work / "scripts").mkdir(parents=True)
            (work / "scripts" / "run_sweep.py").write_text("")  # the job: exits 0 at once
            shutil.copyfile(source, work / "j.jsonl")
            if sync:
                (work / "sd").mkdir()
                shutil.copyfile(source, work / "sd" / f"bench.{last_session}.jsonl")
            subprocess.run([*jq, "init", "--config", str(config), "--state", "j.jsonl"],
                           cwd=work, env=env, check=True, capture_output=True)
            journal = work / "j.jsonl"
            for name, argv in steps:
                if name == "sync" and not sync:
                    continue
                flags = ["--sync-dir", "sd"] if sync else []
                before = journal.stat().st_size
                io = trace_io([*jq, *argv, *flags], cwd=work, env=env)
                after = journal.stat().st_size
                real = str(journal.resolve())
                result = {
                    "command": f"{name}{variant}", "bytes_read": io.read_from(journal),
                    "size_before": before, "size_after": after,
                    "opens": io.opens.get(real, 0), "mmaps": io.mmaps.get(real, 0),
                    "checkpoint_read": io.read.get(real + ".fold", 0),
                    "copied": io.copied.get(real, 0),
                }
                results.append(result)
                print(f"  {result}", file=sys.stderr, flush=True)

        rows = []
        for r in results:
            read, before, after = (int(r["bytes_read"]), int(r["size_before"]),  # type: ignore[call-overload]
                                   int(r["size_after"]))  # type: ignore[call-overload]
            extra = f"opened {r['opens']}x"
            if r["checkpoint_read"]:
                extra += f", checkpoint {int(r['checkpoint_read']) / 1e6:.1f} MB"  # type: ignore[call-overload]
            if r["mmaps"]:
                extra += f", MMAPPED {r['mmaps']}x (figure may be low)"
            copied = int(r["copied"])  # type: ignore[call-overload]
            read -= copied  # what journalq read itself; a push's kernel copy is shown apart
            value = f"{read / before:.2f}x"
            if 0 < read - after < before / 20:  # a partial second read: say how much
                value += f" (+{(read - after) / 1024:.0f} KiB)"
            rows.append(Row(f"{r['command']}: journal bytes read", value,
                            f"journal size ({extra})", f"{before / 1e6:.2f} MB", read / before,
                            "<= 1x + 2 x 4 KiB samples", read <= after + SAMPLES))
            if copied:
                rows.append(Row(f"  {r['command']}: copied by the kernel to the sync folder",
                                f"{copied / before:.2f}x", "journal size",
                                f"{before / 1e6:.2f} MB", copied / before, "(info: a push)",
                                None))
        checkpoint = "with" if any(r["checkpoint_read"] for r in results) else "without"
        title = (f"Journal reads per command (issue 10.5): {stats.events:,} events, "
                 f"{n_jobs} jobs, {checkpoint} a fold checkpoint")
        print_table(title, rows, value="value")
        save_json(args.json, title, rows, [], {"results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
