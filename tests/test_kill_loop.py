"""SIGKILL a real `journalq run --resume` at random moments, again and again, until its queue
is done: no event is ever lost, a torn tail is moved aside, and a job runs again only when
its finish was not yet durable.

Seeded: JOURNALQ_KILL_SEED replays a loop's choices (timing still varies), and
JOURNALQ_KILL_ITERATIONS caps the loop (default 200; it stops early once all jobs are done).
test_run_crash.py kills the runner at each named step of one attempt; this kills it
anywhere, including in start-up, recovery and while it moves a torn tail aside.
"""

from __future__ import annotations

import collections
import json
import os
import random
import signal
import statistics
import time
from pathlib import Path
from typing import Any

import pytest
import reliability
from test_run_support import SmallQueue

from journalq import checkpoint
from journalq.reader import Reader
from journalq.state import Status

# Long crash, fault and multi-runtime scenarios: `pytest -m "not slow"` skips them.
pytestmark = pytest.mark.slow

JOBS = [f"job{n:02d}" for n in range(1, 21)]
ITERATIONS = int(os.environ.get("JOURNALQ_KILL_ITERATIONS", "200"))
LATE_KILLS = 0.1  # share of kills timed from the first write rather than from the spawn
POLL_SECONDS = 0.005
TORN_TAILS = 0.15  # share of iterations that first leave a torn tail, as a crash mid-append


def good_prefix(path: Path) -> bytes:
    """The journal's bytes up to its last whole valid line (without a torn tail)."""
    if not path.exists():
        return b""
    journal_reader = Reader(str(path))
    for _ in journal_reader.events():
        pass
    return path.read_bytes()[: journal_reader.report().good_size]


def torn_tail(rng: random.Random, data: bytes) -> bytes:
    """What a crash mid-append can leave: part of a line, or NUL bytes (a power loss). Never
    a newline: a whole line of NULs would be corruption (`journalq repair`), not a tail."""
    lines = data.splitlines(keepends=True)
    if lines and rng.random() < 0.6:
        line = rng.choice(lines)
        return line[: rng.randint(1, len(line) - 2)]
    return b"\0" * rng.randint(1, 600)


def all_done(path: Path) -> bool:
    """Whether every job of the journal is done (read without writing)."""
    if not path.exists():
        return False
    queue = checkpoint.replay_anew(str(path))[0].queue()
    return len(JOBS) == len(queue.by_status(Status.DONE))


def kill_at_random(queue: SmallQueue, rng: random.Random,
                   startups: list[float]) -> tuple[int, str, bool]:
    """Start `run --resume` and SIGKILL it at a random moment: mostly within its start-up
    (as long as the runners so far took to write, in `startups`) and 50 ms past it, where
    recovery happens; sometimes up to 300 ms after its first write, anywhere in a job.
    Returns its exit code, its stderr, and whether it was killed."""
    before = queue.journal.stat().st_size if queue.journal.exists() else -1
    runner = queue.start("--resume", "--quiet", WORKER_SLEEP=f"{rng.uniform(0, 0.05):.3f}")
    spawned = time.monotonic()
    late = rng.random() < LATE_KILLS
    startup = statistics.median(startups) if startups else 0.2
    delay = rng.uniform(0, 0.3) if late else rng.uniform(0, startup + 0.05)
    deadline = None if late else spawned + delay
    wrote = False
    while runner.poll() is None:
        now = time.monotonic()
        if not wrote and queue.journal.exists() and queue.journal.stat().st_size != before:
            wrote = True
            startups.append(now - spawned)
            deadline = deadline or now + delay
        if deadline is not None and now >= deadline:
            runner.kill()
            break
        assert now - spawned < 60, "the runner neither wrote nor exited in 60s"
        time.sleep(POLL_SECONDS)
    _, err = runner.communicate(timeout=30)
    queue.runners.remove(runner)
    return runner.returncode, err, runner.returncode == -signal.SIGKILL


def check_reruns(events: list[dict[str, Any]], runs: list[tuple[str, int]]) -> int:
    """Every worker run is of a journaled attempt, each attempt ran at most once, and an
    attempt was started after another only if that one had neither `job_finished` nor a
    recovery from its card: its finish was not durable. Returns how many runs were reruns."""
    started: dict[str, list[int]] = collections.defaultdict(list)
    settled: dict[tuple[str, int], dict[str, Any]] = {}
    for event in events:
        key = (event.get("job"), event.get("attempt"))
        if event["type"] == "job_started":
            started[event["job"]].append(event["attempt"])
        elif event["type"] in ("job_finished", "job_recovered"):
            assert key not in settled, f"attempt {key} settled twice"
            settled[key] = event
    assert len(runs) == len(set(runs)), f"an attempt's worker started twice: {runs}"
    assert set(runs) <= {(job, n) for job, ns in started.items() for n in ns}, (
        "a worker ran for an attempt the journal does not hold")
    for job, attempts in started.items():
        for earlier in attempts[:-1]:
            how = settled.get((job, earlier), {})
            assert "job_recovered" == how.get("type"), f"{job} {earlier} rerun after {how}"
            assert ("abandoned", "pending") == (how["reason"], how["to"]), (
                f"{job} attempt {earlier} rerun after {how}")
        last = settled.get((job, attempts[-1]), {})
        assert "done" in (last.get("outcome"), last.get("to")), f"{job} ended {last}"
    per_job = collections.Counter(job for job, _ in runs)
    return sum(n - 1 for n in per_job.values())


