"""A realistic journalq journal generator, for the benchmarks (importable module and CLI).

What it writes: the journal that `journalq init` and a few `journalq run` sessions on a
Colab-like runtime would leave for a sweep of N jobs (default 10,000) with heartbeats:

- an `init` session: session_started, queue_created, one job_added per job, session_ended;
- `run` sessions of a few hundred to a few thousand jobs each: job_started, heartbeats
  (the bulk of the file), job_finished; a few jobs fail once and are retried by the attempt
  budget at once; a few runtimes die mid-job (no session_ended) and the next `run --resume`
  session recovers the attempt (job_recovered abandoned -> pending) and runs it again;
- a few jobs exhaust their budget (failed), an operator `retry` session gives them a fresh
  budget (job_retried) and a last `run` session finishes them, so by default every job ends
  `done` (which `bench_resume.py` needs).

Every line is a `journalq.events` object encoded by `journalq.codec.encode`, with ids
`<session>:<seq>` and strictly increasing fixed-width timestamps, so the real fold reads it
without anomalies. Heartbeats are ~97% of the lines: the first of each attempt goes through
`codec.encode` and the others reuse its bytes with only `id` and `ts` replaced (both
fixed-format, so nothing can need escaping); `--exact` encodes every line through the codec
instead, about 3x slower and byte-for-byte the same file. Lines are written through one
buffered file and fsync'd once at the end.

The job specs come from a generated YAML config (a `matrix:` of `lr` x `seed` running a
`python scripts/run_sweep.py ...` command) parsed by `journalq.config.parse`, so the config
written beside the journal matches its job_added events: `journalq run --config` on it finds
nothing new, nothing changed and nothing to run.

Target: 1,000,000 events in well under 15 s on this machine.

    python tests/bench/journal_gen.py OUT.jsonl [--jobs 10000] [--events 1000000]
        [--config OUT.yaml] [--seed 0] [--exact] [--check]
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import attrs
from benchlib import journalq_command

from journalq import codec, policy
from journalq import config as config_mod
from journalq import events as ev
from journalq.state import JobSpec

QUEUE = "bench"
BEAT_JITTER_MICROS = 40_000
HEARTBEAT_MICROS = 30_000_000  # a heartbeat every 30 s, as journalq's default
MAX_ATTEMPTS = 2
HOST = "colab-runtime"
BOOT_IDS = ("5f0d6c4e-1b7a-4f3e-9a51-2c8e0d7b9a11", "a83c2d10-77e4-4b55-8c1f-6e0b93d2c4f7")


# ---- the config --------------------------------------------------------------------------


def axes_for(n_jobs: int) -> tuple[list[str], list[int]]:
    """Two matrix axes whose product is exactly `n_jobs`: `lr` values x `seed` values."""
    seeds = next(s for s in (100, 50, 40, 25, 20, 10, 8, 5, 4, 2, 1) if n_jobs % s == 0)
    lrs = [f"{(i + 1) * 1e-5:.5f}" for i in range(n_jobs // seeds)]
    return lrs, list(range(seeds))


def config_text(n_jobs: int, out_root: str = "outputs", command: list[str] | None = None,
                max_attempts: int = MAX_ATTEMPTS, heartbeat_seconds: float = 30) -> str:
    """A YAML config whose matrix expands to exactly `n_jobs` jobs."""
    lrs, seeds = axes_for(n_jobs)
    if command is None:
        command = ["python", "scripts/run_sweep.py", "--model", "gpt2", "--lr", "{lr}",
                   "--seed", "{seed}", "--output-dir", "{out_dir}"]
    words = "\n".join(f"    - {_yaml_str(word)}" for word in command)
    return (
        f"queue: {QUEUE}\n"
        f"out_root: {out_root}\n"
        f"heartbeat_seconds: {heartbeat_seconds}\n"
        "defaults:\n"
        f"  max_attempts: {max_attempts}\n"
        "matrix:\n"
        '  id: "sweep-lr{lr}-seed{seed}"\n'
        "  axes:\n"
        f"    lr: [{', '.join(_yaml_str(lr) for lr in lrs)}]\n"
        f"    seed: [{', '.join(str(seed) for seed in seeds)}]\n"
        "  command:\n"
        f"{words}\n"
    )


def _yaml_str(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_config(path: str | os.PathLike[str], n_jobs: int, **options: object) -> \
        config_mod.Config:
    """Write the YAML config for `n_jobs` jobs and return it as journalq parses it."""
    text = config_text(n_jobs, **options)  # type: ignore[arg-type]
    Path(path).write_text(text)
    return config_mod.parse(text.encode(), os.fspath(path))


# ---- the journal -------------------------------------------------------------------------


class Clock:
    """Strictly increasing fixed-width UTC timestamps, cheap to format."""

    def __init__(self, micros: int) -> None:
        self.micros = micros
        self._second = -1
        self._prefix = ""

    def tick(self, step: int) -> str:
        self.micros += max(1, step)
        second, micro = divmod(self.micros, 1_000_000)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._prefix}.{micro:06d}Z"


@dataclass
class Stats:
    """What was generated."""

    events: int = 0
    bytes: int = 0
    jobs: int = 0
    heartbeats: int = 0
    sessions: int = 0
    failures: int = 0
    crashes: int = 0
    retried: int = 0
    seconds: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)


class _Out:
    """Stamps events for the current session and writes their encoded lines."""

    def __init__(self, handle: object, clock: Clock, rng: random.Random, exact: bool,
                 stats: Stats, dry: bool = False) -> None:
        self.handle = handle
        self.dry = dry
        self.clock = clock
        self.rng = rng
        self.exact = exact
        self.stats = stats
        self.session = ""
        self.seq = 0
        self._lines: list[bytes] = []

    def flush(self) -> None:
        self.handle.write(b"".join(self._lines))  # type: ignore[attr-defined]
        self._lines.clear()

    def begin(self, command: str, argv: tuple[str, ...], boot_id: str) -> None:
        self.session = self.rng.getrandbits(48).to_bytes(6, "big").hex()
        self.seq = 0
        self.stats.sessions += 1
        self.emit(ev.SessionStarted(
            command=command, host=HOST, boot_id=boot_id, pid=self.rng.randint(300, 60_000),
            pid_start=self.rng.randint(10_000, 9_000_000), argv=argv, journalq_version="0.1.0",
            python_version="3.11.7",
        ), step=self.rng.randint(2_000, 9_000_000))

    def emit(self, event: ev.Event, step: int = 1_000) -> bytes:
        self.seq += 1
        # Stamped as journalq's Writer.stamp does it: the session's next id, a later ts.
        stamped = attrs.evolve(event, id=f"{self.session}:{self.seq}",
                               ts=self.clock.tick(step), session=self.session)
        if self.dry:
            self.stats.events += 1
            return b""
        line = codec.encode(stamped)
        self._lines.append(line)
        self.stats.events += 1
        self.stats.bytes += len(line)
        tag = codec.TAGS[type(event)]
        self.stats.counts[tag] = self.stats.counts.get(tag, 0) + 1
        if len(self._lines) >= 4096:
            self.flush()
        return line

    def heartbeats(self, job: str, attempt: int, child_pid: int, count: int) -> None:
        """`count` heartbeats of one attempt, 30 s apart (with jitter)."""
        if count <= 0:
            return
        assert not self.dry
        if self.exact:
            for _ in range(count):
                self.emit(ev.Heartbeat(job=job, attempt=attempt, child_pid=child_pid),
                          step=HEARTBEAT_MICROS + self.rng.randint(0, BEAT_JITTER_MICROS))
                self.stats.heartbeats += 1
            return
        # The first heartbeat goes through the codec; the rest reuse its exact bytes with
        # only id and ts replaced (both fixed-format strings, so no escaping can differ).
        first = self.emit(ev.Heartbeat(job=job, attempt=attempt, child_pid=child_pid),
                          step=HEARTBEAT_MICROS + self.rng.randint(0, BEAT_JITTER_MICROS))
        self.stats.heartbeats += 1
        head, rest = first.split(b'"id":"', 1)
        _, rest = rest.split(b'"ts":"', 1)
        tail = rest[len("2026-01-01T00:00:00.000000Z"):]
        head += b'"id":"'
        session = self.session
        lines = self._lines
        tick = self.clock.tick
        randint = self.rng.randint
        total = 0
        for _ in range(count - 1):
            self.seq += 1
            ts = tick(HEARTBEAT_MICROS + randint(0, BEAT_JITTER_MICROS))
            line = b"".join((head, f'{session}:{self.seq}","ts":"{ts}'.encode(), tail))
            lines.append(line)
            total += len(line)
            if len(lines) >= 4096:
                self.flush()
        self.stats.events += count - 1
        self.stats.bytes += total
        self.stats.heartbeats += count - 1
        self.stats.counts["heartbeat"] += count - 1


@dataclass
class _Plan:
    """One job's fate, decided up front so that heartbeats can be spread to hit the total."""

    job: str
    spec: JobSpec
    fail_first: bool = False  # attempt 1 fails, attempt 2 (budget) succeeds
    exhaust: bool = False  # both budgeted attempts fail; an operator retries it later
    crash: bool = False  # the runtime dies during attempt 1; --resume recovers it
    attempts: int = 1  # attempts that run (and heartbeat) in total
    beats: list[int] = field(default_factory=list)


