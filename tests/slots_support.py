"""What the slot tests share: a job script that keeps a ledger of its own start and end
(wall clock, slot, devices), a config writer for queues of such jobs, and /proc checks for
processes a run left behind.

No tests here; `test_slots*.py` import it.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import os
import subprocess
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from conftest import events, write

# The job: `python scripts/slotjob.py [--sleep S] [--ignore-term] [--fail] [--spam N]
# [--bars N --bar-pause S] [--daemon] [--lines N] [--checkpoint-on-term]`. It appends
# `start <t> <job> <attempt> <slot> <cuda> <pid>` to $SLOT_LEDGER, does its work, and
# `end ...` last thing before it exits 0.
JOB_SCRIPT = r'''
import argparse, os, signal, subprocess, sys, time

parser = argparse.ArgumentParser()
parser.add_argument("--sleep", type=float, default=0)
parser.add_argument("--ignore-term", action="store_true")
parser.add_argument("--fail", action="store_true")
parser.add_argument("--spam", type=int, default=0)  # print this many-byte lines until killed
parser.add_argument("--bars", type=int, default=0)  # \r updates, --bar-pause apart
parser.add_argument("--bar-pause", type=float, default=0.05)
parser.add_argument("--daemon", action="store_true")  # leave a setsid sleeper behind
parser.add_argument("--lines", type=int, default=0)  # print this many 100-byte lines
parser.add_argument("--checkpoint-on-term", action="store_true")  # SIGTERM: note, exit 0
args = parser.parse_args()
env = os.environ
job, attempt = env.get("JOURNALQ_JOB", "?"), env.get("JOURNALQ_ATTEMPT", "?")
where = f"{job} {attempt} {env.get('JOURNALQ_SLOT', '-')} {env.get('CUDA_VISIBLE_DEVICES', '-')}"


def note(kind):
    with open(env["SLOT_LEDGER"], "a") as ledger:
        ledger.write(f"{kind} {time.time():.6f} {where} {os.getpid()}\n")


note("start")
if args.ignore_term:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
if args.checkpoint_on_term:
    def checkpoint(*_):
        note("checkpoint")
        os._exit(0)

    signal.signal(signal.SIGTERM, checkpoint)
if args.daemon:
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"],
                     start_new_session=True)
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
if args.spam:
    printed = 0

    def stop(*_):
        with open(os.path.join(env["JOURNALQ_OUT_DIR"], "printed"), "w") as f:
            f.write(str(printed))
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    os.makedirs(env["JOURNALQ_OUT_DIR"], exist_ok=True)
    pad = "x" * max(0, args.spam - 12)
    while True:
        sys.stdout.write(f"{printed:010d} {pad}\n")
        printed += 1
for n in range(args.lines):
    sys.stdout.write(f"line {n:05d} " + "y" * 88 + "\n")
for n in range(args.bars):
    if n == 0:
        note("bar")
    sys.stdout.write(f"\r{job} {n:03d}")
    sys.stdout.flush()
    time.sleep(args.bar_pause)
if args.bars:
    sys.stdout.write("\n")
time.sleep(args.sleep * float(env.get("SLOT_SLEEP_SCALE", "1")))
if args.fail:
    sys.exit(3)
note("end")
'''


@attrs.frozen
class Mark:
    """One line of the ledger."""

    kind: str
    t: float
    job: str
    attempt: int
    slot: str
    cuda: str
    pid: int


def job(job_id: str, *flags: str, **fields: Any) -> dict[str, Any]:
    """A job of the slot job script with these flags, and other job fields (timeout...)."""
    argv = ["python", "scripts/slotjob.py", *flags]
    return {"id": job_id, "command": argv, **fields}


class SlotQueue:
    """A project's queue of slot jobs: its config, journal and ledger, a marker that every
    process of the run carries in its environment, and ways to run journalq on it."""

    def __init__(self, project: Path, jobs: Sequence[dict[str, Any]], name: str = "s",
                 **top: Any) -> None:
        self.project = project
        self.name = name
        self.config = f"configs/{name}.yaml"
        self.journal = project / "runtime_state" / f"{name}.jsonl"
        self.ledger = project / f"ledger-{name}.txt"
        self.marker = uuid.uuid4().hex
        write(project / "scripts" / "slotjob.py", JOB_SCRIPT)
        settings = {"heartbeat_seconds": 0.5, "grace_seconds": 1, **top}
        lines = [f"queue: {name}", f"out_root: runtime_state/outputs/{name}"]
        lines += [f"{key}: {_yaml(value)}" for key, value in settings.items()]
        lines.append("jobs:")
        for spec in jobs:
            lines.append(f"  - id: {spec['id']}")
            lines += [f"    {key}: {_yaml(value)}" for key, value in spec.items() if key != "id"]
        write(project / self.config, "\n".join(lines) + "\n")

    def env(self, **extra: str) -> dict[str, str]:
        """The runner's environment (its jobs inherit it)."""
        base = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
        return {**base, "SLOT_LEDGER": str(self.ledger), "SLOT_MARKER": self.marker, **extra}

    def argv(self, *args: str) -> list[str]:
        """`python -m journalq run --config <ours> ARGS`."""
        return [sys.executable, "-m", "journalq", "run", "--config", self.config, *args]

    def run(self, *args: str, timeout: float = 60,
            **extra: str) -> subprocess.CompletedProcess[str]:
        """`journalq run` to its end."""
        return subprocess.run(self.argv(*args), cwd=self.project, capture_output=True,
                              text=True, env=self.env(**extra), timeout=timeout)

    def start(self, *args: str, **extra: str) -> subprocess.Popen[str]:
        """`journalq run` in the background, stdout and stderr piped."""
        return subprocess.Popen(self.argv(*args), cwd=self.project, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=self.env(**extra))

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        """The journal's events (of one type)."""
        if not self.journal.exists():
            return []
        return [e for e in events(self.journal) if kind is None or e["type"] == kind]

    def marks(self, kind: str | None = None) -> list[Mark]:
        """The ledger's lines (of one kind)."""
        if not self.ledger.exists():
            return []
        found = []
        for line in self.ledger.read_text().splitlines():
            k, t, job_id, attempt, slot, cuda, pid = line.split()
            found.append(Mark(k, float(t), job_id, int(attempt), slot, cuda, int(pid)))
        return [m for m in found if kind is None or m.kind == kind]

    def intervals(self) -> list[tuple[Mark, Mark]]:
        """(start, end) of every job run that ended by itself."""
        starts = {(m.job, m.attempt): m for m in self.marks("start")}
        return [(starts[(m.job, m.attempt)], m) for m in self.marks("end")]

    def status(self) -> dict[str, Any]:
        """`journalq status --json`."""
        import json

        done = subprocess.run([sys.executable, "-m", "journalq", "status", "--state",
                               str(self.journal), "--json"], cwd=self.project,
                              capture_output=True, text=True, timeout=60)
        assert 0 == done.returncode, done.stderr
        result: dict[str, Any] = json.loads(done.stdout)
        return result

    def log(self, job_id: str, attempt: int = 1) -> Path:
        """The job's log of one attempt."""
        return self.project / "runtime_state" / "logs" / self.name / job_id / \
            f"attempt-{attempt}.log"

    def out_dir(self, job_id: str) -> Path:
        """The job's out_dir."""
        return self.project / "runtime_state" / "outputs" / self.name / job_id

    def leftovers(self, exclude: Sequence[int] = ()) -> list[int]:
        """Live processes that carry our marker (every process of our runs does)."""
        return marked(f"SLOT_MARKER={self.marker}", exclude)

    def kill_leftovers(self) -> None:
        """SIGKILL whatever carries our marker (cleanup after a failed test)."""
        for _ in range(20):
            found = self.leftovers()
            if not found:
                return
            for pid in found:
                with contextlib.suppress(OSError):
                    os.kill(pid, 9)

    def __enter__(self) -> SlotQueue:
        return self

    def __exit__(self, *_: object) -> None:
        self.kill_leftovers()


