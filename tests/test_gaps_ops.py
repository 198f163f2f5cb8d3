"""Promises of issues 9, 12, 13 and 14 that had no guarding test, through real runs: sync
pushes coalesced across slots yet prompt (12.2), an ETA that counts the slots (12.3),
`gpus: auto` from `nvidia-smi -L` (12.1), and `wait`'s progress rate (14.3). A missing or
hanging `git` and the run card (14.5, 9.5) are in test_gaps_commits.py, the Slurm ones
(13.3) in test_gaps_slurm.py.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import stat
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest
from ops_support import command_config, processes, sleeper
from slots_support import SlotQueue, job, most_at_once

TESTS = Path(__file__).resolve().parent
PUSH_GAP = 1.0  # README, On Google Colab: "within one second (pushes closer together than
# that are one push)"
SLACK = 0.5  # a loaded CI machine's scheduling delay on top of that second


def epoch(ts: str) -> float:
    """A journal timestamp as seconds since the epoch."""
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def events_with_ends(journal: Path) -> list[tuple[dict[str, object], int]]:
    """Each event of a journal with the byte offset where its line ends."""
    found, offset = [], 0
    for line in journal.read_bytes().splitlines(keepends=True):
        offset += len(line)
        if line.strip():
            found.append((json.loads(line), offset))
    return found


def fake_command(folder: Path, name: str, body: str) -> Path:
    """An executable shell script `name` in `folder` (a fake tool to put first on PATH)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


# ---- 12.2: sync pushes coalesced, yet within a second ---------------------------------------

@pytest.mark.slow
def test_jobs_ending_together_share_pushes_that_still_come_within_a_second(
        project: Path) -> None:
    """slots: 3, six jobs of 1.5 s, a sync folder, sync_seconds and heartbeats far away
    (so only job boundaries and the exit push): the session's copy is pushed fewer than
    half as many times as there are job starts and finishes, no two pushes before the last
    closer than a second, and yet every start and finish is in the folder within a second
    (plus scheduling slack) of being journaled."""
    jobs = [job(f"j{n}", "--sleep", "1.5") for n in range(6)]
    # Heartbeats (which also push what waits) far apart too: the deferred push's own timer
    # must bring what a boundary left waiting.
    with SlotQueue(project, jobs, slots=3, sync_seconds=600, heartbeat_seconds=60) as queue:
        log = project / "pushes.json"
        argv = [sys.executable, str(TESTS / "pushcount.py"), "--log", str(log), "--",
                "run", "--config", queue.config, "--sync-dir", str(project / "drive"),
                "--quiet"]

        done = subprocess.run(argv, cwd=project, capture_output=True, text=True,
                              env=queue.env(), timeout=60)

        assert 0 == done.returncode, done.stderr
        assert 3 == most_at_once([(s.t, e.t) for s, e in queue.intervals()])
        pushes: list[tuple[float, str, int]] = json.loads(log.read_text())
        boundaries = [(event, end) for event, end in events_with_ends(queue.journal)
                      if event["type"] in ("job_started", "job_finished")]
        assert 12 == len(boundaries)
        assert 2 <= len(pushes) < len(boundaries) // 2, pushes
        times = [t for t, _, _ in pushes][:-1]  # the exit push goes at once, by design
        closer = [round(b - a, 3) for a, b in itertools.pairwise(times)
                  if b - a < PUSH_GAP - 0.05]
        assert [] == closer, f"pushes closer than {PUSH_GAP}s apart: {pushes}"
        late = []
        for event, end in boundaries:
            reached = next((t for t, _, size in pushes if size >= end), None)
            if reached is None or reached - epoch(str(event["ts"])) > PUSH_GAP + SLACK:
                late.append((event["type"], event["job"], reached and round(
                    reached - epoch(str(event["ts"])), 3)))
        assert [] == late, f"boundaries that reached the folder late: {late}"


# ---- 12.3: the ETA counts the slots ----------------------------------------------------------

PROGRESS = re.compile(r"^\[\s*\d+/\d+\] done +(\S+)  rc=0  ([\d.]+)s(?:  \(eta ([\d.]+)s\))?$")


@pytest.mark.slow
def test_the_eta_divides_the_work_left_by_the_slots(project: Path) -> None:
    """Six equal jobs of 1.5 s on three slots: when the first one finishes, the three not
    yet started take one job's length on three slots, and the line says so (about 1.5 s,
    not the 4.5 s of one slot); no line promises more than about one job's length."""
    jobs = [job(f"j{n}", "--sleep", "1.5") for n in range(6)]
    with SlotQueue(project, jobs, slots=3) as queue:
        done = queue.run("--quiet")

        assert 0 == done.returncode, done.stderr
        lines = [m for m in map(PROGRESS.match, done.stderr.splitlines()) if m]
        assert 6 == len(lines), done.stderr
        first = lines[0]
        length = float(first.group(2))
        assert first.group(3) is not None, done.stderr
        assert 0.7 * length <= float(first.group(3)) <= 1.3 * length + 0.2, done.stderr
        etas = [float(m.group(3)) for m in lines if m.group(3)]
        assert all(eta <= 1.3 * length + 0.2 for eta in etas), done.stderr
        assert lines[-1].group(3) is None  # nothing left: no estimate


