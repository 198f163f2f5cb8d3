"""Shared fixtures: a throwaway project folder, and journalq run as a real process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest_plugins = ["reliability", "slurm_cluster"]  # figures table; Slurm test cluster

REPO = Path(__file__).resolve().parent.parent
# The inner loop (`pytest -m "not slow"`) runs the property tests with a tenth of their
# examples; CI (everything) runs them all.
QUICK = False


# Whole modules outside the inner loop: several processes at once (slots, shards, runners
# seen from a sync folder, wait and logs --follow beside a runner), signals and process
# trees, and tables built from whole runs. About two minutes of the suite; CI runs them.
SLOW_MODULES = {"test_slots", "test_shards", "test_runners_view", "test_hostile_sync",
                "test_reaper", "test_wait", "test_logs", "test_run_signals",
                "test_startup_signals", "test_run_crash", "test_status_filters", "test_collect",
                "test_reads", "test_seed_scenarios", "test_example"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the tests of `SLOW_MODULES` slow, as if each module said so itself."""
    for item in items:
        if item.path.stem in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)


def pytest_configure(config: pytest.Config) -> None:
    """Note whether this is the inner loop (slow tests deselected). A suite started in the
    background by a script (`.ci/run &`) ignores SIGINT, and so would every journalq it
    starts (journalq keeps a Ctrl-C ignored that it was started with): the tests that press
    Ctrl-C need their runners to start as a terminal's would."""
    import signal

    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    global QUICK
    QUICK = "not slow" in (config.option.markexpr or "")
    if QUICK:  # property tests that keep hypothesis's defaults
        from hypothesis import settings

        settings.register_profile("quick", max_examples=10)
        settings.load_profile("quick")


def examples(count: int) -> int:
    """How many examples a property test tries: `count`, or a tenth in the inner loop."""
    return max(10, count // 10) if QUICK else count
WORKER = Path(__file__).resolve().parent / "worker.py"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A project folder like a user's: configs/, and scripts/run_sweep.py (the test worker).

    The test runs with it as the current directory, as a user would run journalq.
    """
    shutil.copytree(REPO / "configs", tmp_path / "configs")
    (tmp_path / "scripts").mkdir()
    shutil.copy(WORKER, tmp_path / "scripts" / "run_sweep.py")
    monkeypatch.chdir(tmp_path)
    yield tmp_path


def journalq(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
             timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run `python -m journalq ARGS` as a separate process and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "journalq", *args], cwd=cwd, capture_output=True, text=True,
        env={**os.environ, **(env or {})}, timeout=timeout,
    )


def spawn(*args: str, cwd: Path | None = None,
          env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """Start `python -m journalq ARGS` in the background."""
    return subprocess.Popen(
        [sys.executable, "-m", "journalq", *args], cwd=cwd, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})},
    )


def events(journal: Path) -> list[dict[str, object]]:
    """Every complete line of a journal, parsed."""
    lines = journal.read_bytes().split(b"\n")
    return [json.loads(line) for line in lines if line.strip()]


def status_json(journal: Path, cwd: Path | None = None) -> dict[str, object]:
    """`journalq status --json` of a journal, parsed."""
    done = journalq("status", "--state", str(journal), "--json", cwd=cwd)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def write(path: Path, text: str) -> Path:
    """Write a file, creating its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
