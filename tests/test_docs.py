"""The README is the manual: its commands must work as written, in order."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO
from journalq.errors import EXIT_TABLE

README = (REPO / "README.md").read_text()
JOURNALQ = f"{sys.executable} -m journalq"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.DOTALL)


def _commands() -> list[str]:
    """Every command line of the README's sh blocks, but the install-and-run one-liners."""
    lines = [line.strip() for block in _blocks("sh") for line in block.splitlines()]
    return [line for line in lines if line and not line.startswith("#")
            and "python3 -m venv" not in line]


def test_readme_test_command_is_what_ci_runs() -> None:
    """CI runs the README's test command, word for word."""
    ci = (REPO / ".ci" / "run").read_text().strip().splitlines()[-1]
    one_liners = [line for block in _blocks("sh") for line in block.splitlines()
                  if "python3 -m venv" in line]
    assert 2 == len(one_liners)
    assert ci == one_liners[1]
    assert "configs/experiments/example.local.yaml" in one_liners[0]


@pytest.mark.slow  # thirty commands, seven seconds: CI runs it
@pytest.mark.skipif(shutil.which("jq") is None, reason="the README's recipes need jq")
def test_readme_commands_run_in_order(tmp_path: Path) -> None:
    """Every command in the README's sh blocks exits 0 when run in order from a checkout."""
    shutil.copytree(REPO / "configs", tmp_path / "configs")
    ran = 0
    for line in _commands():
        command = re.sub(r"(^|\| )journalq ", lambda m: f"{m.group(1)}{JOURNALQ} ", line)
        done = subprocess.run(["bash", "-o", "pipefail", "-c", command], cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)
        assert 0 == done.returncode, f"{line}\n{done.stderr}"
        ran += 1
    assert ran >= 15
    assert (tmp_path / "runtime_state" / "example_local.jsonl").exists()


def test_main_command_runs_the_example(tmp_path: Path) -> None:
    """The quick start's run command, minus the install, runs the example end to end."""
    one_liner = next(line for block in _blocks("sh") for line in block.splitlines()
                     if "python3 -m venv" in line)
    run = one_liner.split("&& .venv/bin/journalq ")[-1]
    shutil.copytree(REPO / "configs", tmp_path / "configs")
    done = subprocess.run(f"{JOURNALQ} {run} --quiet", shell=True, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert 0 == done.returncode, done.stderr
    assert "6 done" in done.stderr


@pytest.mark.slow  # a fresh venv and a regular install: tens of seconds
def test_main_command_installs_and_runs_the_example_as_written(tmp_path: Path) -> None:
    """The quick start's first line, word for word, in a copy of the checkout: a regular
    (not editable) install must carry every subpackage (`journalq.commands` was left out
    of the wheel, and every command ended in "internal error")."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout: the tracked files are what a clone would hold")
    one_liner = next(line for block in _blocks("sh") for line in block.splitlines()
                     if "python3 -m venv" in line)
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True,
                             check=True).stdout.decode().split("\0")
    for name in filter(None, tracked):
        if (REPO / name).is_file():
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, tmp_path / name)
    python = Path(sys.executable).resolve()
    done = subprocess.run(["bash", "-c", one_liner.replace("python3 ", f"{python} ", 1)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600)

    assert 0 == done.returncode, done.stderr[-2000:]
    assert "6 done" in done.stderr
    installed = tmp_path / ".venv" / "lib"
    assert not list(installed.glob("python3*/site-packages/__editable__*journalq*"))


def test_help_lists_the_exit_codes_of_the_readme() -> None:
    """`journalq --help` prints the one exit-code table (`errors.EXIT_TABLE`), and the
    README's table has exactly the same codes, row for row."""
    done = subprocess.run([sys.executable, "-m", "journalq", "--help"], capture_output=True,
                          text=True, check=True)
    readme_rows = re.findall(r"^\| ([0-9][0-9 /]*?) \|", README, flags=re.M)

    for row in EXIT_TABLE:
        assert re.search(rf"^  {re.escape(row.codes)} +{re.escape(row.meaning[:30])}",
                         done.stdout, flags=re.M), row.codes
    assert [row.codes for row in EXIT_TABLE] == [code.replace(" ", "")
                                                 for code in readme_rows]
