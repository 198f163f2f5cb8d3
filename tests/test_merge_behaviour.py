"""Merging a long copy from the sync folder (issue 10.3): a new runtime's first merge appends
the copy's events in a few large writes with one fsync each, not one per event (100,000
fsyncs took 71 s), and Ctrl-C stays responsive while it runs: a second one ends the
process within a second, exit 130, leaving a journal that every reader still reads.

The copies are written by tests/bench/journal_gen.py (the journal a real sweep leaves, with
its config); the merge is a real `journalq` process. Writes and fsyncs are counted through
the file-system seam (tests/readcount.py wraps `journalq.fs.REAL`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, journalq

GENERATOR = REPO / "tests" / "bench" / "journal_gen.py"
READCOUNT = REPO / "tests" / "readcount.py"
CHUNK = 1 << 20  # what the merge may append at once (Writer.append_foreign)


def copy_in_folder(work: Path, events: int, jobs: int) -> tuple[Path, Path]:
    """A sync folder `work/sd` holding one session's copy of `events` events, and the
    config of its queue; returns (the copy, the config)."""
    source, config = work / "source.jsonl", work / "bench.yaml"
    subprocess.run([sys.executable, str(GENERATOR), str(source), "--jobs", str(jobs),
                    "--events", str(events), "--config", str(config)], check=True,
                   capture_output=True, timeout=120)
    last = json.loads(source.read_bytes().rsplit(b"\n", 2)[-2])
    (work / "sd").mkdir()
    copy = work / "sd" / f"bench.{last['session']}.jsonl"
    source.rename(copy)
    return copy, config


def assert_whole(journal: Path, cwd: Path) -> int:
    """The journal holds only complete lines, each a JSON object, and `journalq status`
    reads it; returns how many lines."""
    data = journal.read_bytes()
    assert data.endswith(b"\n"), data[-200:]
    lines = data.split(b"\n")[:-1]
    for number, line in enumerate(lines, start=1):
        assert isinstance(json.loads(line), dict), (number, line[:200])
    shown = journalq("status", "--state", str(journal), cwd=cwd)
    assert 0 == shown.returncode, shown.stderr
    return len(lines)


def test_a_long_copy_is_merged_in_a_few_large_appends(tmp_path: Path) -> None:
    """`sync` of a 20,000-event copy (3.6 MB) into an empty journal: every event arrives,
    in at most one write and one fsync per MiB of the copy, plus a few for the session's
    own events (a merge of one fsync per event would make 20,000)."""
    copy, config = copy_in_folder(tmp_path, events=20_000, jobs=200)
    journal, log = tmp_path / "j.jsonl", tmp_path / "counts.json"
    done = subprocess.run([sys.executable, str(READCOUNT), "--log", str(log), "--", "sync",
                           "--config", str(config), "--state", str(journal), "--sync-dir",
                           str(tmp_path / "sd")], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert 0 == done.returncode, done.stderr
    counts = json.loads(log.read_text())

    assert "merged 20000 event(s)" in done.stderr
    assert assert_whole(journal, tmp_path) >= 20_000
    bound = -(-copy.stat().st_size // CHUNK) + 4  # chunks, plus the session's own events
    assert counts["writes"][str(journal)] <= bound, counts
    assert counts["fsyncs"][str(journal)] <= bound, counts


@pytest.mark.slow
@pytest.mark.parametrize("command", [["sync"], ["run", "--quiet"]], ids=["sync", "run"])
def test_a_second_ctrl_c_during_a_merge_ends_it_at_once(tmp_path: Path,
                                                        command: list[str]) -> None:
    """A new runtime merging a 100,000-event copy (18 MB): SIGINT while the journal is
    being appended to, again 0.1 s later if the process still runs; it ends within 1 s of
    the second, exit 130, and the journal is whole (a partial merge is fine: the next one
    completes it). The merge takes about a second here; the SIGINT is sent when the
    journal has grown past its first MiB but is short of the copy by more than one, so it
    lands inside the merge's appends (retried if the merge outran the poll)."""
    copy, config = copy_in_folder(tmp_path, events=100_000, jobs=1_000)
    full = copy.stat().st_size
    for attempt in range(5):
        work = tmp_path / f"try-{attempt}"
        work.mkdir()
        journal = work / "j.jsonl"
        merging = subprocess.Popen(
            [sys.executable, "-m", "journalq", *command, "--config", str(config), "--state",
             str(journal), "--sync-dir", str(tmp_path / "sd")], cwd=work,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        landed = None
        while merging.poll() is None:
            size = journal.stat().st_size if journal.exists() else 0
            if CHUNK <= size <= full - CHUNK:
                merging.send_signal(signal.SIGINT)
                landed = size
                break
            time.sleep(0.001)
        if landed is None:  # the merge outran the poll: try again
            merging.wait(timeout=60)
            continue
        time.sleep(0.1)
        last = time.monotonic()
        if merging.poll() is None:
            merging.send_signal(signal.SIGINT)
            last = time.monotonic()
        try:
            merging.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            merging.kill()
            merging.wait()
            raise AssertionError(f"still running 1 s after the second SIGINT (the first "
                                 f"came with {landed:,} of {full:,} bytes merged)") from None
        ended = time.monotonic() - last
        err = merging.stderr.read().decode() if merging.stderr else ""

        assert 130 == merging.returncode, err
        assert ended <= 1.0
        assert "Traceback" not in err, err
        assert_whole(journal, work)
        return
    raise AssertionError("the merge ended each time before a SIGINT could land in it")


def _reading(pid: int, path: Path) -> bool:
    """Whether process `pid` has `path` open (it is reading the copy: the merge's start)."""
    try:
        return any(Path(f"/proc/{pid}/fd/{fd}").resolve() == path.resolve()
                   for fd in os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="needs /proc")
@pytest.mark.parametrize("command", [["sync"], ["run", "--quiet"]], ids=["sync", "run"])
def test_one_ctrl_c_while_a_copy_is_read_ends_the_merge_at_once(tmp_path: Path,
                                                                 command: list[str]) -> None:
    """`run` on a new runtime starts by merging the folder's copies: a Ctrl-C then (no job
    has started) ends it at once, exit 130, as it ends `sync`. It used to be a flag the run
    loop would look at only once the merge was done (a second for 100,000 events, many for
    a million). 300,000 events: a merge of about three seconds, so waiting for its end
    fails the test."""
    copy, config = copy_in_folder(tmp_path, events=300_000, jobs=1_000)
    journal = tmp_path / "j.jsonl"
    merging = subprocess.Popen(
        [sys.executable, "-m", "journalq", *command, "--config", str(config), "--state",
         str(journal), "--sync-dir", str(tmp_path / "sd")], cwd=tmp_path,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    while merging.poll() is None and not _reading(merging.pid, copy):
        time.sleep(0.001)
    assert merging.poll() is None, "the merge ended before it could be interrupted"
    merging.send_signal(signal.SIGINT)
    sent = time.monotonic()
    try:
        merging.wait(timeout=1.0)
    except subprocess.TimeoutExpired:
        merging.kill()
        merging.wait()
        raise AssertionError("still merging 1 s after Ctrl-C") from None
    err = merging.stderr.read().decode() if merging.stderr else ""

    assert 130 == merging.returncode, err
    assert time.monotonic() - sent <= 1.0
    assert "Traceback" not in err, err
    if journal.exists() and journal.stat().st_size:
        assert_whole(journal, tmp_path)
