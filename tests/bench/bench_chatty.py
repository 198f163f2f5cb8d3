"""Issue 10.7: the runner must not be the bottleneck for a job that streams output.

What it measures: two jobs that write `--mb` MB (default 50) to stdout and exit,

- blocks: 1 MB writes, each block 10,000 lines of 100 bytes;
- lines: 100-byte lines, one write each (as a Python worker printing unbuffered does),

each run three ways: `journalq run` (echo on; every byte also goes to the attempt's log),
`journalq run --quiet` (the log only), and the baseline `sh -c 'job | cat > file'`. journalq's
stdout is a pipe read by `cat > /dev/null` (`sh -c 'journalq run ... | cat > /dev/null'`),
because a real echo has a reader (a terminal, a notebook cell); writing to /dev/null itself
would hide what moving the echo costs. Every figure is beyond start-up: the median wall
time of the case minus the median of the same case with a job that writes nothing (so the
start-up of Python, journalq, sh and cat, the journal's fsyncs and the job's own start
cancel out). ABBA order, median of `--runs`.

Bar (issue 10): echo on and `--quiet` each <= 2x `job | cat > file`, for both jobs.

    python tests/bench/bench_chatty.py [--mb 50] [--runs 7] [--quick] [--json FILE]
"""

from __future__ import annotations

import shlex
import shutil
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
    quick_arg,
    save_json,
    scratch,
    spread_rows,
)

JOB = """\
import os, sys
mode, total = sys.argv[1], int(sys.argv[2])
line = b"x" * 99 + b"\\n"
def write_all(data):
    view = memoryview(data)
    while view:
        view = view[os.write(1, view):]
if mode == "blocks":
    block = line * 10_000  # 1 MB
    for _ in range(total // len(block)):
        write_all(block)
elif mode == "lines":
    for _ in range(total // len(line)):
        write_all(line)
"""


def main() -> int:
    parser = quick_arg(arg_parser(__doc__, runs=7))
    parser.add_argument("--mb", type=int, default=50, help="MB each job writes (default 50)")
    args = parser.parse_args()
    mb, runs = (5, 1) if args.quick else (args.mb, args.runs)
    total = mb * 1_000_000
    jq = journalq_command()
    with scratch("chatty", args.keep) as tmp:
        job = tmp / "job.py"
        job.write_text(JOB)
        env = bench_env(tmp)
        for mode in ("blocks", "lines", "none"):
            (tmp / f"{mode}.yaml").write_text(
                "queue: chatty\nout_root: outputs\njobs:\n  - id: talk\n"
                f"    command: [python, {str(job)!r}, {mode}, '{total}']\n")

        def journalq_case(mode: str, *flags: str) -> Case:
            tag = f"{mode}{''.join(flags)}"

            def prepare(run: int) -> tuple[list[str], str | None]:
                shutil.rmtree(tmp / f"{tag}-{run - 1}", ignore_errors=True)  # 50 MB logs
                work = tmp / f"{tag}-{run}"
                work.mkdir()
                argv = [*jq, "run", *flags, "--config", str(tmp / f"{mode}.yaml"), "--state",
                        "j.jsonl"]
                # The echo goes to a reader, as in a terminal or a notebook cell.
                return ["/bin/sh", "-c", f"{shlex.join(argv)} | cat > /dev/null"], str(work)
            return Case(f"journalq run {' '.join(flags)} ({mode})".replace("  ", " "), prepare)

        def pipe_case(mode: str) -> Case:
            def prepare(run: int) -> tuple[list[str], str | None]:
                out = Path(tmp / f"pipe-{mode}.out")
                out.unlink(missing_ok=True)
                command = (f"{shlex.quote(sys.executable)} {shlex.quote(str(job))} {mode} "
                           f"{total} | cat > {shlex.quote(str(out))}")
                return ["/bin/sh", "-c", command], None
            return Case(f"job | cat > file ({mode})", prepare,
                        env={**env, "PYTHONUNBUFFERED": "1"})

        cases: dict[tuple[str, str], Case] = {}
        for mode in ("blocks", "lines", "none"):
            cases[mode, "echo"] = journalq_case(mode)
            cases[mode, "quiet"] = journalq_case(mode, "--quiet")
            cases[mode, "pipe"] = pipe_case(mode)
        print(f"chatty: {mb} MB of output, {runs} runs each (ABBA) in {tmp}", file=sys.stderr)
        alternate(list(cases.values()), runs, env=env)

        def beyond(mode: str, how: str) -> float:
            return cases[mode, how].median - cases["none", how].median

        def cpu_beyond(mode: str, how: str) -> float:
            return cases[mode, how].cpu_median - cases["none", how].cpu_median

        rows = []
        for mode, what in (("blocks", "1 MB writes"), ("lines", "100-byte lines")):
            pipe = beyond(mode, "pipe")
            for how, label in (("echo", "run (echo on)"), ("quiet", "run --quiet")):
                figure = beyond(mode, how)
                ratio = figure / pipe if pipe > 0 else None  # noise can beat a tiny figure
                rows.append(Row(f"{label}, {mb} MB in {what}, beyond start-up",
                                f"{figure * 1000:.0f} ms", "job | cat > file",
                                f"{pipe * 1000:.0f} ms", ratio, "<= 2x",
                                None if ratio is None else ratio <= 2))
            cpu_pipe = cpu_beyond(mode, "pipe")
            for how, label in (("echo", "run (echo on)"), ("quiet", "run --quiet")):
                cpu = cpu_beyond(mode, how)
                rows.append(Row(f"  CPU (user+sys, job included), {label}, {what} (info)",
                                f"{cpu * 1000:.0f} ms", "job | cat > file",
                                f"{cpu_pipe * 1000:.0f} ms",
                                cpu / cpu_pipe if cpu_pipe > 0 else None, "", None))
        for how, label in (("echo", "run"), ("quiet", "run --quiet"), ("pipe", "pipe")):
            rows.append(Row(f"  start-up: {label}, a job writing nothing (info)",
                            f"{cases['none', how].median * 1000:.0f} ms", "", "", None, "",
                            None))
        rows += spread_rows(list(cases.values()), lambda case: f"{case.median * 1000:.0f} ms")
        title = f"Chatty jobs (issue 10.7): {mb} MB of output, median of {runs}"
        print_table(title, rows)
        save_json(args.json, title, rows, list(cases.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
