"""Issue 13.4: the sync folder at cluster scale: many sessions, one folder.

What it runs: `--sessions` (default 200) sequential `journalq run --quiet JOB` processes,
as the tasks of a job array would be: each with its own machine identity
(JOURNALQ_BOOT_ID), its own fresh local journal (a new node-local disk), one job each
(`sleep`, heartbeating every `heartbeat_seconds`, so that `--beats` heartbeats per session
make the journal grow as a real one does), all on one sync folder.

What it measures, after each session:
- the events so far (the union of every copy's events, by id) and the bytes of that merged
  journal, against the bytes of every file in the folder (compaction must keep the folder
  proportional to the merged journal, whatever the number of sessions);
- the pull a new session pays: a fresh `CopyReader` over the folder (what a task on a new
  node reads before it starts, as it has no journal yet) and the merge of its events into
  an empty journal's coverage, timed in this process (CPU time, best of 5);
- the whole session's wall time (fork to exit: start-up, pull, the job, pushes, compaction).

Bars (issue 13): folder bytes <= 3x the merged journal after every session; the pull time
per event does not grow with the number of sessions (log-log slope of pull time against
events, from a quarter of the way to the end, <= 1.2: linear or better).

    python tests/bench/bench_sessions.py [--sessions 200] [--beats 20] [--quick] [--keep]
"""

from __future__ import annotations

import math
import subprocess
import sys
import time
from pathlib import Path

from benchlib import arg_parser, bench_env, journal_events, journalq_command, quick_arg, scratch

from journalq.copies import extend
from journalq.sync import CopyReader

QUEUE = "q"


def folder_bytes(folder: Path) -> int:
    """Bytes of every file in the sync folder (copies and anything else left there)."""
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())


def merged(folder: Path) -> tuple[int, int]:
    """(events, bytes) of the union of the copies' events, by id: the merged journal."""
    seen: dict[str, int] = {}
    for copy in folder.glob(f"{QUEUE}.*.jsonl"):
        with open(copy, "rb") as handle:
            for line in handle:
                if line.endswith(b"\n"):
                    key = line[:200].split(b'"id":"', 1)[1].split(b'"', 1)[0]
                    seen.setdefault(key.decode(), len(line))
    return len(seen), sum(seen.values())


def pull_seconds(folder: Path) -> float:
    """What a new session's first pull costs: read every copy, extend an empty coverage.
    CPU time of this process (best of 5): wall time on a shared machine is mostly noise at
    these sizes, and the pull is CPU-bound once the files are in the page cache."""
    best = math.inf
    for _ in range(5):
        started = time.process_time()
        reader = CopyReader(str(folder), QUEUE, warn=lambda _: None)
        extend({}, reader.candidates())
        best = min(best, time.process_time() - started)
    return best


def write_config(root: Path, sessions: int, beats: int) -> Path:
    """A queue of `sessions` jobs, each a `sleep` long enough for `beats` heartbeats."""
    heartbeat = 0.02
    lines = [f"queue: {QUEUE}", f"heartbeat_seconds: {heartbeat}", "sync_seconds: 1",
             "jobs:"]
    for n in range(sessions):
        lines += [f"  - id: job{n:04d}",
                  f"    command: [sleep, \"{heartbeat * beats + heartbeat / 2:.3f}\"]"]
    config = root / "q.yaml"
    config.write_text("\n".join(lines) + "\n")
    return config


def slope(points: list[tuple[int, float]]) -> float:
    """The log-log slope of time against events, least squares (1.0: linear)."""
    xs = [math.log(e) for e, _ in points]
    ys = [math.log(max(t, 1e-9)) for _, t in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return (sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
            / sum((x - mx) ** 2 for x in xs))


def main() -> int:
    parser = quick_arg(arg_parser(__doc__, runs=1))
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--beats", type=int, default=20, help="heartbeats per session")
    parser.add_argument("--verbose", action="store_true", help="the folder after each session")
    args = parser.parse_args()
    sessions, beats = (20, 5) if args.quick else (args.sessions, args.beats)
    every = max(1, sessions // 10)
    with scratch("sessions", args.keep) as tmp:
        env = bench_env(tmp)
        config = write_config(tmp, sessions, beats)
        folder = tmp / "shared"
        jq = journalq_command()
        rows: list[tuple[int, int, int, int, float, float]] = []
        worst, worst_at = 0.0, 0
        print(f"{sessions} sequential sessions, one job each (~{beats} heartbeats), one sync "
              "folder; each session on a fresh local journal", file=sys.stderr)
        for n in range(sessions):
            local = tmp / "nodes" / f"{n:04d}"
            local.mkdir(parents=True)
            started = time.perf_counter()
            done = subprocess.run(
                [*jq, "run", "--config", str(config), "--sync-dir", str(folder), "--state",
                 str(local / f"{QUEUE}.jsonl"), "--quiet", f"job{n:04d}"],
                cwd=tmp, env={**env, "JOURNALQ_BOOT_ID": f"node-{n:04d}"},
                capture_output=True, text=True)
            wall = time.perf_counter() - started
            if done.returncode != 0:
                print(done.stderr, file=sys.stderr)
                return 1
            events, merged_bytes = merged(folder)
            held = folder_bytes(folder)
            if held / merged_bytes > worst:
                worst, worst_at = held / merged_bytes, n + 1
            if args.verbose:
                print(n + 1, events, merged_bytes, held, sorted(p.name for p in folder.iterdir()),
                      file=sys.stderr)
            if (n + 1) % every == 0 or n + 1 == sessions:
                rows.append((n + 1, events, merged_bytes, held, wall, pull_seconds(folder)))
        final = journal_events(tmp / "nodes" / f"{sessions - 1:04d}" / f"{QUEUE}.jsonl")
        done_jobs = {e["job"] for e in final if e["type"] == "job_finished"}
        print(f"\n{'sessions':>8} {'events':>7} {'merged B':>9} {'folder B':>9} "
              f"{'ratio':>6} {'copies':>6} {'session':>8} {'pull':>8} {'pull/event':>10}")
        for count, events, merged_bytes, held, wall, pull in rows:
            copies = "" if count != rows[-1][0] else str(len(list(folder.glob("q.*.jsonl"))))
            print(f"{count:>8} {events:>7} {merged_bytes:>9} {held:>9} "
                  f"{held / merged_bytes:>5.2f}x {copies:>6} {wall * 1000:>6.0f}ms "
                  f"{pull * 1000:>6.1f}ms {pull / events * 1e6:>8.2f}us")
        tail = [(events, pull) for _, events, _, _, _, pull in rows[len(rows) // 4:]]
        fitted = slope(tail) if len(tail) > 1 else float("nan")
        print(f"\nfolder bytes / merged journal, worst after any session: {worst:.2f}x "
              f"(after session {worst_at}) "
              f"(bar <= 3x): {'PASS' if worst <= 3 else 'FAIL'}")
        print(f"pull time vs events, log-log slope from 1/4 of the way: {fitted:.2f} "
              f"(bar <= 1.2, linear = 1): {'PASS' if fitted <= 1.2 else 'FAIL'}")
        print(f"jobs done in the last session's journal: {len(done_jobs)} of {sessions}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
