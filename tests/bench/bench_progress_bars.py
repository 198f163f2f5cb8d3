"""Issue 10.2: progress bars (`\\r` updates, no newline) cost linear time and bounded memory,
and reach the terminal as they happen.

What it measures:

- volume: a job writes `--mb` MB (default 50) of tqdm-style updates, each ~100 bytes ending
  in `\\r`-led text with no newline, one `write` each, and one newline at the very end.
  `journalq run` (echo on, stdout to /dev/null) against `journalq run --quiet` on the same
  job, ABBA order, median of `--runs`; peak RSS of both from GNU `/usr/bin/time -f %M` (the
  larger of journalq's and its job's: the job is a small Python process of ~10 MB, so a
  figure above that is journalq's). The job alone (`python job.py > /dev/null`) is shown
  for scale.
- latency: a 3 s "tqdm" job writes an update every 0.1 s, each stamped with `time.time()`
  when written (and noted in a ledger file). `journalq run`'s stdout is a pseudo-terminal
  that this script reads. The figure is the time from the job's first write to the first
  update seen on the terminal (an echo may coalesce updates: any update shows progress);
  the slowest update seen (arrival - stamp) and the share shown are given too. Baseline:
  the same job with its stdout on the pseudo-terminal directly.

Bars (issue 10): `run` <= 1.5x `run --quiet` wall; peak RSS <= 64 MB; first update visible
<= 1 s after the job writes it.

    python tests/bench/bench_progress_bars.py [--mb 50] [--runs 3] [--quick] [--json FILE]
"""

from __future__ import annotations

import os
import re
import select
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

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
)

JOB = """\
import os, sys, time
mode = sys.argv[1]
if mode == "volume":
    # tqdm-like updates of ~100 bytes, one write each, until argv[2] bytes; then a newline.
    total, n, written, i = int(sys.argv[2]), 1_000_000, 0, 0
    bars = [("#" * k).ljust(40) for k in range(41)]
    while written < total:
        update = (f"\\r{i * 100 // n:3d}%|{bars[i * 40 // n % 41]}| {i:7d}/{n} "
                  f"[00:{i % 60:02d}<00:59, 12345.67it/s]").encode()
        written += os.write(1, update)
        i += 1
    os.write(1, b"\\n")
else:
    # argv[2] seconds of updates every argv[3] seconds, each stamped when written; every
    # stamp also goes to the ledger argv[4], so an update never shown is still known.
    seconds, every = float(sys.argv[2]), float(sys.argv[3])
    with open(sys.argv[4], "a") as ledger:
        for step in range(int(seconds / every)):
            stamp = time.time()
            os.write(1, f"\\rT={stamp:.6f} step {step};".encode())
            ledger.write(f"{step} {stamp:.6f}\\n")
            ledger.flush()
            time.sleep(every)
    os.write(1, b"\\n")
"""

STAMP = re.compile(rb"T=(\d+\.\d+) step (\d+);")


def config(job: Path, *args: object) -> str:
    words = ["python", str(job), *map(str, args)]
    return ("queue: bars\nout_root: outputs\njobs:\n  - id: bar\n"
            f"    command: [{', '.join(repr(w) for w in words)}]\n")


def latency(argv: list[str], cwd: Path, env: dict[str, str], ledger: Path) -> dict[str, float]:
    """Run `argv` with stdout on a pseudo-terminal we read. Returns `first`: from the job's
    first write (its ledger) to the first update seen on the terminal (an echo may coalesce
    updates; any update shows progress); `worst`: the largest arrival - stamp over the
    updates seen; `seen`: their share of the updates written."""
    master, slave = os.openpty()
    arrivals: dict[int, float] = {}
    stamps: dict[int, float] = {}
    ledger.unlink(missing_ok=True)
    with open(cwd / "latency-stderr.txt", "ab") as err:
        child = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                 stdout=slave, stderr=err)
    os.close(slave)
    buffer, pos = b"", 0
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                if child.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every holder of the terminal's other side has closed it
                break
            if not data:
                break
            now = time.time()
            buffer += data
            for match in STAMP.finditer(buffer, pos):
                step = int(match.group(2))
                stamps[step] = float(match.group(1))
                arrivals.setdefault(step, now)
                pos = match.end()
    finally:
        os.close(master)
        child.wait(timeout=60)
    written = dict(line.split() for line in ledger.read_text().splitlines() if line)
    if not written:
        raise SystemExit(f"the job wrote no update: {' '.join(argv)} in {cwd}")
    inf = float("inf")
    return {"first": min(arrivals.values(), default=inf) - float(written["0"]),
            "worst": max((arrivals[s] - stamps[s] for s in arrivals), default=inf),
            "seen": len(arrivals) / len(written)}


