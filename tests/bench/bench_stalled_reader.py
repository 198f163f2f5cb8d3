"""Issue 10.1: a stalled reader of `run`'s stdout must not stop heartbeats or timeouts.

What it measures: `journalq run` whose stdout is a pipe nobody reads for `--stall` seconds
(default 20), as in `journalq run | (sleep 20; cat >/dev/null)` or a terminal after Ctrl-S,
with a job that prints a 100-byte line every millisecond, `heartbeat_seconds: 1` and
`grace_seconds: 1`. Two runs, each beside the same run with stdout read all along (the
baseline, in the same invocation):

- timeout: the job never ends by itself and has `timeout: 3`. The figure is how long after
  its `job_started` the journal's `job_finished` came (its `ts` minus the start's `ts`);
- heartbeats: the job prints for `--stall - 5` s by its own clock and exits 0 (no timeout).
  The figures are the heartbeats the journal holds for the attempt, against the attempt's
  length / cadence, and the longest silence between start, heartbeats and finish.

After the stall the script reads the pipe to its end and waits for `run` to exit.

Bars (issue 10): the timeout fires within timeout + grace + 1 s (5 s); heartbeats at their
cadence +-1 (count within 1 of length / cadence, and no silence over cadence + 1 s).

    python tests/bench/bench_stalled_reader.py [--stall 20] [--quick] [--keep] [--json FILE]
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import threading
import time
from pathlib import Path

from benchlib import (
    Row,
    arg_parser,
    bench_env,
    epoch,
    journal_events,
    journalq_command,
    print_table,
    quick_arg,
    save_json,
    scratch,
)

JOB = """\
import os, sys, time
# A 100-byte line every millisecond, for argv[1] seconds by our own clock (or forever).
limit = float(sys.argv[1]) if len(sys.argv) > 1 else float("inf")
line = b"tick " * 19 + b"....\\n"
end = time.monotonic() + limit
while time.monotonic() < end:
    os.write(1, line)
    time.sleep(0.001)
"""

CADENCE = 1.0
GRACE = 1.0


def config(job: Path, timeout: float | None, seconds: float | None) -> str:
    words = ["python", str(job)] + ([] if seconds is None else [str(seconds)])
    return (
        "queue: stall\n"
        "out_root: outputs\n"
        f"heartbeat_seconds: {CADENCE}\n"
        f"grace_seconds: {GRACE}\n"
        "jobs:\n"
        "  - id: chatty\n"
        f"    command: [{', '.join(repr(w) for w in words)}]\n"
        + (f"    timeout: {timeout}\n" if timeout is not None else "")
    )


def run(tmp: Path, name: str, text: str, stall: float, env: dict[str, str]) -> dict[str, float]:
    """One `journalq run`, its stdout unread for `stall` seconds (0: read all along);
    returns the attempt's figures from the journal."""
    work = tmp / name
    work.mkdir()
    (work / "c.yaml").write_text(text)
    drained = threading.Event()

    def drain(stream: object) -> None:
        while stream.read(65536):  # type: ignore[attr-defined]
            pass
        drained.set()

    with open(work / "stderr.txt", "wb") as err:
        started = time.monotonic()
        child = subprocess.Popen([*journalq_command(), "run", "--config", "c.yaml", "--state",
                                  "j.jsonl"], cwd=work, env=env, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE, stderr=err)
        assert child.stdout is not None
        if stall:
            time.sleep(stall)
        reader = threading.Thread(target=drain, args=(child.stdout,), daemon=True)
        reader.start()
        rc = child.wait(timeout=stall + 120)
        wall = time.monotonic() - started
        reader.join(timeout=10)
    events = [e for e in journal_events(work / "j.jsonl") if e.get("job") == "chatty"]
    start = next(epoch(e["ts"]) for e in events if e["type"] == "job_started")
    finish = next(epoch(e["ts"]) for e in events if e["type"] == "job_finished")
    reason = next(str(e["reason"]) for e in events if e["type"] == "job_finished")
    beats = [epoch(e["ts"]) for e in events if e["type"] == "heartbeat"]
    marks = [start, *beats, finish]
    gap = max(b - a for a, b in itertools.pairwise(marks))
    length = finish - start
    print(f"  {name:<28} rc {rc}  wall {wall:5.1f} s  attempt {length:5.2f} s ({reason})  "
          f"{len(beats)} heartbeats, longest silence {gap:.2f} s", file=sys.stderr, flush=True)
    return {"rc": rc, "wall": wall, "length": length, "beats": len(beats), "gap": gap,
            "expected_beats": length / CADENCE, "timed_out": float(reason == "timeout")}