def marked(needle: str, exclude: Sequence[int] = ()) -> list[int]:
    """Live (not zombie) processes whose environment holds `needle` (`NAME=value`)."""
    want = needle.encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in exclude or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
            with open(f"/proc/{entry}/environ", "rb") as f:
                environ = f.read()
        except OSError:
            continue
        if stat[stat.rindex(b")") + 2:][:1] in b"ZX":
            continue
        if want in environ.split(b"\0"):
            found.append(int(entry))
    return found


def most_at_once(spans: Sequence[tuple[float, float]]) -> int:
    """The largest number of spans (start, end) that overlap at one moment."""
    points = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans],
                    key=lambda p: (p[0], p[1]))
    running = most = 0
    for _, step in points:
        running += step
        most = max(most, running)
    return most


def per_slot_overlaps(intervals: Sequence[tuple[Mark, Mark]]) -> list[str]:
    """Pairs of runs that shared a slot at the same time (should be none)."""
    by_slot: dict[str, list[tuple[Mark, Mark]]] = collections.defaultdict(list)
    for start, end in intervals:
        by_slot[start.slot].append((start, end))
    clashes = []
    for slot, spans in by_slot.items():
        spans.sort(key=lambda span: span[0].t)
        for (_, end), (start, _) in itertools.pairwise(spans):
            if start.t < end.t:
                clashes.append(f"slot {slot}: {start.job} started before {end.job} ended")
    return clashes


def gaps(start: float, beats: Sequence[float], end: float) -> list[float]:
    """The silences between an attempt's start, its heartbeats and its end."""
    return [b - a for a, b in itertools.pairwise([start, *beats, end])]


def _yaml(value: Any) -> str:
    import json

    return json.dumps(value)  # JSON is YAML
