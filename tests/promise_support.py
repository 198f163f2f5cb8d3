"""What the issue-9 regression tests (`test_promise_*`) share: a project folder with a queue
of test-worker jobs, journalq run as a real process, journals read as plain JSON lines, a
ledger of real job runs, /proc scans, and a sync folder that lags like Google Drive.

Nothing here imports journalq: the tests drive it only through its command line, so they
keep their meaning while its internal modules are reshaped. No tests here.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
WORKER = Path(__file__).resolve().parent / "worker.py"
POLL_SECONDS = 0.02
# A journal timestamp: RFC 3339 UTC with microseconds, fixed width.
TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
NEGATIVE_AGE = re.compile(r"-\d+(?:\.\d+)?(?:s|m\d\ds|h\d\dm)\b")


# ---- processes -----------------------------------------------------------------------------

def journalq(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60,
             **popen: Any) -> subprocess.CompletedProcess[str]:
    """`python -m journalq ARGS`, run to its end in `cwd`, output captured."""
    return subprocess.run([sys.executable, "-m", "journalq", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, **popen)


def spawn(*args: str, cwd: Path, env: dict[str, str] | None = None,
          **popen: Any) -> subprocess.Popen[str]:
    """`python -m journalq ARGS` in the background, output captured."""
    return subprocess.Popen([sys.executable, "-m", "journalq", *args], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})}, **popen)


def wait_until(condition: Callable[[], Any], what: str, timeout: float = 20) -> Any:
    """Poll `condition` until it returns something true, and return that."""
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(POLL_SECONDS)
    return found


def is_running(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie has exited: it is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


def processes_with(marker: str) -> list[int]:
    """Live processes whose command line holds `marker` (a unique word a test put there)."""
    found = []
    needle = marker.encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if needle in cmdline and is_running(int(entry.name)):
            found.append(int(entry.name))
    return found


def kill_marked(marker: str) -> None:
    """SIGKILL every process carrying `marker` (a failed test must not leak processes)."""
    for pid in processes_with(marker):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def one_error_line(stderr: str) -> str:
    """The single line a refused command prints; fails on a traceback or on several lines."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert 1 == len(lines), stderr
    assert lines[0].startswith("journalq: error: "), stderr
    return lines[0]


# ---- journals ------------------------------------------------------------------------------

def read_events(path: Path) -> list[dict[str, Any]]:
    """Every complete line of a journal, parsed as JSON (a torn last line is left out)."""
    data = path.read_bytes()
    return [json.loads(line) for line in data.split(b"\n")[:-1] if line.strip()]


