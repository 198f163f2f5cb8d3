"""SIGKILL a real `journalq run --resume` with `slots: 3` at random moments, 100+ times (and
in some iterations every process of the run with it, as when a runtime dies), until its
queue is done: no job whose `job_finished` was durable ever runs again, no process of an
attempt outlives the journal's record of that attempt's end, none is left at the end, and
every job ends done.

A killed multi-slot runner leaves up to three process groups running, and some jobs leave
a `setsid` sleeper outside their group too: the next runner must stop all of them when it
recovers their jobs (the lock file's children, and the attempt tag in /proc/*/environ).

Seeded: JOURNALQ_KILL_SEED replays a loop's choices (timing still varies);
JOURNALQ_SLOT_KILLS sets how many kills (default 100); when a queue is done before
that, the loop goes on with a fresh one.
"""

from __future__ import annotations

import os
import random
import signal
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import reliability
from slots_support import SlotQueue, job
from test_kill_loop import check_reruns

KILLS = int(os.environ.get("JOURNALQ_SLOT_KILLS", "100"))
JOBS = 45
EARLY_KILLS = 0.3  # share of kills within start-up and recovery, timed from the spawn
LATE_SECONDS = 0.7  # the other kills: up to this long after the first write
EVERYTHING = 0.15  # share of kills that take every process of the run along
POLL_SECONDS = 0.005
ORPHANS = "orphaned processes left"


def tags(pids: list[int]) -> dict[int, str]:
    """The attempt tag (JOURNALQ_ATTEMPT_ID) of each of these processes that has one."""
    found = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                environ = f.read().split(b"\0")
        except OSError:
            continue
        for item in environ:
            if item.startswith(b"JOURNALQ_ATTEMPT_ID="):
                found[pid] = item.split(b"=", 1)[1].decode()
    return found


def settled(events: list[dict[str, Any]]) -> set[str]:
    """Tags (session/job/attempt) of every attempt the journal records as over."""
    sessions = {(e["job"], e["attempt"]): e["session"] for e in events
                if e["type"] == "job_started"}
    over = set()
    for e in events:
        if e["type"] in ("job_finished", "job_recovered", "job_interrupted"):
            key = (e["job"], e["attempt"])
            over.add(f"{sessions[key]}/{key[0]}/{key[1]}")
    return over


def outliving(queue: SlotQueue) -> dict[int, str]:
    """Live processes of attempts whose end the journal already records (should be none;
    a process SIGKILLed a moment ago gets a second to die)."""
    deadline = time.monotonic() + 1.0
    while True:
        over = settled(queue.events())
        late = {pid: tag for pid, tag in tags(queue.leftovers()).items() if tag in over}
        if not late or time.monotonic() > deadline:
            return late
        time.sleep(0.02)


def kill_everything(queue: SlotQueue, runner: subprocess.Popen[str]) -> int:
    """SIGKILL the runner and then every process of the run, as if the machine died with
    it; returns how many processes besides the runner were killed."""
    runner.kill()
    killed: set[int] = set()
    for _ in range(50):
        found = queue.leftovers(exclude=[runner.pid])
        if not found:
            break
        for pid in found:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            except OSError:
                pass
        time.sleep(0.01)
    return len(killed)


