"""Issue 12: several jobs at once (`slots: N`): wall time, hand-over latency, idle CPU.

What it measures (each `journalq run --quiet` on a fresh journal):

- wall: `--jobs` jobs (default 12) of `sleep 0.5` with `slots: 4`, the whole process fork
  to exit, median of `--runs`, against the ideal ceil(12 / 4) x 0.5 s = 1.5 s. Shown beside
  it: the same beyond start-up (minus `run` of one `true` job with `slots: 4`) and GNU
  `parallel -j4` on the same sleeps, when installed;
- hand-over latency: the same jobs as `sh -c 'date ...; sleep 0.5; date ...'` (shell), each
  noting in a ledger when it starts and, last thing before it exits, when it ends. With all
  slots busy, the k-th job to end frees the slot the (slots + k)-th job to start takes: the
  figure is the median over those pairs (and over the runs) of that job's `job_started`
  `ts` in the journal (durable before its spawn) minus the ended job's exit mark. Exit to
  the next job's own start mark (its spawn, `sh` and `date` included) is shown too;
- idle CPU: `slots` jobs (4) of `sleep 60`; once all have started, the runner's own CPU
  time (/proc/<pid>/schedstat: user + system, its children not counted) over a `--window`
  (default 10 s), then SIGINT. Baseline in the same run: today's sequential runner (no
  `slots:`) over one `sleep 60`, measured the same way.

Until journalq knows `slots:` (its config check says "unknown field(s) slots"), the slot
figures print "not supported yet" and only the sequential baseline is measured. When it
accepts `slots:` but does not run the jobs at once (yet), the rows say how many ran at once.

Bars (issue 12): wall <= 1.1x the ideal; hand-over latency median <= 5 ms; runner CPU while
the jobs sleep <= 1% of a core.

    python tests/bench/bench_slots.py [--jobs 12] [--slots 4] [--runs 5] [--window 10]
        [--quick] [--json FILE]
"""

from __future__ import annotations

import math
import re
import shutil
import signal
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
    cpu_seconds,
    epoch,
    journal_events,
    journalq_command,
    print_table,
    quick_arg,
    save_json,
    scratch,
    spread_rows,
)

SLEEP = 0.5


def config(jobs: list[str], slots: int | None, shell: bool = False) -> str:
    lines = ["queue: slots", "out_root: outputs"]
    if slots is not None:
        lines.append(f"slots: {slots}")
    lines.append("jobs:")
    for i, command in enumerate(jobs):
        lines.append(f"  - id: job{i:03d}")
        if shell:
            lines += [f"    command: {command!r}", "    shell: true"]
        else:
            lines.append(f"    command: [{', '.join(repr(w) for w in command.split())}]")
    return "\n".join(lines) + "\n"


def slug(name: str) -> str:
    """A case's name as a folder name."""
    return re.sub(r"\W+", "-", name).strip("-")


def supported(tmp: Path, jq: list[str], env: dict[str, str]) -> bool:
    """Whether this journalq accepts `slots:` (an unknown field is a config error, exit 3)."""
    work = tmp / "probe"
    work.mkdir()
    (work / "c.yaml").write_text(config(["true"], 2))
    done = subprocess.run([*jq, "init", "--config", "c.yaml", "--state", "j.jsonl"], cwd=work,
                          env=env, capture_output=True, text=True)
    if done.returncode == 3 and "slots" in done.stderr and "unknown" in done.stderr:
        return False
    if done.returncode != 0:
        raise SystemExit(f"journalq init with slots: exited {done.returncode}: {done.stderr}")
    return True


def handover(work: Path, ledger: Path, slots: int) -> tuple[list[float], list[float], int]:
    """Exit -> next start pairs of one run: (to job_started ts, to the job's own mark), and
    the most jobs the journal shows running at once."""
    ends: list[float] = []
    own_starts: list[float] = []
    for line in ledger.read_text().split("\n"):
        if line:
            kind, stamp = line.split()
            (ends if kind == "end" else own_starts).append(float(stamp))
    events = journal_events(work / "j.jsonl")
    starts = sorted(epoch(e["ts"]) for e in events if e["type"] == "job_started")
    running = most = 0
    for e in events:  # in the order written, which is time order for one runner
        running += {"job_started": 1, "job_finished": -1}.get(str(e["type"]), 0)
        most = max(most, running)
    ends.sort()
    own_starts.sort()
    pairs = range(len(starts) - slots)
    return ([starts[slots + k] - ends[k] for k in pairs],
            [own_starts[slots + k] - ends[k] for k in pairs], most)


