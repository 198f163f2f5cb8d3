"""`status --status S,S --job GLOB --format table|json|tsv`: filters choose the rows of every
format, never the counts (those stay the whole queue's); TSV is a header and one row per
job that `cut`, `sort` and csv readers take as they are."""

from __future__ import annotations

import csv
import io
import json
import subprocess
from pathlib import Path

import pytest
from ops_support import FAIL, OK, command_config

from conftest import journalq, write

JOURNAL = "runtime_state/sq.jsonl"
COLUMNS = ["id", "status", "reason", "attempt", "tries", "max_attempts", "return_code",
           "signal", "duration", "started", "finished", "last_heartbeat", "host", "out_dir",
           "log"]


@pytest.fixture
def queue(project: Path) -> Path:
    """gpt2-a done, gpt2-b failed (rc 3), other-c cancelled, other-d pending (never run)."""
    config = command_config(project, "sq", {"gpt2-a": OK, "gpt2-b": FAIL, "other-c": OK})
    journalq("init", "--config", config)
    journalq("cancel", "--state", JOURNAL, "other-c")
    assert 1 == journalq("run", "--config", config, "--quiet").returncode
    command_config(project, "sq", {"gpt2-a": OK, "gpt2-b": FAIL, "other-c": OK,
                                   "other-d": OK})
    journalq("init", "--config", config)
    return project


def status(*args: str) -> subprocess.CompletedProcess[str]:
    done = journalq("status", "--state", JOURNAL, *args)
    assert 0 == done.returncode, done.stderr
    return done


def tsv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text), delimiter="\t", quoting=csv.QUOTE_NONE))


def test_status_and_job_filters_pick_the_rows_of_every_format(queue: Path) -> None:
    """`--status failed,cancelled` and `--job 'gpt2-*'` (each alone and together) list
    the same jobs in the table, the JSON and the TSV."""
    cases = {
        ("--status", "failed,cancelled"): ["gpt2-b", "other-c"],
        ("--job", "gpt2-*"): ["gpt2-a", "gpt2-b"],
        ("--job", "gpt2-*", "--status", "failed", "--status", "pending"): ["gpt2-b"],
        ("--job", "*-a", "--job", "*-d"): ["gpt2-a", "other-d"],
        ("--status", "running"): [],
    }
    for flags, expected in cases.items():
        table = status(*flags).stdout.splitlines()
        start = table.index(next(line for line in table if line.startswith("JOB"))) + 1
        in_table = [line.split()[0] for line in table[start:] if line]
        in_json = [job["id"] for job in json.loads(status(*flags, "--json").stdout)["jobs"]]
        in_tsv = [row["id"] for row in tsv_rows(status(*flags, "--format", "tsv").stdout)]

        assert expected == in_table == in_json == in_tsv, flags


def test_filters_leave_the_counts_of_the_whole_queue(queue: Path) -> None:
    """The counts line and JSON `counts` describe all four jobs; the table says how many
    of them it shows."""
    table = status("--status", "failed").stdout
    document = json.loads(status("--status", "failed", "--format", "json").stdout)

    assert "4 jobs: 1 pending, 0 running, 1 done, 1 failed, 1 cancelled" in table
    assert "1 of 4 jobs shown (filtered)" in table
    assert {"pending": 1, "running": 0, "done": 1, "failed": 1, "cancelled": 1} == \
        document["counts"]
    assert ["gpt2-b"] == [job["id"] for job in document["jobs"]]


def test_json_is_an_alias_of_format_json(queue: Path) -> None:
    """`--json` and `--format json` print the same document."""
    assert status("--json").stdout == status("--format", "json").stdout


def test_an_unknown_status_is_a_usage_error_naming_the_valid_ones(queue: Path) -> None:
    """`--status done,finished`: exit 2, one line listing the five statuses."""
    done = journalq("status", "--state", JOURNAL, "--status", "done,finished")

    assert 2 == done.returncode
    assert ("journalq: error: --status 'finished' is not a status; use one or more of "
            "pending, running, done, failed, cancelled, comma-separated\n") == done.stderr


def test_tsv_has_a_header_and_one_row_per_job(queue: Path) -> None:
    """The documented columns; the failed job's return code and log; empty cells for
    what a job that never ran does not have; `cut -f` and `sort` take it as it is."""
    text = status("--format", "tsv").stdout
    rows = tsv_rows(text)

    assert COLUMNS == text.splitlines()[0].split("\t")
    assert ["gpt2-a", "gpt2-b", "other-c", "other-d"] == [row["id"] for row in rows]
    failed = rows[1]
    assert ("failed", "exit", "1", "1", "1", "3") == (
        failed["status"], failed["reason"], failed["attempt"], failed["tries"],
        failed["max_attempts"], failed["return_code"])
    assert failed["log"].endswith("gpt2-b/attempt-1.log")
    assert float(failed["duration"]) > 0
    pending = rows[3]
    assert ("pending", "0", "", "", "") == (pending["status"], pending["attempt"],
                                            pending["return_code"], pending["started"],
                                            pending["log"])
    statuses = subprocess.run("cut -f2 | tail -n +2 | sort", shell=True, input=text,
                              capture_output=True, text=True, check=True).stdout.split()
    assert ["cancelled", "done", "failed", "pending"] == statuses


def test_tabs_and_newlines_in_values_are_escaped(project: Path) -> None:
    """An out_root holding a tab and a newline (any folder name is allowed) cannot split a
    row: every line has exactly as many cells as the header."""
    write(project / "configs/odd.yaml", "\n".join([
        "queue: odd",
        "out_root: \"out\\tx\\ny\"",
        "jobs:",
        "  - {id: a, command: [python, -c, \"print(1)\"]}",
    ]) + "\n")
    journalq("init", "--config", "configs/odd.yaml")

    text = journalq("status", "--state", "runtime_state/odd.jsonl", "--format", "tsv").stdout

    lines = text.splitlines()
    assert 2 == len(lines)
    assert [len(COLUMNS)] * 2 == [len(line.split("\t")) for line in lines]
    assert "out\\tx\\ny/a" == lines[1].split("\t")[COLUMNS.index("out_dir")]
