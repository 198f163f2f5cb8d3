"""What the `run` tests share: a small queue of test-worker jobs in a project folder, and
ways to watch real processes without sleeping for fixed times.

No tests here; `test_run_*` and `test_seed_*` import it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from conftest import events, journalq, spawn, status_json, write

POLL_SECONDS = 0.02


def wait_until(condition: Callable[[], object], what: str, timeout: float = 10) -> None:
    """Poll `condition` until it is true; fail naming `what` if it never becomes so."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(POLL_SECONDS)


def is_running(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie has exited: it is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


class SmallQueue:
    """A queue config of test-worker jobs, its journal, and every process a test starts.

    Use it as a context manager: leaving it kills whatever the test left running (runners,
    workers, grandchildren), so a failing test never leaks processes into the next one.
    """

    def __init__(self, project: Path, jobs: Sequence[str], *, name: str = "q",
                 max_attempts: int = 1, heartbeat_seconds: float = 0.2,
                 grace_seconds: float = 1.0, timeouts: dict[str, float] | None = None) -> None:
        self.project = project
        self.name = name
        self.jobs = list(jobs)
        self.config = f"configs/{name}.yaml"
        self.journal = project / "runtime_state" / f"{name}.jsonl"
        self.worker_log = project / "worker-runs.log"
        self.runners: list[subprocess.Popen[str]] = []
        lines = [
            f"queue: {name}",
            "worker: [python, scripts/run_sweep.py]",
            f"out_root: runtime_state/outputs/{name}",
            f"heartbeat_seconds: {heartbeat_seconds}",
            f"grace_seconds: {grace_seconds}",
            "defaults:",
            f"  max_attempts: {max_attempts}",
            "jobs:",
        ]
        for number, job in enumerate(self.jobs, start=1):
            lines.append(f"  - id: {job}")
            lines.append(f"    args: {{model: gpt2, layers: \"{number}-{number + 1}\", "
                         "alphas: [0.5, 1]}")
            if timeouts and job in timeouts:
                lines.append(f"    timeout: {timeouts[job]}")
        write(project / self.config, "\n".join(lines) + "\n")

    def __enter__(self) -> SmallQueue:
        return self

    def __exit__(self, *_: object) -> None:
        self.kill_everything()

    # ---- running journalq ----------------------------------------------------------------

    def env(self, **knobs: str) -> dict[str, str]:
        """The environment for journalq: the worker logs its runs, plus the given knobs."""
        return {"WORKER_LOG": str(self.worker_log), **knobs}

    def run(self, *args: str, **knobs: str) -> subprocess.CompletedProcess[str]:
        """`journalq run --config <ours> ARGS` to the end."""
        return journalq("run", "--config", self.config, *args, cwd=self.project,
                        env=self.env(**knobs), timeout=60)

    def command(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Any other journalq command, on our journal."""
        return journalq(*args, "--state", str(self.journal), cwd=self.project, timeout=60)

    def start(self, *args: str, **knobs: str) -> subprocess.Popen[str]:
        """`journalq run --config <ours> ARGS` in the background."""
        runner = spawn("run", "--config", self.config, *args, cwd=self.project,
                       env=self.env(**knobs))
        self.runners.append(runner)
        return runner

    # ---- what happened -------------------------------------------------------------------

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        """The journal's events, or only those of type `kind`."""
        if not self.journal.exists():
            return []
        return [e for e in events(self.journal) if kind is None or e["type"] == kind]

    def has_event(self, kind: str, job: str | None = None) -> bool:
        """Whether the journal holds an event of type `kind` (about `job`)."""
        return any(job is None or e.get("job") == job for e in self.events(kind))

    def runs(self) -> list[tuple[str, int]]:
        """Every real start of the worker, as (job, attempt), in order."""
        if not self.worker_log.exists():
            return []
        rows = [line.split() for line in self.worker_log.read_text().splitlines()]
        return [(job, int(attempt)) for job, attempt, _ in rows]

    def worker_pids(self) -> list[int]:
        """The pid of every worker started (each the leader of its job's process group)."""
        if not self.worker_log.exists():
            return []
        return [int(line.split()[2]) for line in self.worker_log.read_text().splitlines()]

    def status(self) -> dict[str, Any]:
        """`journalq status --json`."""
        return status_json(self.journal, cwd=self.project)

    def job(self, job_id: str) -> dict[str, Any]:
        """One job of `status --json`."""
        jobs: list[dict[str, Any]] = self.status()["jobs"]
        return next(job for job in jobs if job["id"] == job_id)

    def out_dir(self, job_id: str) -> Path:
        """Where the job writes its results."""
        return self.project / "runtime_state" / "outputs" / self.name / job_id

    def log(self, job_id: str, attempt: int) -> Path:
        """The job's log of one attempt."""
        return self.project / "runtime_state" / "logs" / self.name / job_id / \
            f"attempt-{attempt}.log"

    def grandchild(self, job_id: str) -> int:
        """The pid of the grandchild the worker spawned (WORKER_GRANDCHILD=1)."""
        return int((self.out_dir(job_id) / "grandchild.pid").read_text())

    def wait_busy(self, job_id: str) -> None:
        """Wait until the job's worker has started and set itself up (its first line, which
        it prints after ignoring SIGTERM and spawning a grandchild, is in the log)."""
        log = self.log(job_id, self.latest_attempt(job_id))
        wait_until(lambda: log.exists() and "steering" in log.read_text(),
                   f"{job_id}'s worker to start")

    def latest_attempt(self, job_id: str) -> int:
        """The number of the job's latest started attempt, once it has one."""
        wait_until(lambda: self.has_event("job_started", job_id), f"{job_id} to start")
        return max(int(e["attempt"]) for e in self.events("job_started")
                   if e["job"] == job_id)

    # ---- cleaning up ---------------------------------------------------------------------

    def kill_everything(self) -> None:
        """SIGKILL every runner, worker and grandchild this test started and left running."""
        for runner in self.runners:
            with contextlib.suppress(ProcessLookupError):
                runner.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                runner.communicate(timeout=10)
        for pid in members_of(set(self.worker_pids())):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def members_of(groups: set[int]) -> list[int]:
    """Live processes in any of the process `groups` (a worker's group holds its children)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_bytes().decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[2]) in groups and fields[0] not in "ZX":
            found.append(int(entry.name))
    return found


def finish(runner: subprocess.Popen[str], timeout: float = 15) -> tuple[int, str, str]:
    """Wait for a background runner; its exit code, stdout and stderr."""
    out, err = runner.communicate(timeout=timeout)
    return runner.returncode, out, err


def counts(state: dict[str, Any]) -> dict[str, int]:
    """The non-zero status counts of `status --json`."""
    return {status: n for status, n in state["counts"].items() if n}