def idle_cpu(work: Path, text: str, n: int, window: float, jq: list[str],
             env: dict[str, str]) -> tuple[float, int]:
    """The runner's own CPU seconds per second while its jobs sleep, and how many of the
    `n` jobs were running (a runner that does not run them at once has fewer)."""
    work.mkdir()
    (work / "c.yaml").write_text(text)
    child = subprocess.Popen([*jq, "run", "--quiet", "--config", "c.yaml", "--state",
                              "j.jsonl"], cwd=work, env=env, stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    journal = work / "j.jsonl"

    def running() -> int:
        if not journal.exists():
            return 0
        return sum(e["type"] == "job_started" for e in journal_events(journal))

    try:
        deadline = time.monotonic() + 10
        while running() < n and time.monotonic() < deadline:
            time.sleep(0.05)
        if running() == 0:
            raise SystemExit(f"no job started in {work}")
        time.sleep(0.5)  # let the spawns settle
        before, started = cpu_seconds(child.pid), time.monotonic()
        time.sleep(window)
        used, spent = cpu_seconds(child.pid) - before, time.monotonic() - started
        count = running()
    finally:
        child.send_signal(signal.SIGINT)
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    return used / spent, count


def main() -> int:
    parser = quick_arg(arg_parser(__doc__, runs=5))
    parser.add_argument("--jobs", type=int, default=12)
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--window", type=float, default=10.0,
                        help="seconds of sleeping jobs over which CPU is measured (10)")
    args = parser.parse_args()
    n, slots = args.jobs, args.slots
    runs, window = (1, 2.0) if args.quick else (args.runs, args.window)
    ideal = math.ceil(n / slots) * SLEEP
    jq = journalq_command()
    with scratch("slots", args.keep) as tmp:
        env = bench_env(tmp)
        ok = supported(tmp, jq, env)
        print(f"slots: {n} x sleep {SLEEP} with slots: {slots}, {runs} runs; journalq "
              f"{'knows' if ok else 'does not know'} `slots:`; in {tmp}", file=sys.stderr)
        rows: list[Row] = []
        cases: list[Case] = []
        extra: dict[str, object] = {"supported": ok}
        if ok:
            (tmp / "sleep.yaml").write_text(config([f"sleep {SLEEP}"] * n, slots))
            (tmp / "one.yaml").write_text(config(["true"], slots))
            ledger_cmd = ('echo "start $(date +%s.%N)" >> ../ledger; sleep ' + str(SLEEP)
                          + '; echo "end $(date +%s.%N)" >> ../ledger')
            (tmp / "ledger.yaml").write_text(config([ledger_cmd] * n, slots, shell=True))

            def journalq_case(name: str, conf: str) -> Case:
                def prepare(run: int) -> tuple[list[str], str | None]:
                    work = tmp / f"{slug(name)}-{run}" / "w"
                    work.mkdir(parents=True)
                    return [*jq, "run", "--quiet", "--config", str(tmp / conf), "--state",
                            "j.jsonl"], str(work)
                return Case(name, prepare)

            wall = journalq_case(f"run, {n} x sleep {SLEEP}, slots {slots}", "sleep.yaml")
            one = journalq_case(f"run, 1 x true, slots {slots}", "one.yaml")
            ledger = journalq_case(f"run, {n} x ledger jobs, slots {slots}", "ledger.yaml")
            cases = [wall, one, ledger]
            parallel = shutil.which("parallel")
            if parallel:
                cases.append(Case(f"parallel -j{slots} sleep {SLEEP} ({n} jobs)", lambda _: (
                    [parallel, "--will-cite", f"-j{slots}", "-N0", "sleep", str(SLEEP),
                     ":::", *map(str, range(n))], None)))
            alternate(cases, runs, env=env)
            to_journal: list[float] = []
            to_own: list[float] = []
            most = slots
            for run in range(1, runs + 1):  # the timed runs (0 is the warm-up)
                base = tmp / f"{slug(ledger.name)}-{run}"
                a, b, at_once = handover(base / "w", base / "ledger", slots)
                to_journal += a
                to_own += b
                most = min(most, at_once)
            extra["most_running_at_once"] = most
            extra["handover_to_job_started"] = to_journal
            extra["handover_to_own_start"] = to_own
            latency = statistics.median(to_journal)
            rows += [
                Row(f"wall, {n} x sleep {SLEEP} with slots: {slots} (whole process)",
                    f"{wall.median:.2f} s", "ideal", f"{ideal:.2f} s", wall.median / ideal,
                    "<= 1.1x", wall.median / ideal <= 1.1),
                Row("  the same beyond start-up (minus run of 1 x true) (info)",
                    f"{wall.median - one.median:.2f} s", "ideal", f"{ideal:.2f} s",
                    (wall.median - one.median) / ideal, "", None),
            ]
            if parallel:
                par = cases[-1]
                rows.append(Row(f"  GNU parallel -j{slots}, same sleeps (info)",
                                f"{par.median:.2f} s", "ideal", f"{ideal:.2f} s",
                                par.median / ideal, "", None))
            rows += [
                Row("hand-over: a job's exit -> next job_started (all slots busy)",
                    f"{latency * 1000:.1f} ms"
                    + ("" if most >= slots else f" (at most {most} of {slots} ran at once)"),
                    "", "", None, "median <= 5 ms", latency <= 0.005),
                Row("  max of the same (info)", f"{max(to_journal) * 1000:.1f} ms", "", "",
                    None, f"{len(to_journal)} hand-overs", None),
                Row("  exit -> the next job's own start mark (spawn, sh, date) (info)",
                    f"{statistics.median(to_own) * 1000:.1f} ms", "", "", None, "", None),
            ]
        else:
            rows += [
                Row(f"wall, {n} x sleep {SLEEP} with slots: {slots}", "not supported yet",
                    "ideal", f"{ideal:.2f} s", None, "<= 1.1x", None),
                Row("hand-over: a job's exit -> next job_started (all slots busy)",
                    "not supported yet", "", "", None, "median <= 5 ms", None),
            ]

        print(f"  idle CPU: {window:g} s window of sleeping jobs ...", file=sys.stderr,
              flush=True)
        sequential, _ = idle_cpu(tmp / "idle-sequential", config(["sleep 60"], None), 1,
                                 window, jq, env)
        extra["idle_cpu_sequential"] = sequential
        if ok:
            busy, count = idle_cpu(tmp / "idle-slots", config(["sleep 60"] * slots, slots),
                                   slots, window, jq, env)
            extra["idle_cpu_slots"], extra["idle_jobs_running"] = busy, count
            all_in = count >= slots
            rows.append(Row(f"runner CPU while {slots} jobs sleep ({window:g} s)",
                            f"{busy * 100:.2f}% of a core"
                            + ("" if all_in else f" (only {count} of {slots} ran at once)"),
                            "today's runner, 1 job sleeping", f"{sequential * 100:.2f}%",
                            busy / sequential if sequential > 0 else None, "<= 1% of a core",
                            busy <= 0.01 if all_in else None))
        else:
            rows.append(Row(f"runner CPU while {slots} jobs sleep ({window:g} s)",
                            "not supported yet", "today's runner, 1 job sleeping",
                            f"{sequential * 100:.2f}%", None, "<= 1% of a core", None))
        rows += spread_rows(cases, lambda case: f"{case.median:.2f} s")
        title = (f"Slots (issue 12): {n} x sleep {SLEEP} with slots: {slots}, median of {runs}"
                 if ok else "Slots (issue 12): `slots:` not supported yet by this journalq")
        print_table(title, rows)
        save_json(args.json, title, rows, cases, extra)
    return 0


if __name__ == "__main__":
    sys.exit(main())
