"""What the tests of the reading commands (status filters, logs, wait, collect, the API)
share: queues of small Python jobs, started for real, and a guard that stops every process
a test started. No tests here."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

from test_run_support import members_of

from conftest import spawn, write

# Prints a line every quarter second for two seconds, then exits 3.
TICKER = ("import sys, time\n"
          "for i in range(8):\n"
          "    print('tick', i, flush=True)\n"
          "    time.sleep(0.25)\n"
          "sys.exit(3)\n")
OK = "print('ok')"
FAIL = "import sys; print('failing'); sys.exit(3)"


def sleeper(seconds: float) -> str:
    """A job that says it started, sleeps, and succeeds."""
    return f"import time; print('started', flush=True); time.sleep({seconds}); print('slept')"


def command_config(project: Path, name: str, jobs: dict[str, str], *,
                   max_attempts: int = 1, extra: str = "") -> str:
    """configs/<name>.yaml: one `python -c CODE` job per entry, in order; its path."""
    lines = [f"queue: {name}", f"out_root: runtime_state/outputs/{name}",
             "heartbeat_seconds: 0.2", "grace_seconds: 1", "defaults:",
             f"  max_attempts: {max_attempts}", *extra.splitlines(), "jobs:"]
    for job, code in jobs.items():
        lines.append(f"  - {{id: {job}, command: [python, -c, {json.dumps(code)}]}}")
    path = f"configs/{name}.yaml"
    write(project / path, "\n".join(lines) + "\n")
    return path


class Processes:
    """Background journalq processes of one test, all killed (with their jobs' process
    groups) when the test leaves the `with` block, pass or fail."""

    def __init__(self, project: Path) -> None:
        self.project = project
        self.started: list[subprocess.Popen[str]] = []

    def start(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        """`python -m journalq ARGS` in the background, from the project folder."""
        process = spawn(*args, cwd=self.project, env=env)
        self.started.append(process)
        return process

    def kill_all(self) -> None:
        """SIGKILL what is still running: journalq processes, then the jobs they ran."""
        for process in self.started:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.communicate(timeout=10)
        groups = set()
        for journal in (self.project / "runtime_state").glob("*.jsonl"):
            for line in journal.read_text().splitlines():
                with contextlib.suppress(ValueError):
                    event = json.loads(line)
                    if event.get("type") == "heartbeat" and event.get("child_pid"):
                        groups.add(int(event["child_pid"]))
        for pid in members_of(groups):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def processes(project: Path) -> Iterator[Processes]:
    """A `Processes` for the duration of a test."""
    started = Processes(project)
    try:
        yield started
    finally:
        started.kill_all()


def journal_types(journal: Path, job: str | None = None) -> list[str]:
    """The event types of a journal (about `job`), in file order."""
    if not journal.exists():
        return []
    found = []
    for line in journal.read_text().splitlines():
        with contextlib.suppress(ValueError):
            event = json.loads(line)
            if job is None or event.get("job") == job:
                found.append(event["type"])
    return found
