"""`--dry-run` writes nothing and says what would happen; the code a job ran (its git commit
and whether the work tree was dirty) is recorded and shown."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from test_run_support import SmallQueue

from conftest import events, journalq


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` with its bytes (to prove nothing was written)."""
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("state", ["new", "partly-run"])
def test_run_dry_run_plans_and_writes_nothing(project: Path, state: str) -> None:
    """`run --dry-run` lists the jobs it would add and run, in order, with their commands,
    and leaves every file byte-identical (no journal, lock, out_dir or log is made)."""
    with SmallQueue(project, ["a", "b", "c"]) as queue:
        if state == "partly-run":
            assert 0 == queue.run("--quiet", "a").returncode
        before = tree(project)

        done = journalq("run", "--config", queue.config, "--dry-run", "--slots", "2",
                        cwd=project)

        assert 0 == done.returncode, done.stderr
        assert before == tree(project)
        planned = [line.split(":")[0].strip() for line in done.stdout.splitlines()
                   if line.startswith("  ")]
        assert (["a", "b", "c"] if state == "new" else ["b", "c"]) == planned
        assert "in 2 slots" in done.stdout
        assert "run_sweep.py" in done.stdout
        assert ("would add 3 job(s)" if state == "new" else "would add 0 job(s)") in done.stdout


def test_init_dry_run_names_added_and_changed_jobs(project: Path) -> None:
    """`init --dry-run` names the jobs a config adds and the specs it changes; writes
    nothing."""
    with SmallQueue(project, ["a", "b"]) as queue:
        assert 0 == queue.run("--quiet").returncode
        config = project / queue.config
        config.write_text(config.read_text().replace("alphas: [0.5, 1]", "alphas: [0.5, 2]")
                          + "  - id: c\n    command: [python, -c, 'print(1)']\n")
        before = tree(project)

        done = journalq("init", "--config", queue.config, "--dry-run", cwd=project)

        assert 0 == done.returncode, done.stderr
        assert before == tree(project)
        assert "would add 1 job(s): c" in done.stdout
        assert "would record the config's new spec of 2 job(s): a, b" in done.stdout


def git(folder: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True,
                          check=True, env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
                                           "GIT_COMMITTER_NAME": "t",
                                           "GIT_COMMITTER_EMAIL": "t@t", "HOME": str(folder)})
    return done.stdout.strip()


def test_the_commit_a_job_ran_is_recorded_and_shown(project: Path) -> None:
    """In a git work tree, job_started and the run card record HEAD and whether the tree
    was dirty; `status` names done jobs that ran another commit than HEAD, and `run` warns
    when a batch's done jobs span several commits."""
    with SmallQueue(project, ["a", "b"]) as queue:
        git(project, "init", "-q")
        (project / ".gitignore").write_text("runtime_state/\n")
        git(project, "add", ".")
        git(project, "commit", "-q", "-m", "one")
        first = git(project, "rev-parse", "HEAD")
        assert 0 == queue.run("--quiet", "a").returncode
        (project / "scripts" / "run_sweep.py").write_text(
            (project / "scripts" / "run_sweep.py").read_text() + "\n# edited\n")

        dirty = queue.run("--quiet", "b")

        started = {e["job"]: e for e in events(queue.journal) if e["type"] == "job_started"}
        assert (first, False) == (started["a"]["commit"], started["a"]["dirty"])
        assert (first, True) == (started["b"]["commit"], started["b"]["dirty"])
        assert f'commit = "{first}"' in (queue.out_dir("a") / "journalq-run.toml").read_text()
        assert "ran 2 versions of the code" in dirty.stderr
        git(project, "commit", "-q", "-am", "two")

        shown = journalq("status", "--state", str(queue.journal), cwd=project)
        as_json = json.loads(journalq("status", "--state", str(queue.journal), "--json",
                                      cwd=project).stdout)

        assert 0 == shown.returncode, shown.stderr
        assert "done jobs that ran other code than HEAD" in shown.stdout
        assert f"{first[:12]}: a" in shown.stdout
        assert f"{first[:12]}+dirty: b" in shown.stdout
        assert first == as_json["jobs"][0]["commit"]


def test_outside_git_nothing_is_recorded(project: Path) -> None:
    """A job outside any work tree (or without git) records no commit: the journal is as
    it always was."""
    with SmallQueue(project, ["a"]) as queue:
        assert 0 == queue.run("--quiet").returncode

        (started,) = [e for e in events(queue.journal) if e["type"] == "job_started"]

        assert "commit" not in started and "dirty" not in started
