"""Issue 13.3 promises the tests of test_slurm.py left unguarded, in its style (the script
`journalq slurm` writes, run by bash with the variables Slurm would set; no cluster): where
a task keeps its live journal ($SLURM_TMPDIR, else $TMPDIR, else /tmp), and a manifest
that keeps each task on its job (or shard) when the config gains jobs after it was written.
"""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from promise_support import read_events
from test_slurm import SlurmProject, counts, script_of, task_env


def run_task(project: SlurmProject, script: Path, env: dict[str, str]
             ) -> subprocess.CompletedProcess[str]:
    """The array script as Slurm would run one task of it."""
    return subprocess.run(["bash", str(script)], cwd="/", capture_output=True, text=True,
                          env=env, timeout=60)


def task_journals(base: Path, job: int, task: int) -> list[Path]:
    """The task's live journals under `base` (the folder the script makes per task)."""
    return sorted(base.glob(f"journalq-q-*-{job}_{task}/q.jsonl"))


@pytest.mark.parametrize("slurm_tmpdir", ["set", "empty", "unusable", "unset"])
def test_a_task_keeps_its_journal_in_slurm_tmpdir_else_tmpdir(
        tmp_path: Path, slurm_tmpdir: str) -> None:
    """$SLURM_TMPDIR (the per-job node-local folder many clusters give) comes first; when it
    is empty, unset, or cannot hold a folder, the task's journal goes under $TMPDIR. Either
    way the job runs, and its finish reaches the shared folder."""
    project = SlurmProject(tmp_path, ["a", "b"])
    script = script_of(project.slurm(), tmp_path)
    slurm_tmp = tmp_path / "slurm-tmp"
    slurm_tmp.mkdir()
    (tmp_path / "a-file").write_text("not a folder\n")
    value = {"set": str(slurm_tmp), "empty": "",
             "unusable": str(tmp_path / "a-file" / "under-a-file")}.get(slurm_tmpdir)
    env = task_env(project, 52, 1)
    env.pop("SLURM_TMPDIR", None)
    if value is not None:
        env["SLURM_TMPDIR"] = value

    done = run_task(project, script, env)

    assert 0 == done.returncode, done.stderr
    assert Counter(["b"]) == project.count("end")
    in_slurm_tmp = task_journals(slurm_tmp, 52, 1)
    in_tmpdir = task_journals(project.node_local, 52, 1)
    if slurm_tmpdir == "set":
        assert (1, 0) == (len(in_slurm_tmp), len(in_tmpdir)), (in_slurm_tmp, in_tmpdir)
        local = in_slurm_tmp[0]
    else:
        assert (0, 1) == (len(in_slurm_tmp), len(in_tmpdir)), (in_slurm_tmp, in_tmpdir)
        local = in_tmpdir[0]
    assert ["b"] == [e["job"] for e in read_events(local) if e["type"] == "job_finished"]
    assert {"done": 1, "pending": 1} == counts(project.status())


def test_a_task_without_slurm_tmpdir_or_tmpdir_uses_tmp(tmp_path: Path) -> None:
    """Neither variable set: the journal goes under /tmp (removed again here)."""
    project = SlurmProject(tmp_path, ["a"])
    script = script_of(project.slurm(), tmp_path)
    env = task_env(project, 53, 0)
    for name in ("SLURM_TMPDIR", "TMPDIR"):
        env.pop(name, None)
    submission = script.parent.name.rsplit("-", 1)[1]
    folder = Path("/tmp") / f"journalq-q-{submission}-53_0"
    try:
        done = run_task(project, script, env)

        assert 0 == done.returncode, done.stderr
        assert (folder / "q.jsonl").is_file()
        assert [] == task_journals(project.node_local, 53, 0)
        assert Counter(["a"]) == project.count("end")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_a_job_tasks_job_stays_put_when_the_config_gains_jobs(tmp_path: Path) -> None:
    """Script written for a, b, c; then the config gains a job before them and one after.
    Task 1 still runs b, and only b; the manifest is as it was."""
    project = SlurmProject(tmp_path, ["a", "b", "c"])
    script = script_of(project.slurm(), tmp_path)
    manifest = (script.parent / "manifest.txt").read_bytes()
    assert b"a\nb\nc\n" == manifest
    grown = SlurmProject(tmp_path, ["a0", "a", "b", "c", "z"])  # rewrites the config

    done = run_task(grown, script, task_env(grown, 61, 1))

    assert 0 == done.returncode, done.stderr
    assert Counter(["b"]) == grown.count("start") == grown.count("end")
    assert manifest == (script.parent / "manifest.txt").read_bytes()


def test_a_shard_tasks_jobs_stay_put_when_the_config_gains_a_job_before_them(
        tmp_path: Path) -> None:
    """--tasks 2 over a, b, c, d (shard 1/2: b and d, by the order jobs entered the
    journal); then the config gains a0 before a. Task 1 still runs exactly b and d: the new
    job takes the next position in the queue, not the first, and shifts no one."""
    project = SlurmProject(tmp_path, ["a", "b", "c", "d"])
    script = script_of(project.slurm("--tasks", "2"), tmp_path)
    grown = SlurmProject(tmp_path, ["a0", "a", "b", "c", "d"])

    done = run_task(grown, script, task_env(grown, 62, 1))

    assert 0 == done.returncode, done.stderr
    assert Counter(["b", "d"]) == grown.count("start") == grown.count("end")
