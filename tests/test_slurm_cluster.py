"""The Slurm test cluster does what `journalq slurm`'s tests will rely on: array throttles,
one fake GPU per task, requeue with a restart count, and the task environment.

These check the fixture (tests/slurm_cluster.py) against the real daemons, so that a
failure in journalq's Slurm tests later points at journalq, not at the cluster.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from slurm_cluster import NOTES, TIMINGS, SlurmCluster

pytestmark = pytest.mark.slow

# One array task: note when it started, which GPU it was given, sleep, note when it ended.
# Each line is written at once with `>`-then-rename, so the test never reads half a file.
GPU_TASK = """\
#!/bin/bash
set -eu
out="$PWD/task.$SLURM_ARRAY_TASK_ID"
start=$(date +%s.%N)
sleep {sleep}
end=$(date +%s.%N)
echo "$start $end ${{CUDA_VISIBLE_DEVICES:-unset}} $SLURM_JOB_ID" > "$out.tmp"
mv "$out.tmp" "$out"
"""


def records(folder: Path) -> dict[int, tuple[float, float, str]]:
    """Array task id -> (start, end, CUDA_VISIBLE_DEVICES) from GPU_TASK's files."""
    found = {}
    for path in folder.glob("task.*"):
        if path.suffix == ".tmp":
            continue
        start, end, gpus, _ = path.read_text().split()
        found[int(path.name.split(".")[1])] = (float(start), float(end), gpus)
    return found


def most_at_once(spans: list[tuple[float, float]]) -> int:
    """The largest number of spans that overlap at one instant."""
    edges = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    now = peak = 0
    for _, step in edges:  # an end sorts before a start at the same instant
        now += step
        peak = max(peak, now)
    return peak


def test_array_throttle_runs_two_at_once_on_different_gpus(slurm_cluster: SlurmCluster) -> None:
    """All 6 tasks of `--array=0-5%2 --gres=gpu:1` run, never more than 2 at once, and two
    tasks running together were handed different GPUs (CUDA_VISIBLE_DEVICES 0 and 1)."""
    folder = slurm_cluster.folder("array")
    start = time.monotonic()
    job = slurm_cluster.sbatch(GPU_TASK.format(sleep=2), "--array=0-5%2", "--gres=gpu:1",
                               "--output=slurm-%A_%a.out", cwd=folder)
    slurm_cluster.wait_all(timeout=120, job=job)
    TIMINGS["6-task array %2, gpu:1 each, 2 s tasks"] = time.monotonic() - start

    found = records(folder)
    assert sorted(found) == list(range(6)), sorted(folder.iterdir())
    spans = [(s, e) for s, e, _ in found.values()]
    assert most_at_once(spans) == 2  # the throttle held, and two did run together
    for a, (sa, ea, ga) in found.items():
        assert ga in {"0", "1"}, (a, ga)
        for b, (sb, eb, gb) in found.items():
            if a < b and sa < eb and sb < ea:  # ran at the same time
                assert ga != gb, (a, b, ga)


def test_throttle_of_one_runs_the_tasks_one_by_one(slurm_cluster: SlurmCluster) -> None:
    """%1 with free GPUs and CPUs to spare: only the throttle keeps them apart."""
    folder = slurm_cluster.folder("serial")
    start = time.monotonic()
    job = slurm_cluster.sbatch(GPU_TASK.format(sleep=1), "--array=0-2%1", "--gres=gpu:1",
                               cwd=folder)
    slurm_cluster.wait_all(timeout=90, job=job)
    TIMINGS["3-task array %1, 1 s tasks"] = time.monotonic() - start
    found = records(folder)
    assert sorted(found) == [0, 1, 2]
    assert most_at_once([(s, e) for s, e, _ in found.values()]) == 1


REQUEUE_TASK = """\
#!/bin/bash
set -eu
echo "$(date +%s.%N)" > "$PWD/run.$SLURM_ARRAY_TASK_ID.${SLURM_RESTART_COUNT:-0}"
if [ "$SLURM_ARRAY_TASK_ID" = 1 ] && [ -z "${SLURM_RESTART_COUNT:-}" ]; then
    sleep 300  # the first run of task 1 waits to be requeued
fi
"""