def test_sigkill_at_random_moments_loses_nothing(project: Path) -> None:
    """Kill a real runner at random moments until its 20 jobs are done: every kill leaves
    the journal beginning with all the whole lines it had before, torn tails are moved
    aside, and jobs run again only when their finish was not durable."""
    seed = int(os.environ.get("JOURNALQ_KILL_SEED", str(time.time_ns() % 1_000_000)))
    print(f"kill loop: JOURNALQ_KILL_SEED={seed} JOURNALQ_KILL_ITERATIONS={ITERATIONS}")
    rng = random.Random(seed)
    began = time.monotonic()
    kills = torn_seen = injected_seen = moved_warnings = 0
    injected: list[bytes] = []
    startups: list[float] = []
    with SmallQueue(project, JOBS, max_attempts=1000, heartbeat_seconds=0.02,
                    grace_seconds=0.2) as queue:
        previous = pending = b""  # the whole lines, and a torn tail not yet moved aside
        for iteration in range(1, ITERATIONS + 1):
            where = f"seed {seed}, iteration {iteration}"
            if previous and not pending and rng.random() < TORN_TAILS:
                pending = torn_tail(rng, previous)
                with queue.journal.open("ab") as handle:
                    handle.write(pending)
                injected.append(pending)
                injected_seen += 1

            code, err, killed = kill_at_random(queue, rng, startups)

            assert code in (0, -9), f"{where}: exit {code}: {err}"
            kills += killed
            moved_warnings += err.count("moved them to")
            now = queue.journal.read_bytes() if queue.journal.exists() else b""
            assert now.startswith(previous), f"{where}: the journal lost whole lines"
            current = good_prefix(queue.journal)
            tail = now[len(current):]
            torn_seen += bool(tail) and tail != pending  # a new one, left by this kill
            previous, pending = current, tail
            if all_done(queue.journal):
                break
        if not all_done(queue.journal):  # the iterations ran out: finish without killing
            finished = queue.run("--resume", "--quiet")
            assert 0 == finished.returncode, f"seed {seed}: {finished.stderr}"
        events = queue.events()
        assert queue.journal.read_bytes().startswith(previous), f"seed {seed}: lines lost"
        reruns = check_reruns(events, queue.runs())
        state = queue.status()
    seconds = time.monotonic() - began

    assert {"done": len(JOBS)} == {k: v for k, v in state["counts"].items() if v}
    assert 0 == checkpoint.replay_anew(str(queue.journal))[1].tail_size
    asides = [p.read_bytes() for p in queue.journal.parent.glob("*.torn-*")]
    assert all(any(tail in aside for aside in asides) for tail in injected), (
        f"seed {seed}: a torn tail was cut off without being kept")
    print(f"kill loop: {iteration} iterations, {kills} kills, {torn_seen} torn tails from kills, "
          f"{injected_seen} injected, {len(asides)} moved aside ({moved_warnings} warnings), "
          f"{reruns} reruns, {seconds:.1f}s")
    reliability.count(reliability.KILLS, kills, f"{iteration} iterations in {seconds:.0f}s, "
                      f"{reruns} runs of jobs whose finish was not durable")
    reliability.count(reliability.TORN_TAILS, torn_seen + injected_seen,
                      f"kill loop {torn_seen} from kills + {injected_seen} injected, "
                      f"{len(asides)} moved aside")
    reliability.count(reliability.EVENTS_LOST, 0)
    reliability.count(reliability.DONE_RERUN, 0)


def test_check_reruns_refuses_a_rerun_after_a_durable_finish() -> None:
    """The loop's rerun check is not vacuous: a second attempt after a `job_finished` or a
    recovery from the run card fails it, one after an abandoned attempt passes."""
    def history(settle: dict[str, Any]) -> list[dict[str, Any]]:
        return [{"type": "job_started", "job": "a", "attempt": 1},
                {"job": "a", "attempt": 1, **settle},
                {"type": "job_started", "job": "a", "attempt": 2},
                {"type": "job_finished", "job": "a", "attempt": 2, "outcome": "done"}]

    runs = [("a", 1), ("a", 2)]
    abandoned = {"type": "job_recovered", "reason": "abandoned", "to": "pending"}
    assert 1 == check_reruns(history(abandoned), runs)
    for durable in ({"type": "job_finished", "outcome": "done"},
                    {"type": "job_recovered", "reason": "card", "to": "done"}):
        try:
            check_reruns(history(durable), runs)
        except AssertionError:
            continue
        raise AssertionError(f"a rerun after {json.dumps(durable)} passed the check")