class Loop:
    """The loop's choices and tallies, over as many queues (rounds) as the kills need."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.kills = self.everything = self.descendants = self.iterations = 0
        self.startups: list[float] = []

    def once(self, queue: SlotQueue, previous: bytes) -> tuple[bool, bytes]:
        """Start `run --resume` and SIGKILL it at a random moment (mostly in a job, some in
        its start-up and recovery); check the journal and the process table after it.
        Returns whether it was killed (else it ran to the end) and the journal's lines."""
        self.iterations += 1
        where = f"seed {self.seed}, iteration {self.iterations}"
        before = queue.journal.stat().st_size if queue.journal.exists() else -1
        runner = queue.start("--resume", "--quiet")
        spawned = time.monotonic()
        early = self.rng.random() < EARLY_KILLS
        startup = statistics.median(self.startups) if self.startups else 0.3
        delay = self.rng.uniform(0, startup + 0.05 if early else LATE_SECONDS)
        deadline = spawned + delay if early else None
        wrote = False
        while runner.poll() is None:
            now = time.monotonic()
            if not wrote and queue.journal.exists() and queue.journal.stat().st_size != before:
                wrote = True
                self.startups.append(now - spawned)
                deadline = deadline or now + delay
            if deadline is not None and now >= deadline:
                if self.rng.random() < EVERYTHING:
                    self.everything += 1
                    self.descendants += kill_everything(queue, runner)
                else:
                    runner.kill()
                break
            assert now - spawned < 60, f"{where}: the runner neither wrote nor exited"
            time.sleep(POLL_SECONDS)
        _, err = runner.communicate(timeout=30)
        assert runner.returncode in (0, -9), f"{where}: exit {runner.returncode}: {err}"
        killed = runner.returncode == -9
        self.kills += killed
        journal = queue.journal.read_bytes() if queue.journal.exists() else b""
        assert journal.startswith(previous), f"{where}: the journal lost whole lines"
        assert {} == outliving(queue), f"{where}: processes outlived their attempt"
        return killed, journal[: journal.rfind(b"\n") + 1]


@pytest.mark.slow
def test_sigkill_a_three_slot_runner_again_and_again(project: Path) -> None:
    """Kill until KILLS kills are done, over fresh queues of JOBS jobs each (rounds): a
    round ends when a runner finishes its queue, or, once the kills are done, with one run
    that is not killed. Each round's journal and ledger are then checked."""
    seed = int(os.environ.get("JOURNALQ_KILL_SEED", str(time.time_ns() % 1_000_000)))
    print(f"slot kill loop: JOURNALQ_KILL_SEED={seed} JOURNALQ_SLOT_KILLS={KILLS}")
    loop = Loop(seed)
    jobs = [job(f"job{n:02d}", "--sleep", f"{0.05 + (n % 5) * 0.1:.2f}",
                *(["--daemon"] if n % 3 == 0 else [])) for n in range(JOBS)]
    began = time.monotonic()
    rounds = reruns = started = finished_by_kill_loop = 0
    while loop.kills < KILLS:
        rounds += 1
        with SlotQueue(project, jobs, name=f"r{rounds}", slots=3, heartbeat_seconds=0.05,
                       grace_seconds=0.2, defaults={"max_attempts": 1000}) as queue:
            previous, killed = b"", True
            while killed and loop.kills < KILLS:
                killed, previous = loop.once(queue, previous)
            if killed:  # the kills are done: finish the round without killing
                done = queue.run("--resume", "--quiet", SLOT_SLEEP_SCALE="0")
                assert 0 == done.returncode, f"seed {seed}: {done.stderr}"
            else:
                finished_by_kill_loop += 1
            events = queue.events()
            reruns += check_reruns(events, [(m.job, m.attempt) for m in queue.marks("start")])
            started += len(queue.events("job_started"))
            state = queue.status()
            assert {"done": JOBS} == {k: v for k, v in state["counts"].items() if v}
            left = queue.leftovers()
            assert [] == left, f"seed {seed}: processes of the run left: {left}"
    seconds = time.monotonic() - began

    print(f"slot kill loop: {loop.iterations} iterations, {loop.kills} kills "
          f"({loop.everything} with every process of the run, {loop.descendants} "
          f"processes), {rounds} queues of {JOBS} jobs ({finished_by_kill_loop} finished "
          f"between kills), {started} attempts started, {reruns} reruns of attempts whose "
          f"finish was not durable, {seconds:.1f}s")
    reliability.count(reliability.KILLS, loop.kills, f"slots: 3 loop {loop.kills} kills "
                      f"({loop.everything} with every process) in {seconds:.0f}s")
    reliability.count(reliability.DONE_RERUN, 0)
    reliability.count(ORPHANS, 0, f"slots: 3 kill loop, checked through /proc after each "
                      f"of {loop.iterations} runs")