# ---- 12.1: gpus: auto from nvidia-smi -L ------------------------------------------------------

NVIDIA_SMI = """\
if [ "$1" != "-L" ]; then echo "fake nvidia-smi: only -L" >&2; exit 9; fi
echo "GPU 0: Tesla T4 (UUID: GPU-0d4c6a7e-1111-2222-3333-444455556666)"
echo "GPU 1: Tesla T4 (UUID: GPU-9f0e1d2c-7777-8888-9999-aaaabbbbcccc)"
"""


def test_gpus_auto_takes_the_devices_nvidia_smi_lists(project: Path, tmp_path: Path) -> None:
    """gpus: auto, CUDA_VISIBLE_DEVICES unset, an `nvidia-smi -L` on PATH listing GPUs 0
    and 1 (as on a 2 x T4 Kaggle runtime): two jobs run at once, one on each device, and
    job_started records the slot's device each job saw."""
    tools = tmp_path / "fake-tools"
    fake_command(tools, "nvidia-smi", NVIDIA_SMI)
    jobs = [job(f"j{n}", "--sleep", "0.6") for n in range(2)]
    with SlotQueue(project, jobs, gpus="auto") as queue:
        env_path = f"{tools}{os.pathsep}{os.environ['PATH']}"
        assert "CUDA_VISIBLE_DEVICES" not in queue.env(PATH=env_path)

        done = queue.run("--quiet", PATH=env_path)

        assert 0 == done.returncode, done.stderr
        intervals = queue.intervals()
        assert 2 == most_at_once([(s.t, e.t) for s, e in intervals])
        assert {("j0", "0", "0"), ("j1", "1", "1")} == {
            (s.job, s.slot, s.cuda) for s, _ in intervals}
        assert {"j0": (0, ["0"]), "j1": (1, ["1"])} == {
            str(e["job"]): (e["slot"], e["devices"]) for e in queue.events("job_started")}


# ---- 14.3: wait's progress line, at most every few seconds --------------------------------

WAIT_PROGRESS_SECONDS = 3.0  # journalq.commands.wait.PROGRESS_SECONDS ("every few seconds")


@pytest.mark.slow
def test_waits_progress_line_comes_at_most_every_few_seconds(project: Path) -> None:
    """A batch whose counts change every half second or so, for about twice the interval:
    `wait`'s progress lines on stderr come at least WAIT_PROGRESS_SECONDS apart (the
    closing line, when everything settled, comes at once), yet more than one of them."""
    config = command_config(project, "wq", {f"j{n:02d}": sleeper(0.35) for n in range(14)})
    with processes(project) as started:
        started.start("run", "--config", config, "--quiet")
        waiter = started.start("wait", "--config", config)
        lines: list[tuple[float, str]] = []

        def read() -> None:
            assert waiter.stderr is not None
            for line in waiter.stderr:
                lines.append((time.monotonic(), line.rstrip("\n")))

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        assert 0 == waiter.wait(timeout=60)
        reader.join(timeout=10)

    progress = [(t, text) for t, text in lines if text.startswith("wait: ")]
    assert progress and progress[-1][1].startswith("wait: 14/14 settled"), lines
    span = progress[-1][0] - progress[0][0]
    assert span >= 1.5 * WAIT_PROGRESS_SECONDS, f"the batch was too quick to tell: {lines}"
    before_end = [t for t, _ in progress[:-1]]
    assert len(before_end) >= 2, lines
    gaps = [round(b - a, 2) for a, b in itertools.pairwise(before_end)]
    assert all(gap >= WAIT_PROGRESS_SECONDS - 0.2 for gap in gaps), (gaps, lines)
    assert len(progress) <= 2 + span / WAIT_PROGRESS_SECONDS, lines


@pytest.mark.slow
def test_the_eta_counts_what_running_jobs_still_need(project: Path) -> None:
    """Six jobs on three slots, the first three ending 0.2 s apart (1.5, 1.7, 1.9 s), the
    last three of 1.5 s: when the third ends, three jobs have about 1.5 s to go (they just
    started), so its line's estimate is about that, not a third of it."""
    lengths = ["1.5", "1.7", "1.9", "1.5", "1.5", "1.5"]
    jobs = [job(f"j{n}", "--sleep", length) for n, length in enumerate(lengths)]
    with SlotQueue(project, jobs, slots=3) as queue:
        done = queue.run("--quiet")

        assert 0 == done.returncode, done.stderr
        lines = [m for m in map(PROGRESS.match, done.stderr.splitlines()) if m]
        ends = sorted(mark.t for mark in queue.marks("end"))
        assert [m.group(1) for m in lines[:3]] == ["j0", "j1", "j2"], done.stderr
        left = ends[-1] - ends[2]  # after the third job ended
        eta = float(lines[2].group(3) or 0)
        assert eta >= 0.6 * left, f"eta {eta}s with {left:.1f}s left: {done.stderr}"
