"""The code passes the linters it is configured for; the core never imports the shell."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from conftest import REPO

CORE = {"events", "codec", "state", "fold", "policy", "config", "errors", "timestamps", "defaults"}
SHELL = {"journal", "reader", "lock", "fs", "host", "sync", "runner", "batch", "commands",
         "workspace", "recovery", "checkpoint", "cli", "session",
         "card", "render", "repair"}


def test_ruff_is_clean() -> None:
    """`ruff check` finds nothing in the package and the tests."""
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "journalq", "tests"],
                          cwd=REPO, capture_output=True, text=True)
    assert 0 == done.returncode, done.stdout + done.stderr


def test_mypy_is_clean() -> None:
    """`mypy` (strict, as configured in pyproject.toml) finds nothing."""
    done = subprocess.run([sys.executable, "-m", "mypy"], cwd=REPO, capture_output=True,
                          text=True)
    assert 0 == done.returncode, done.stdout + done.stderr


@pytest.mark.parametrize("module", sorted(CORE))
def test_core_never_imports_the_shell(module: str) -> None:
    """The functional core (events, codec, state, fold, policy, config) imports no shell
    module, reads no clock and touches no file: the shell passes those in."""
    tree = ast.parse((REPO / "journalq" / f"{module}.py").read_text())
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
            imported.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
    shell = {name for name in imported
             if name.startswith("journalq.") and name.split(".")[1] in SHELL}
    assert set() == shell
    assert not imported & {"time", "os", "subprocess", "socket", "fcntl", "signal"}
