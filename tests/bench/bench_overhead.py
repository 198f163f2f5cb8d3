"""P1 per-job overhead: `journalq run` over N trivial jobs vs a durable loop and GNU parallel.

What it measures: the wall time of `journalq run --quiet` on a fresh journal over a config of
N jobs whose command is `true` (default N=500), against

- a minimal durable loop, in a fresh `python -c` process so start-up is comparable: per
  job, one fsync'd JSON line, `subprocess.run(["true"])`, one more fsync'd JSON line;
- `parallel -j1 --joblog` (GNU parallel), when it is installed.

Per-job overhead is the marginal cost: (median time on N jobs - median time on 1 job) /
(N - 1), so every tool's start-up cancels out. Total/N (start-up included) is shown too.
With `--scale-jobs M` it also times journalq on M jobs, to show whether the cost per job
grows with the size of the queue (it should not: per-job work must be O(1) in N).

Targets (issue 6): journalq <= 1.5x the durable loop's per-job overhead, and >= 5x below
GNU parallel's (ratio parallel/journalq >= 5).

    python tests/bench/bench_overhead.py [--jobs 500] [--runs 5] [--scale-jobs 2000]
        [--json FILE]
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
    save_json,
    scratch,
    spread_rows,
)
from journal_gen import config_text

DURABLE_LOOP = """\
import json, os, subprocess, sys, time
n, path = int(sys.argv[1]), sys.argv[2]
fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
for i in range(n):
    line = {"type": "job_started", "job": f"job-{i}", "ts": time.time()}
    os.write(fd, (json.dumps(line) + "\\n").encode())
    os.fsync(fd)
    rc = subprocess.run(["true"]).returncode
    line = {"type": "job_finished", "job": f"job-{i}", "rc": rc, "ts": time.time()}
    os.write(fd, (json.dumps(line) + "\\n").encode())
    os.fsync(fd)
os.close(fd)
"""


def main() -> int:
    parser = arg_parser(__doc__, runs=5)
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--scale-jobs", type=int, default=0, metavar="M",
                        help="also time journalq on M jobs (default: off)")
    args = parser.parse_args()
    n, m = args.jobs, args.scale_jobs
    parallel = shutil.which("parallel")
    with scratch("overhead", args.keep) as tmp:
        for size in {1, n, m} - {0}:
            (tmp / f"jobs{size}.yaml").write_text(
                config_text(size, command=["true"], max_attempts=1))

        def journalq_case(size: int) -> Case:
            def prepare(run: int) -> tuple[list[str], str | None]:
                work = tmp / f"jq-{size}-{run}"
                work.mkdir()
                return [*journalq_command(), "run", "--quiet", "--config",
                        str(tmp / f"jobs{size}.yaml"), "--state", "j.jsonl"], str(work)
            return Case(f"journalq run --quiet ({size} jobs)", prepare)

        def loop_case(size: int) -> Case:
            def prepare(run: int) -> tuple[list[str], str | None]:
                return [sys.executable, "-c", DURABLE_LOOP, str(size),
                        str(tmp / f"loop-{size}-{run}.jsonl")], None
            return Case(f"durable python loop ({size} jobs)", prepare)

        def parallel_case(size: int) -> Case:
            def prepare(run: int) -> tuple[list[str], str | None]:
                assert parallel is not None
                return [parallel, "--will-cite", "-j1", "-N0", "--joblog",
                        str(tmp / f"parallel-{size}-{run}.log"), "true", ":::",
                        *map(str, range(size))], None
            return Case(f"parallel -j1 --joblog ({size} jobs)", prepare)

        kinds = [("journalq", journalq_case), ("loop", loop_case)]
        if parallel:
            kinds.append(("parallel", parallel_case))
        cases = {(kind, size): make(size) for kind, make in kinds for size in (n, 1)}
        if m:
            cases["journalq", m] = journalq_case(m)
        print(f"P1: {n} trivial jobs, {args.runs} runs each (ABBA order) in {tmp}",
              file=sys.stderr)
        alternate(list(cases.values()), args.runs, env=bench_env(tmp))

        def per_job(kind: str) -> float:
            return (cases[kind, n].median - cases[kind, 1].median) / (n - 1)

        def cpu_per_job(kind: str) -> float:
            return (cases[kind, n].cpu_median - cases[kind, 1].cpu_median) / (n - 1)

        def total_per_job(kind: str) -> float:
            return cases[kind, n].median / n

        jq, loop = per_job("journalq"), per_job("loop")
        rows = [
            Row(f"journalq run, per job (marginal, N={n})", f"{jq * 1000:.2f} ms",
                "durable python loop", f"{loop * 1000:.2f} ms", jq / loop, "<= 1.5x",
                jq / loop <= 1.5),
            Row(f"journalq run, CPU per job (marginal, N={n})",
                f"{cpu_per_job('journalq') * 1000:.2f} ms", "durable python loop",
                f"{cpu_per_job('loop') * 1000:.2f} ms",
                cpu_per_job("journalq") / cpu_per_job("loop"), "(info: user+sys, children "
                "included)", None),
            Row(f"journalq run, total/N (N={n})", f"{total_per_job('journalq') * 1000:.2f} ms",
                "durable python loop", f"{total_per_job('loop') * 1000:.2f} ms",
                total_per_job("journalq") / total_per_job("loop"), "(info)", None),
        ]
        if parallel:
            par = per_job("parallel")
            rows.append(Row(f"GNU parallel, per job (marginal, N={n})", f"{par * 1000:.2f} ms",
                            "journalq run", f"{jq * 1000:.2f} ms", par / jq,
                            ">= 5x (parallel/journalq)", par / jq >= 5))
            rows.append(Row(f"GNU parallel, total/N (N={n})",
                            f"{total_per_job('parallel') * 1000:.2f} ms", "journalq run",
                            f"{total_per_job('journalq') * 1000:.2f} ms",
                            total_per_job("parallel") / total_per_job("journalq"), "(info)",
                            None))
        else:
            rows.append(Row("GNU parallel", "not installed", "-", "-", None,
                            ">= 5x (parallel/journalq)", None))
        if m:
            grown = (cases["journalq", m].median - cases["journalq", 1].median) / (m - 1)
            rows.append(Row(f"journalq run, per job (marginal, N={m})",
                            f"{grown * 1000:.2f} ms", f"same at N={n}", f"{jq * 1000:.2f} ms",
                            grown / jq, "(info: ~1.0x if O(1) per job)", None))
        rows += spread_rows(list(cases.values()), lambda case: f"{case.median * 1000:.0f} ms")
        title = f"P1 per-job overhead ({n} x `true`, median of {args.runs})"
        print_table(title, rows)
        save_json(args.json, title, rows, list(cases.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