def main() -> int:
    parser = quick_arg(arg_parser(__doc__, runs=1))
    parser.add_argument("--stall", type=float, default=20.0,
                        help="seconds stdout stays unread (default 20)")
    args = parser.parse_args()
    stall = 8.0 if args.quick else args.stall
    timeout = 2.0 if args.quick else 3.0
    talk = max(1.0, stall - 5)
    with scratch("stall", args.keep) as tmp:
        job = tmp / "job.py"
        job.write_text(JOB)
        env = bench_env(tmp)
        print(f"stalled reader: stdout unread for {stall:g} s; timeout {timeout:g} s, "
              f"heartbeat {CADENCE:g} s, grace {GRACE:g} s, in {tmp}", file=sys.stderr)
        run(tmp, "warm-up", config(job, None, 0.5), 0, env)
        results = {
            "timeout, read": run(tmp, "timeout, stdout read", config(job, timeout, None), 0,
                                 env),
            "timeout, stalled": run(tmp, "timeout, stdout stalled",
                                    config(job, timeout, None), stall, env),
            "beats, read": run(tmp, "heartbeats, stdout read", config(job, None, talk), 0,
                               env),
            "beats, stalled": run(tmp, "heartbeats, stdout stalled", config(job, None, talk),
                                  stall, env),
        }
        fired, base = results["timeout, stalled"], results["timeout, read"]
        beats, beats_base = results["beats, stalled"], results["beats, read"]
        limit = timeout + GRACE + 1
        rows = [
            Row(f"timeout {timeout:g} s fired after (stdout unread {stall:g} s)",
                f"{fired['length']:.2f} s", "same, stdout read", f"{base['length']:.2f} s",
                fired["length"] / base["length"], f"<= {limit:g} s (timeout+grace+1)",
                fired["length"] <= limit and bool(fired["timed_out"])),
            Row("heartbeats during the attempt (stdout unread)", f"{beats['beats']}",
                "attempt length / cadence", f"{beats['expected_beats']:.1f}",
                beats["beats"] / beats["expected_beats"], "within +-1",
                abs(beats["beats"] - beats["expected_beats"]) <= 1),
            Row("longest silence in the journal (stdout unread)", f"{beats['gap']:.2f} s",
                "same, stdout read", f"{beats_base['gap']:.2f} s",
                beats["gap"] / beats_base["gap"], f"<= {CADENCE + 1:g} s (cadence+1)",
                beats["gap"] <= CADENCE + 1),
            Row("  heartbeats, stdout read (info)", f"{beats_base['beats']}",
                "attempt length / cadence", f"{beats_base['expected_beats']:.1f}", None,
                "", None),
            Row("  attempt length, heartbeat job (info)", f"{beats['length']:.2f} s",
                "same, stdout read", f"{beats_base['length']:.2f} s",
                beats["length"] / beats_base["length"], f"job talks {talk:g} s", None),
        ]
        title = (f"Stalled reader (issue 10.1): stdout unread {stall:g} s, heartbeat "
                 f"{CADENCE:g} s, grace {GRACE:g} s")
        print_table(title, rows, value="value")
        save_json(args.json, title, rows, [], {"results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
