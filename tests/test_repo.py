"""The repository itself: what git ignores, and what may live at its top level."""

from __future__ import annotations

import subprocess

import pytest

from conftest import REPO

ALLOWED_TOP_LEVEL = {"journalq", "configs", "runtime_state", "tests", "setup.cfg",
                     "pyproject.toml", "README.md", ".gitignore", ".ci", ".git"}

pytestmark = pytest.mark.skipif(not (REPO / ".git").exists(), reason="not a git checkout")


def ignored(path: str) -> bool:
    """Whether .gitignore's rules ignore `path` (tracked or not, existing or not)."""
    done = subprocess.run(["git", "check-ignore", "--no-index", "--quiet", path], cwd=REPO,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode in (0, 1), done.stderr
    return done.returncode == 0


@pytest.mark.parametrize("path", [
    "runtime_state/x.jsonl", "runtime_state/x.jsonl.lock", "runtime_state/logs/a.log",
    "runtime_state/logs/q/a/attempt-1.log", "runtime_state/outputs/q/a/summary.tsv",
    "colab/nb.ipynb", "colab/run.py", "x.jsonl.lock", "elsewhere/q.jsonl.torn-20260101T000000Z",
    "notebook.ipynb", "journalq/__pycache__/fold.cpython-311.pyc", "journalq.egg-info/PKG-INFO",
    "build/lib/x.py", "dist/journalq-0.1.0.tar.gz", ".hypothesis/examples/x",
])
def test_runtime_files_are_ignored(path: str) -> None:
    """Journals, locks, torn tails, logs, outputs, Colab glue and build outputs are ignored."""
    assert ignored(path)


def tracked() -> list[str]:
    done = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True,
                          check=True, timeout=30)
    return done.stdout.splitlines()


@pytest.mark.parametrize("path", [
    "runtime_state/README.md", "configs/experiments/colab_batch_a.yaml",
    "configs/experiments/example.local.yaml", "configs/experiments/new.yaml",
    "configs/experiments/new.toml", "tests/test_new.py", "journalq/new.py", "README.md",
    ".ci/run",
])
def test_sources_and_configs_are_not_ignored(path: str) -> None:
    """Configs (present and future), the runtime_state README and sources are never ignored."""
    assert not ignored(path)


def test_no_tracked_file_is_ignored() -> None:
    """Every file git tracks is one .gitignore lets through (else a clone would lose it)."""
    assert [] == [path for path in tracked() if ignored(path)]


def test_top_level_holds_only_the_allowed_entries() -> None:
    """At the top of the repository, everything is either an allowed entry or ignored."""
    present = {path.name for path in REPO.iterdir()}

    assert set() == {name for name in present - ALLOWED_TOP_LEVEL if not ignored(name)}
    assert set() == {path.split("/")[0] for path in tracked()} - ALLOWED_TOP_LEVEL