def main() -> int:
    parser = quick_arg(arg_parser(__doc__, runs=3))
    parser.add_argument("--mb", type=float, default=50.0, help="MB of updates (default 50)")
    args = parser.parse_args()
    mb, runs = (5.0, 1) if args.quick else (args.mb, args.runs)
    size = int(mb * 1_000_000)
    jq = journalq_command()
    with scratch("bars", args.keep) as tmp:
        job = tmp / "job.py"
        job.write_text(JOB)
        (tmp / "volume.yaml").write_text(config(job, "volume", size))
        env = bench_env(tmp)

        def journalq_case(name: str, *flags: str) -> Case:
            def prepare(run: int) -> tuple[list[str], str | None]:
                shutil.rmtree(tmp / f"{name}-{run - 1}", ignore_errors=True)  # 50 MB logs
                work = tmp / f"{name}-{run}"
                work.mkdir()
                return [*jq, "run", *flags, "--config", str(tmp / "volume.yaml"),
                        "--state", "j.jsonl"], str(work)
            return Case(f"journalq run {' '.join(flags)}".strip(), prepare, rss=True)

        echo, quiet = journalq_case("echo"), journalq_case("quiet", "--quiet")
        alone = Case("job alone > /dev/null",
                     lambda _: ([sys.executable, str(job), "volume", str(size)], None),
                     rss=True)
        cases = [echo, quiet, alone]
        print(f"progress bars: {mb:g} MB of \\r updates, {runs} runs each (ABBA) in {tmp}",
              file=sys.stderr)
        alternate(cases, runs, env=env)

        seconds, every = 3.0, 0.1
        (tmp / "timed.yaml").write_text(config(job, "timed", seconds, every, tmp / "ledger"))
        lat_runs = max(1, min(runs, 3))
        through, direct = [], []
        for run in range(lat_runs):
            work = tmp / f"latency-{run}"
            work.mkdir()
            through.append(latency([*jq, "run", "--config", str(tmp / "timed.yaml"),
                                    "--state", "j.jsonl"], work, env, tmp / "ledger"))
            direct.append(latency([sys.executable, str(job), "timed", str(seconds),
                                   str(every), str(tmp / "ledger")], work, env,
                                  tmp / "ledger"))
            print(f"  latency run {run + 1}/{lat_runs}: through run {through[-1]}, direct "
                  f"{direct[-1]}", file=sys.stderr)
        first = statistics.median(lat["first"] for lat in through)
        first_direct = statistics.median(lat["first"] for lat in direct)
        worst = statistics.median(lat["worst"] for lat in through)
        worst_direct = statistics.median(lat["worst"] for lat in direct)
        seen = statistics.median(lat["seen"] for lat in through)

        ratio = echo.median / quiet.median
        rows = [
            Row(f"run, {mb:g} MB of \\r updates (echo on)", f"{echo.median:.2f} s",
                "run --quiet", f"{quiet.median:.2f} s", ratio, "<= 1.5x", ratio <= 1.5),
            Row("run, peak RSS (echo on)", f"{echo.maxrss_mb:.0f} MB", "run --quiet",
                f"{quiet.maxrss_mb:.0f} MB", echo.maxrss_mb / quiet.maxrss_mb, "<= 64 MB",
                echo.maxrss_mb <= 64),
            Row("run, CPU time (echo on)", f"{echo.cpu_median:.2f} s", "run --quiet",
                f"{quiet.cpu_median:.2f} s", echo.cpu_median / quiet.cpu_median, "(info)",
                None),
            Row("  the job alone (info)", f"{alone.median:.2f} s", "run --quiet",
                f"{quiet.median:.2f} s", alone.median / quiet.median, "", None),
            Row(f"first \\r update visible (a {seconds:g} s job, tty)", f"{first:.3f} s",
                "job straight to the tty", f"{first_direct * 1000:.2f} ms", None, "<= 1 s",
                first <= 1.0),
            Row("slowest update visible (info)", f"{worst:.3f} s", "job straight to the tty",
                f"{worst_direct * 1000:.2f} ms", None, f"{seen:.0%} of the updates shown",
                None),
        ]
        rows += spread_rows(cases, lambda case: f"{case.median:.2f} s")
        title = (f"Progress bars (issue 10.2): {mb:g} MB of \\r updates, median of {runs}; "
                 f"latency median of {lat_runs}")
        print_table(title, rows)
        save_json(args.json, title, rows, cases,
                  {"latency_through_run": through, "latency_direct": direct})
    return 0


if __name__ == "__main__":
    sys.exit(main())