def of_type(found: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """The events of one type."""
    return [event for event in found if event["type"] == kind]


def stray_endings(found: list[dict[str, Any]]) -> list[str]:
    """Sessions that wrote `session_ended` without having written `session_started`."""
    started = {event["session"] for event in of_type(found, "session_started")}
    return [event["session"] for event in of_type(found, "session_ended")
            if event["session"] not in started]


def counts(state: dict[str, Any]) -> dict[str, int]:
    """The non-zero counts of `status --json`."""
    return {name: n for name, n in state["counts"].items() if n}


def job_of(state: dict[str, Any], job_id: str) -> dict[str, Any]:
    """One job of `status --json`."""
    return next(job for job in state["jobs"] if job["id"] == job_id)


# ---- a project -----------------------------------------------------------------------------

def write(path: Path, text: str) -> Path:
    """Write a file, creating its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


class Project:
    """A user's project folder: scripts/run_sweep.py (the test worker), one queue config of
    worker jobs, its journal, and a ledger each real run of a job appends a line to.

    `boot` is the machine identity (JOURNALQ_BOOT_ID): two Projects with different boots play
    two runtimes on one machine. Use it as a context manager: leaving it kills whatever the
    test left running.
    """

    def __init__(self, root: Path, jobs: Sequence[str], *, queue: str = "q",
                 boot: str = "machine-a", max_attempts: int = 1, heartbeat_seconds: float = 0.2,
                 grace_seconds: float = 1.0, stale_seconds: float | None = None,
                 sync_seconds: float | None = None, ledger: Path | None = None,
                 config_name: str | None = None, out_root: str | None = None) -> None:
        self.root = root
        self.queue = queue
        self.jobs = list(jobs)
        self.boot = boot
        self.config = f"configs/{config_name or queue}.yaml"
        self.journal = root / "runtime_state" / f"{queue}.jsonl"
        self.ledger = ledger or root / "ledger.log"
        self.out_root = out_root or f"runtime_state/outputs/{queue}"
        self.runners: list[subprocess.Popen[str]] = []
        (root / "scripts").mkdir(parents=True, exist_ok=True)
        shutil.copy(WORKER, root / "scripts" / "run_sweep.py")
        lines = [
            f"queue: {queue}",
            "worker: [python, scripts/run_sweep.py]",
            f"out_root: {self.out_root}",
            f"heartbeat_seconds: {heartbeat_seconds}",
            f"grace_seconds: {grace_seconds}",
        ]
        if stale_seconds is not None:
            lines.append(f"stale_seconds: {stale_seconds}")
        if sync_seconds is not None:
            lines.append(f"sync_seconds: {sync_seconds}")
        lines += ["defaults:", f"  max_attempts: {max_attempts}", "jobs:"]
        for number, job in enumerate(self.jobs, start=1):
            lines.append(f"  - id: {job}")
            lines.append(f"    args: {{model: gpt2, layers: \"{number}-{number + 1}\", "
                         "alphas: [0.5, 1]}")
        write(root / self.config, "\n".join(lines) + "\n")

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *_: object) -> None:
        self.kill_everything()

    def env(self, **knobs: str) -> dict[str, str]:
        """Its machine identity, and the worker appending each real run to the ledger."""
        return {"JOURNALQ_BOOT_ID": self.boot, "WORKER_LOG": str(self.ledger), **knobs}

    def command(self, *args: str, timeout: float = 60,
                **knobs: str) -> subprocess.CompletedProcess[str]:
        """Any journalq command, run to its end in the project folder."""
        return journalq(*args, cwd=self.root, env=self.env(**knobs), timeout=timeout)

    def run(self, *args: str, **knobs: str) -> subprocess.CompletedProcess[str]:
        """`journalq run --config <ours> --quiet ARGS` to its end."""
        return self.command("run", "--config", self.config, "--quiet", *args, **knobs)

    def start(self, *args: str, **knobs: str) -> subprocess.Popen[str]:
        """`journalq run --config <ours> --quiet ARGS` in the background."""
        runner = spawn("run", "--config", self.config, "--quiet", *args, cwd=self.root,
                       env=self.env(**knobs))
        self.runners.append(runner)
        return runner

    def status(self, *args: str) -> dict[str, Any]:
        """`journalq status --json` of our journal."""
        shown = self.command("status", "--state", str(self.journal), "--json", *args)
        assert 0 == shown.returncode, shown.stderr
        result: dict[str, Any] = json.loads(shown.stdout)
        return result

    def job(self, job_id: str, *args: str) -> dict[str, Any]:
        """One job of `status --json`."""
        return job_of(self.status(*args), job_id)

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        """The journal's events (of type `kind`)."""
        if not self.journal.exists():
            return []
        found = read_events(self.journal)
        return found if kind is None else of_type(found, kind)

    def runs(self) -> list[tuple[str, int]]:
        """Every real start of a job (ledger lines of this project's jobs), in order."""
        if not self.ledger.exists():
            return []
        rows = [line.split() for line in self.ledger.read_text().splitlines()]
        return [(job, int(attempt)) for job, attempt, _ in rows]

    def worker_pids(self) -> list[int]:
        """The pid of every worker started (each leads its job's process group)."""
        if not self.ledger.exists():
            return []
        return [int(line.split()[2]) for line in self.ledger.read_text().splitlines()]

    def out_dir(self, job_id: str) -> Path:
        """Where the job writes its results and its run card."""
        return self.root / self.out_root / job_id

    def card(self, job_id: str) -> Path:
        """The job's run card."""
        return self.out_dir(job_id) / "journalq-run.toml"

    def kill_everything(self) -> None:
        """SIGKILL every runner and worker group this project started and left running."""
        for runner in self.runners:
            if runner.poll() is None:
                runner.kill()
            with contextlib.suppress(subprocess.TimeoutExpired, ValueError):
                runner.communicate(timeout=10)
        for pid in self.worker_pids():
            if is_running(pid):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)


# ---- a lagging sync folder -----------------------------------------------------------------

class LaggingDrive:
    """Google Drive as two runtimes see it: each has a private view (its --sync-dir), and a
    file one runtime writes into its view shows up in the other views `lag` seconds later,
    whole (Drive delivers replaced files whole). A thread relays; files the relay itself
    delivered are not relayed back, and deletions are not relayed (as Drive may lag them).
    """

    def __init__(self, root: Path, names: Sequence[str], lag: float) -> None:
        self.views = {name: root / f"view-{name}" for name in names}
        for view in self.views.values():
            view.mkdir(parents=True)
        self.lag = lag
        self._seen: dict[tuple[str, str], bytes] = {}  # (view, file) -> last bytes noticed
        self._pending: list[tuple[float, str, str, bytes]] = []  # due, to view, file, bytes
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> LaggingDrive:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def view(self, name: str) -> Path:
        """The sync folder runtime `name` is given."""
        return self.views[name]

    def _loop(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            for name, view in self.views.items():
                for path in sorted(view.iterdir()):
                    if path.name.startswith(".") or not path.is_file():
                        continue
                    with contextlib.suppress(OSError):
                        data = path.read_bytes()
                        key = (name, path.name)
                        if self._seen.get(key) != data:
                            self._seen[key] = data
                            for other in self.views:
                                if other != name:
                                    self._pending.append((now + self.lag, other, path.name,
                                                          data))
            due = [item for item in self._pending if item[0] <= now]
            self._pending = [item for item in self._pending if item[0] > now]
            for _, other, file_name, data in due:
                target = self.views[other] / file_name
                temp = self.views[other] / f".{file_name}.relay"
                temp.write_bytes(data)
                self._seen[(other, file_name)] = data  # delivered, not written there
                os.replace(temp, target)
            time.sleep(POLL_SECONDS)


@contextlib.contextmanager
def marked_processes(marker: str) -> Iterator[str]:
    """A unique word for a test's processes; whatever still carries it is killed after."""
    try:
        yield marker
    finally:
        kill_marked(marker)