def _plans(cfg: config_mod.Config, rng: random.Random) -> list[_Plan]:
    plans = [_Plan(job, spec) for job, spec in cfg.jobs.items()]
    n = len(plans)
    picks = rng.sample(range(n), k=min(n, max(3, n // 50) + max(1, n // 1000) + max(1, n // 2000)))
    n_fail, n_exhaust = max(1, n // 50), max(1, n // 1000)
    for k, index in enumerate(picks):
        plan = plans[index]
        if k < n_fail:
            plan.fail_first, plan.attempts = True, 2
        elif k < n_fail + n_exhaust:
            plan.exhaust, plan.attempts = True, 3
        else:
            plan.crash, plan.attempts = True, 2
    return plans


def _spread(plans: list[_Plan], beats: int, rng: random.Random) -> None:
    """Give each attempt a share of `beats` heartbeats (jobs vary 0.3x to 1.7x in length)."""
    slots = [(plan, a) for plan in plans for a in range(plan.attempts)]
    weights = [rng.uniform(0.3, 1.7) for _ in slots]
    scale = beats / sum(weights)
    counts = [int(w * scale) for w in weights]
    for i in rng.sample(range(len(slots)), k=beats - sum(counts)):
        counts[i] += 1
    for plan in plans:
        plan.beats = []
    for (plan, _), count in zip(slots, counts, strict=True):
        plan.beats.append(count)


def _fixed_events(cfg: config_mod.Config, config_name: str, plans: list[_Plan],
                  n_sessions: int, rng: random.Random) -> tuple[int, int]:
    """How many events the plan produces besides heartbeats, and the time they span (µs):
    a dry run without heartbeats."""
    for plan in plans:
        plan.beats = [0] * plan.attempts
    dry = random.Random()
    dry.setstate(rng.getstate())
    stats = Stats()
    out = _Out(None, Clock(0), dry, False, stats, dry=True)
    for event in _journal(cfg, config_name, plans, n_sessions, out):
        out.emit(event)
    return stats.events, out.clock.micros


def generate(path: str | os.PathLike[str], n_jobs: int = 10_000, n_events: int = 1_000_000,
             *, config_path: str | os.PathLike[str] | None = None, seed: int = 0,
             exact: bool = False, end_micros: int | None = None) -> Stats:
    """Write a journal of about `n_events` events for `n_jobs` jobs (exactly, when the
    target is reachable) and, with `config_path`, the config that matches it.

    Timestamps end by `end_micros` (default: an hour ago), 30 s apart between heartbeats.
    """
    started = time.perf_counter()
    rng = random.Random(seed)
    if config_path is not None:
        cfg = write_config(config_path, n_jobs)
        config_name = os.fspath(config_path)
    else:
        config_name = "configs/experiments/bench.yaml"
        text = config_text(n_jobs)
        cfg = config_mod.parse(text.encode(), config_name)
    plans = _plans(cfg, rng)
    crashes = [plan for plan in plans if plan.crash]
    # A run session for every ~1,500 jobs, and one more per crash (the --resume after it).
    n_sessions = max(1, n_jobs // 1500) + len(crashes)
    fixed, fixed_span = _fixed_events(cfg, config_name, plans, n_sessions, rng)
    beats = max(0, n_events - fixed)
    _spread(plans, beats, rng)
    if end_micros is None:
        # The history ends an hour ago at the latest: no runner looks alive, nothing is stale
        # in the future, and `journalq run` can append after it.
        end_micros = time.time_ns() // 1000 - 3_600_000_000
    start_micros = end_micros - fixed_span - beats * (HEARTBEAT_MICROS + BEAT_JITTER_MICROS)
    stats = Stats(jobs=n_jobs)
    with open(path, "wb") as handle:
        out = _Out(handle, Clock(start_micros), rng, exact, stats)
        stats.counts["heartbeat"] = 0
        for event in _journal(cfg, config_name, plans, n_sessions, out):
            out.emit(event)
        out.flush()
        handle.flush()
        os.fsync(handle.fileno())
    stats.failures = sum(plan.fail_first + 2 * plan.exhaust for plan in plans)
    stats.crashes = len(crashes)
    stats.retried = sum(plan.exhaust for plan in plans)
    stats.seconds = time.perf_counter() - started
    return stats


def _journal(cfg: config_mod.Config, config_name: str, plans: list[_Plan], n_sessions: int,
             out: _Out) -> Iterator[ev.Event]:
    """The events of the whole history; heartbeats are written by `out` directly."""
    rng = out.rng
    boot = BOOT_IDS[0]
    out.begin("init", ("journalq", "init", "--config", config_name), boot)
    yield ev.QueueCreated(queue=cfg.queue, config=config_name, config_sha256=cfg.sha256)
    for plan in plans:
        yield ev.JobAdded(job=plan.job, **policy.spec_fields(plan.spec))
    yield ev.SessionEnded(exit_code=0, reason="completed")

    run_argv = ("journalq", "run", "--config", config_name)
    crashes = sum(plan.crash for plan in plans)
    planned_breaks = n_sessions - crashes  # sessions that end cleanly
    per_session = -(-len(plans) // planned_breaks)
    out.begin("run", run_argv, boot)
    in_session = 0
    exhausted: list[_Plan] = []

    def attempt(plan: _Plan, number: int, outcome: str) -> Iterator[ev.Event]:
        child = rng.randint(1_000, 4_000_000)
        yield ev.JobStarted(job=plan.job, attempt=number, host=HOST, boot_id=boot,
                            pid=rng.randint(300, 60_000),
                            log=f"runtime_state/logs/{QUEUE}/{plan.job}/attempt-{number}.log",
                            spec_sha256=plan.spec.sha256)
        out.heartbeats(plan.job, number, child, plan.beats[number - 1])
        if outcome == "crash":
            return
        rc = 0 if outcome == "done" else 1
        yield ev.JobFinished(job=plan.job, attempt=number, return_code=rc, signal=None,
                             outcome=outcome, reason="exit",
                             duration=round(plan.beats[number - 1] * 30 + rng.random() * 30, 6))

    for plan in plans:
        if in_session >= per_session:
            yield ev.SessionEnded(exit_code=0, reason="completed")
            out.begin("run", run_argv, boot)
            in_session = 0
        in_session += 1
        if plan.crash:
            yield from attempt(plan, 1, "crash")
            # The runtime died: no session_ended. A new VM (new boot id) resumes.
            boot = BOOT_IDS[1] if boot == BOOT_IDS[0] else BOOT_IDS[0]
            out.begin("run", (*run_argv, "--resume"), boot)
            in_session = 0
            yield ev.JobRecovered(job=plan.job, attempt=1, to="pending", reason="stale")
            yield from attempt(plan, 2, "done")
        elif plan.fail_first:
            yield from attempt(plan, 1, "failed")
            yield from attempt(plan, 2, "done")
        elif plan.exhaust:
            yield from attempt(plan, 1, "failed")
            yield from attempt(plan, 2, "failed")
            exhausted.append(plan)
        else:
            yield from attempt(plan, 1, "done")
    yield ev.SessionEnded(exit_code=1 if exhausted else 0, reason="completed")
    if exhausted:
        out.begin("retry", ("journalq", "retry", "--failed", "--config", config_name), boot)
        for plan in exhausted:
            yield ev.JobRetried(job=plan.job)
        yield ev.SessionEnded(exit_code=0, reason="completed")
        out.begin("run", run_argv, boot)
        for plan in exhausted:
            yield from attempt(plan, 3, "done")
        yield ev.SessionEnded(exit_code=0, reason="completed")


def check(path: str | os.PathLike[str], stats: Stats) -> None:
    """`journalq status --json` reads the journal: every job done, no anomalies."""
    import json

    done = subprocess.run([*journalq_command(), "status", "--state", os.fspath(path),
                           "--json"], capture_output=True, text=True, check=True)
    doc = json.loads(done.stdout)
    assert doc["events"] == stats.events, (doc["events"], stats.events)
    assert doc["counts"]["done"] == stats.jobs, doc["counts"]
    assert not doc["anomalies"], doc["anomalies"][:3]
    assert not doc["unknown_event_types"], doc["unknown_event_types"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="the journal to write (overwritten)")
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--config", help="also write the matching YAML config here")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--exact", action="store_true",
                        help="encode every heartbeat through the codec (slower)")
    parser.add_argument("--check", action="store_true",
                        help="then verify it with `journalq status --json`")
    args = parser.parse_args(argv)
    stats = generate(args.out, args.jobs, args.events, config_path=args.config,
                     seed=args.seed, exact=args.exact)
    print(f"{args.out}: {stats.events:,} events, {stats.bytes / 1e6:.1f} MB, "
          f"{stats.jobs:,} jobs, {stats.heartbeats:,} heartbeats, {stats.sessions} sessions, "
          f"{stats.failures} failed attempts, {stats.crashes} crashes, {stats.retried} "
          f"retried; {stats.seconds:.1f} s")
    print("  " + ", ".join(f"{tag} {count:,}" for tag, count in sorted(stats.counts.items())))
    if args.check:
        check(args.out, stats)
        print("  checked: journalq status --json reads it, every job done, no anomalies")
    return 0


if __name__ == "__main__":
    sys.exit(main())