def test_requeue_of_a_running_task_runs_it_again_with_restart_count_1(
        slurm_cluster: SlurmCluster) -> None:
    """`scontrol requeue JOB_TASK` of a running array task kills it and runs it again, with
    SLURM_RESTART_COUNT=1; the other task runs once."""
    folder = slurm_cluster.folder("requeue")
    start = time.monotonic()
    job = slurm_cluster.sbatch(REQUEUE_TASK, "--array=0-1", cwd=folder)
    slurm_cluster.wait_for("task 1 to run", (folder / "run.1.0").exists)
    assert slurm_cluster.squeue("-j", f"{job}_1") == [f"{job}_1 R"]

    requeued = time.monotonic()
    slurm_cluster.scontrol("requeue", f"{job}_1")
    slurm_cluster.wait_for("task 1 to run again", (folder / "run.1.1").exists, timeout=180)
    TIMINGS["requeue to second start"] = time.monotonic() - requeued
    slurm_cluster.wait_all(timeout=60, job=job)
    TIMINGS["requeue scenario"] = time.monotonic() - start

    assert sorted(p.name for p in folder.glob("run.*")) == ["run.0.0", "run.1.0", "run.1.1"]
    tasks = {task["ArrayTaskId"]: task for task in slurm_cluster.jobs(job)}
    assert ("COMPLETED", "0") == (tasks["0"]["JobState"], tasks["0"]["Restarts"])
    assert ("COMPLETED", "1") == (tasks["1"]["JobState"], tasks["1"]["Restarts"])


ENV_TASK = """\
#!/bin/bash
out="$PWD/env.$SLURM_ARRAY_TASK_ID"
env > "$out.tmp"
probe="${TMPDIR:-/nonexistent}/journalq-probe.$SLURM_JOB_ID"
: > "$probe" && rm "$probe" && echo writable >> "$out.tmp"
mv "$out.tmp" "$out"
"""


def test_task_environment(slurm_cluster: SlurmCluster) -> None:
    """What a task can read: its array ids, the submitter's variables, TMPDIR.

    Slurm itself never sets SLURM_TMPDIR (sites do, in a prolog or job_container/tmpfs), and
    sets TMPDIR only by passing on the submitter's (or /tmp when unset): journalq must not
    count on either naming a per-job folder.
    """
    folder = slurm_cluster.folder("env")
    start = time.monotonic()
    job = slurm_cluster.sbatch(ENV_TASK, "--array=3,5", cwd=folder)
    slurm_cluster.wait_all(timeout=60, job=job)
    TIMINGS["environment scenario (2 tasks)"] = time.monotonic() - start

    seen = {}
    for task in (3, 5):
        lines = (folder / f"env.{task}").read_text().splitlines()
        assert lines[-1] == "writable"  # TMPDIR is set and a folder the task can write in
        env = dict(line.split("=", 1) for line in lines[:-1] if "=" in line)
        assert env["SLURM_ARRAY_TASK_ID"] == str(task)
        assert env["SLURM_ARRAY_JOB_ID"] == str(job)
        assert env["SLURM_ARRAY_TASK_COUNT"] == "2"
        assert env["SLURM_CONF"] == str(slurm_cluster.conf)  # the submitter's, passed on
        assert "SLURM_RESTART_COUNT" not in env  # only set once a job has been requeued
        assert "CUDA_VISIBLE_DEVICES" not in env  # no --gres, no GPU
        seen[task] = env
    NOTES.append(f"task environment: TMPDIR={seen[3].get('TMPDIR')!r}, "
                 f"SLURM_TMPDIR={seen[3].get('SLURM_TMPDIR')!r}, "
                 f"SLURM_JOB_ID={seen[3]['SLURM_JOB_ID']} in array task {job}_3")
