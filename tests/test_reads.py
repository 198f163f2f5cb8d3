"""Every command reads the local journal's bytes at most once (issue: one read per command).

Counted through the file-system seam (`tests/readcount.py` wraps `journalq.fs.REAL`), so it
does not matter which module reads: replay, the checkpoint's fingerprint, a merge. The only
extra allowed is the first 4 KiB sample that tells a journal from a config
(`reader.check_journal`), once for the writer's lock and once for the read. The journals
are many times that sample, so a second full read (or half of one) fails.

Pushes are not reads of this process: they copy the journal into the sync folder by the
kernel (`fs.copy_file`: copy_file_range, else sendfile), so the bytes never pass through
Python. The seam counts them apart (`copied`); a session's first push copies the journal
whole (every session keeps its own copy), later ones its last segment. That is held to a
bound here (no more than three pushes' worth for one short command) and over a long run by
tests/test_sync_scale.py (bytes written into the folder <= 10x the journal).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_run_support import SmallQueue

from conftest import REPO

READCOUNT = REPO / "tests" / "readcount.py"
HEAD_SAMPLES = 2 * 4096
# Jobs that are only added (one `job_added` line each, ~500 bytes): they make the journal
# ten times HEAD_SAMPLES, so that one read more than allowed cannot hide in the allowance.
PADDING = [f"pad{number:03d}" for number in range(150)]


def counted(project: Path, journal: Path, *args: str) -> tuple[int, dict[str, int]]:
    """(bytes of the journal before the command, what the command did to it: `read` and
    `copied` bytes, see tests/readcount.py)."""
    before = journal.stat().st_size
    log = project / "reads.json"
    done = subprocess.run([sys.executable, str(READCOUNT), "--log", str(log), "--", *args],
                          cwd=project, capture_output=True, text=True, timeout=120)
    assert done.returncode in (0, 1), done.stderr
    counts = json.loads(log.read_text())
    return before, {kind: per_path.get(str(journal.resolve()), 0)
                    for kind, per_path in counts.items() if isinstance(per_path, dict)}


def bytes_read(project: Path, journal: Path, *args: str) -> tuple[int, int]:
    """(bytes of the journal before the command, bytes the command read of it)."""
    before, counts = counted(project, journal, *args)
    return before, counts["read"]


@pytest.mark.parametrize("sync", [False, True], ids=["local", "sync-dir"])
def test_each_command_reads_the_journal_at_most_once(project: Path, sync: bool) -> None:
    """status, retry, cancel, recover, sync, run, wait and collect each read the journal's
    bytes once at most (with a sync folder too: merges and pushes do not read it again),
    and pushes copy no more than three times the journal for one short command."""
    with SmallQueue(project, ["a", "b", "c", "d", *PADDING]) as queue:
        drive = ["--sync-dir", str(project / "drive")] if sync else []
        assert 0 == queue.run("--quiet", *drive, "a", "b").returncode
        journal = str(queue.journal)
        commands = [
            ["status", "--state", journal, *drive],
            ["status", "--state", journal, "--json", *drive],
            ["recover", "--state", journal, *drive],
            ["recover", "--state", journal, "--dry-run", *drive],
            ["cancel", "--state", journal, "d", *drive],
            ["retry", "--state", journal, "d", *drive],
            ["retry", "--state", journal, "--failed", *drive],
            ["wait", "--state", journal, "a", *drive],
            ["collect", "--state", journal, *drive],
            ["run", "--config", queue.config, "--quiet", "c", *drive],
        ]
        if sync:
            commands.append(["sync", "--state", journal, *drive])
        over = []  # every command over its allowance, not only the first
        for command in commands:
            size, counts = counted(project, queue.journal, *command)
            after = queue.journal.stat().st_size
            assert size >= 8 * HEAD_SAMPLES  # a second read would be far over the allowance
            if (counts["read"] > size + HEAD_SAMPLES
                    or counts["copied"] > (3 * after if sync else 0)):
                over.append((command[0], command[-1], size, counts["read"], counts["copied"]))

        assert [] == over


def test_a_long_journal_with_its_checkpoint_is_read_once(project: Path) -> None:
    """With a fold checkpoint beside a long journal (30,000 events), `status` reads the
    bytes it covers once (to check them) and the rest once; a writer that ends saves the
    next checkpoint from the SHA-256 it kept, without reading the journal again."""
    journal = project / "runtime_state" / "bench.jsonl"
    journal.parent.mkdir(parents=True)
    subprocess.run([sys.executable, str(REPO / "tests" / "bench" / "journal_gen.py"),
                    str(journal), "--jobs", "300", "--events", "30000"], check=True,
                   capture_output=True)
    state = ["--state", str(journal)]
    shown = subprocess.run([sys.executable, "-m", "journalq", "status", *state, "--json"],
                           capture_output=True, text=True, check=True, cwd=project)
    done = next(job["id"] for job in json.loads(shown.stdout)["jobs"]
                if job["status"] == "done")
    # A writer that changes nothing still leaves the checkpoint for the next one.
    for command in (["recover", *state], ["retry", *state, done], ["status", *state],
                    ["cancel", *state, done]):
        size, read = bytes_read(project, journal, *command)

        assert read <= size + HEAD_SAMPLES, (command, size, read)
    assert (journal.parent / "bench.jsonl.fold").exists()
