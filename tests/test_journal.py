"""The journal on real files: torn and garbage tails, corruption, one writer per journal
(a real second process), short writes, full disks, failed fsyncs, newer formats, clocks
that run behind, and merged files whose lines are out of order."""

from __future__ import annotations

import errno
import itertools
import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_fold import (
    BASE,
    CREATED,
    added,
    beat,
    finished,
    histories,
    started,
)

from journalq import checkpoint, codec, fold, journal, lock, reader
from journalq import events as ev
from journalq.codec import UnknownEvent
from journalq.errors import BusyError, JournalError
from journalq.fs import REAL, FileSystem, RealFileSystem
from journalq.journal import Writer
from journalq.state import Queue
from journalq.timestamps import format_ts, parse_ts_micros

SESSION = "5e5510000001"


def ticking(start: int = BASE, step: int = 1000) -> Callable[[], int]:
    """A clock that moves `step` microseconds forward each time it is read."""
    counter = itertools.count(start, step)
    return lambda: next(counter)


def open_writer(path: Path, *, session: str = SESSION, fs: FileSystem = REAL,
                clock: Callable[[], int] | None = None) -> Writer:
    return Writer.open(str(path), session=session, command="test", fs=fs,
                       replay=checkpoint.replay,
                       clock=clock or ticking())


def write_journal(path: Path, *events: ev.Event) -> list[ev.Event]:
    """Append `events` with a Writer; returns them as stamped."""
    with open_writer(path) as writer:
        return [writer.append(event) for event in events]


def small_journal(path: Path) -> list[ev.Event]:
    """A queue of two jobs, one of which ran (with heartbeats) and finished."""
    return write_journal(path, CREATED, added("a", 2), added("b"), started("a", 1, 2),
                         beat("a", 1), beat("a", 1), finished("a", 1))


def replay(path: Path) -> tuple[Queue, reader.ReadReport]:
    folder, report = checkpoint.replay_anew(str(path))
    return folder.queue(), report


def line_of(event: ev.Event) -> bytes:
    """The journal line of any event, including one of a type this journalq does not know."""
    if isinstance(event, UnknownEvent):
        envelope = {"type": event.type, "v": event.v, "id": event.id, "ts": event.ts,
                    "session": event.session}
        return json.dumps(envelope).encode() + b"\n"
    return codec.encode(event)


TORN_NAME = re.compile(r"q\.jsonl\.torn-\d{8}T\d{6}\.\d{6}Z")


# ---- torn and garbage tails ------------------------------------------------------------------

def test_torn_last_line_at_every_offset_is_dropped_then_moved_aside(tmp_path: Path) -> None:
    """Cut the last line at any byte: reading drops it with a warning; the next writer
    copies it to `<journal>.torn-<time>`, cuts it off, and appends a clean line after the
    last whole one, so the journal replays to the earlier state plus the new event."""
    events = small_journal(tmp_path / "whole.jsonl")
    last = codec.encode(events[-1])
    prefix = (tmp_path / "whole.jsonl").read_bytes()[: -len(last)]
    before = fold.replay(events[:-1])

    for cut in range(1, len(last)):
        folder = tmp_path / f"cut-{cut}"
        folder.mkdir()
        path = folder / "q.jsonl"
        path.write_bytes(prefix + last[:cut])

        queue, report = replay(path)
        assert (len(prefix), cut, before) == (report.good_size, report.tail_size, queue)
        warning = reader.tail_warning(report)
        assert warning is not None and f"ignoring {cut} bytes" in warning

        with open_writer(path, session="7e57000000" + f"{cut:02x}"[-2:]) as writer:
            assert prefix == path.read_bytes()
            new = writer.append(ev.JobCancelled(job="b"))
            aside = writer.tail_moved_to
        assert aside is not None and TORN_NAME.fullmatch(Path(aside).name)
        assert last[:cut] == Path(aside).read_bytes()
        assert prefix + codec.encode(new) == path.read_bytes()
        queue, report = replay(path)
        assert (fold.replay([*events[:-1], new]), 0) == (queue, report.tail_size)


@pytest.mark.parametrize("tail", [
    b"\0" * 4096,
    b'{"type":"job_cancelled","v":1,"id":"' + b"\0" * 200,
    b"garbage",
], ids=["nul-block", "nul-filled-partial-line", "garbage"])
def test_nul_or_garbage_tail_is_dropped_then_cut_off(tmp_path: Path, tail: bytes) -> None:
    """NUL bytes (what a power loss can leave where a line was being written) or any
    garbage after the last newline are ignored on read and cut off before the next append;
    the cut bytes are kept beside the journal."""
    path = tmp_path / "q.jsonl"
    events = small_journal(path)
    whole = path.read_bytes()
    path.write_bytes(whole + tail)

    queue, report = replay(path)
    assert (fold.replay(events), len(whole), len(tail)) == (
        queue, report.good_size, report.tail_size)

    with open_writer(path, session="7e5700000002") as writer:
        new = writer.append(ev.JobCancelled(job="b"))
    assert whole + codec.encode(new) == path.read_bytes()
    [aside] = tmp_path.glob("q.jsonl.torn-*")
    assert tail == aside.read_bytes()


@pytest.mark.parametrize("tail", [
    b"\0" * 100 + b"\n",
    b"\0" * 300 + b"\n" + b"\0" * 300,
    b"garbage\n" + b'{"type": "job_canc',
    b"\n",
], ids=["nul-line", "nul-lines", "garbage-then-torn", "empty-line"])
def test_a_complete_bad_line_at_the_end_is_corruption(tmp_path: Path, tail: bytes) -> None:
    """A torn tail is only what follows the last newline: a complete line that is no event
    is corruption even at the end, refused (file:line, byte) by readers and writers, the
    journal left as it was."""
    path = tmp_path / "q.jsonl"
    events = small_journal(path)
    whole = path.read_bytes()
    path.write_bytes(whole + tail)

    with pytest.raises(JournalError) as read_error:
        checkpoint.replay_anew(str(path))
    with pytest.raises(JournalError) as write_error:
        open_writer(path)

    where = f"{path}:{len(events) + 1} (byte {len(whole)}): corrupt line ("
    assert read_error.value.message.startswith(where)
    assert read_error.value.message == write_error.value.message
    assert whole + tail == path.read_bytes()
    assert [] == list(tmp_path.glob("*.torn-*"))


def test_a_journal_that_is_only_a_torn_line_starts_over_empty(tmp_path: Path) -> None:
    """A crash during the very first append leaves a torn first line; it is moved aside."""
    path = tmp_path / "q.jsonl"
    path.write_bytes(b'{"type":"queue_created","v":1,"id":"x:1"')

    queue, report = replay(path)
    assert (Queue(), 0) == (queue, report.good_size)
    with open_writer(path) as writer:
        first = writer.append(CREATED)
    assert codec.encode(first) == path.read_bytes()


# ---- corruption in the middle ----------------------------------------------------------------

@pytest.mark.parametrize("bad", [
    b"{not json",
    b"\0" * 40,
    b"",
    b'{"type":"job_added","v":1,"id":"x:1","ts":"2026-01-01T00:00:00.000000Z","session":"x"}',
    b'{"type":"job_cancelled","v":1,"id":"x:1","ts":"yesterday","session":"x","job":"a"}',
    b"[1, 2, 3]",
    b"\xff\xfe garbage",
], ids=["not-json", "nul", "blank", "missing-fields", "bad-ts", "not-an-object", "bytes"])
def test_corrupt_middle_line_is_refused_naming_line_and_byte(tmp_path: Path,
                                                              bad: bytes) -> None:
    """A bad line followed by valid lines is refused by readers and writers alike, naming
    the file, its line number and byte offset; the file is left byte for byte as it was."""
    path = tmp_path / "q.jsonl"
    small_journal(path)
    lines = path.read_bytes().splitlines(keepends=True)
    lines[2] = bad + b"\n"
    data = b"".join(lines)
    path.write_bytes(data)
    offset = len(lines[0]) + len(lines[1])

    with pytest.raises(JournalError) as read_error:
        checkpoint.replay_anew(str(path))
    for _ in range(2):  # the second try shows the first released the lock
        with pytest.raises(JournalError) as write_error:
            open_writer(path)
        assert read_error.value.message == write_error.value.message

    message = read_error.value.message
    assert message.startswith(f"{path}:3 (byte {offset}): corrupt line (")
    assert "followed by valid lines; nothing was written" in message
    assert "\n" not in message
    assert data == path.read_bytes()
    assert [] == list(tmp_path.glob("*.torn-*"))


def test_corrupt_line_number_counts_every_line(tmp_path: Path) -> None:
    """The line number is the 1-based line in the file, counting from the very first."""
    path = tmp_path / "q.jsonl"
    small_journal(path)
    lines = path.read_bytes().splitlines(keepends=True)
    lines[-2] = b"oops\n"
    path.write_bytes(b"".join(lines))

    with pytest.raises(JournalError, match=rf"^{re.escape(str(path))}:{len(lines) - 1} "):
        checkpoint.replay_anew(str(path))


# ---- one writer per journal --------------------------------------------------------------------

HOLDER = """
import sys
from journalq.journal import Writer
from journalq import checkpoint
writer = Writer.open(sys.argv[1], session="401de4000000", command="hold", replay=checkpoint.replay)
print("holding", flush=True)
sys.stdin.read()
"""


@contextmanager
def held_elsewhere(path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holds the journal's writer lock until the block ends."""
    child = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stderr is not None
        assert "holding\n" == child.stdout.readline(), child.stderr.read()
        yield child
    finally:
        if child.poll() is None:
            child.kill()
        child.communicate(timeout=30)


def test_second_writer_in_another_process_is_refused(tmp_path: Path) -> None:
    """While another process writes, Writer.open refuses with who holds it: pid and host."""
    path = tmp_path / "q.jsonl"
    small_journal(path)

    with held_elsewhere(path) as holder, pytest.raises(BusyError) as caught:
        open_writer(path)

    message = caught.value.message
    assert message.startswith(f"{path} is in use by pid {holder.pid} on "
                              f"{socket.gethostname()} since ")
    assert "(journalq hold)" in message
    assert "\n" not in message


def test_writer_here_refuses_a_cli_writer_in_another_process(tmp_path: Path) -> None:
    """The other way round: `journalq init` in a second process exits 5 naming our pid."""
    (tmp_path / "q.yaml").write_text("queue: q\njobs:\n  - {id: a, command: [x]}\n")
    path = tmp_path / "q.jsonl"

    with open_writer(path) as writer:
        writer.append(CREATED)
        done = subprocess.run([sys.executable, "-m", "journalq", "init", "--config", "q.yaml",
                               "--state", "q.jsonl"], cwd=tmp_path, capture_output=True,
                              text=True, timeout=60)
        size = path.stat().st_size

    assert 5 == done.returncode
    assert done.stderr.startswith(f"journalq: error: q.jsonl is in use by pid {os.getpid()} on "
                                  f"{socket.gethostname()} since ")
    assert 1 == done.stderr.count("\n")
    assert size == path.stat().st_size


def test_lock_is_released_when_the_holder_is_killed(tmp_path: Path) -> None:
    """SIGKILL the writing process: the kernel drops its lock and the next writer proceeds."""
    path = tmp_path / "q.jsonl"
    events = small_journal(path)

    with held_elsewhere(path) as holder:
        assert lock.writer_active(str(path))
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=30)
        assert not lock.writer_active(str(path))
        with open_writer(path, session="a5e500000001") as writer:
            new = writer.append(ev.JobCancelled(job="b"))

    assert fold.replay([*events, new]) == replay(path)[0]


def test_a_closed_writer_lets_the_next_one_in(tmp_path: Path) -> None:
    """Closing a writer releases the lock at once, in the same process too."""
    path = tmp_path / "q.jsonl"
    small_journal(path)

    with open_writer(path), pytest.raises(BusyError):
        open_writer(path, session="5e5510000002")
    with open_writer(path, session="5e5510000003"):
        pass


# ---- failed writes -----------------------------------------------------------------------------

FSIZE_CHILD = """
import json, os, resource, sys
from journalq import events as ev
from journalq.errors import JournalError
from journalq.journal import Writer
from journalq import checkpoint

path, room = sys.argv[1], int(sys.argv[2])
writer = Writer.open(path, session="f512e0000000", command="test", replay=checkpoint.replay)
hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
resource.setrlimit(resource.RLIMIT_FSIZE, (os.path.getsize(path) + room, hard))
results = []
for job in ("x" * 3000, "b"):
    try:
        writer.append(ev.JobCancelled(job=job))
        results.append("ok")
    except JournalError as exc:
        results.append(exc.message)
print(json.dumps(results))
"""


@pytest.mark.parametrize(("room", "problem"), [
    (0, "File too large"),
    (400, "only 400 of "),
], ids=["no-room", "short-write"])
def test_append_past_the_file_size_limit_leaves_only_whole_lines(
        tmp_path: Path, room: int, problem: str) -> None:
    """An append cut short by RLIMIT_FSIZE (in a child process) fails with JournalError and
    leaves the journal at its last whole line; a later append that fits is clean."""
    path = tmp_path / "q.jsonl"
    events = small_journal(path)
    before = path.read_bytes()

    done = subprocess.run([sys.executable, "-c", FSIZE_CHILD, str(path), str(room)],
                          capture_output=True, text=True, timeout=60)

    assert 0 == done.returncode, done.stderr
    failure, second = json.loads(done.stdout)
    assert failure.startswith(f"cannot append to {path}: {problem}")
    assert "the partial line was removed" in failure
    after = path.read_bytes()
    assert after.startswith(before)
    queue, report = replay(path)
    assert 0 == report.tail_size
    if room:
        [line] = after[len(before):].splitlines(keepends=True)
        assert ("ok", "job_cancelled") == (second, json.loads(line)["type"])
        assert "cancelled" == queue.jobs["b"].status.value
    else:
        assert (before, fold.replay(events)) == (after, queue)


class FullDisk(RealFileSystem):
    """The real file system, until `full`: then a write takes half its bytes and fails with
    ENOSPC (or, `short`, returns the short count), as a full disk may."""

    def __init__(self, short: bool = False) -> None:
        self.full = False
        self.short = short

    def write(self, fd: int, data: bytes) -> int:
        if not self.full:
            return super().write(fd, data)
        taken = super().write(fd, data[: len(data) // 2])
        if self.short:
            return taken
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("short", [False, True], ids=["enospc", "short-count"])
def test_full_disk_fails_the_append_and_removes_the_partial_line(tmp_path: Path,
                                                                short: bool) -> None:
    """A write that fails half way (ENOSPC, or a short count) is cut back to the last whole
    line and reported; once there is space again the same writer appends cleanly."""
    path = tmp_path / "q.jsonl"
    events = small_journal(path)
    before = path.read_bytes()
    disk = FullDisk(short)

    with open_writer(path, session="d15c00000001", fs=disk) as writer:
        disk.full = True
        with pytest.raises(JournalError) as caught:
            writer.append(ev.JobCancelled(job="b"))
        assert before == path.read_bytes()
        disk.full = False
        new = writer.append(ev.JobRetried(job="a"))
        assert fold.replay([*events, new]) == writer.fold.queue()

    reason = "only" if short else "No space left on device"
    assert caught.value.message.startswith(f"cannot append to {path}: {reason}")
    assert "the partial line was removed. Free space, then rerun" in caught.value.message
    assert before + codec.encode(new) == path.read_bytes()
    assert fold.replay([*events, new]) == replay(path)[0]


class BadDisk(FullDisk):
    """A full disk that also cannot truncate: the partial line stays."""

    def truncate(self, fd: int, size: int) -> None:
        if self.full:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        super().truncate(fd, size)


def test_partial_line_that_cannot_be_removed_stops_the_writer(tmp_path: Path) -> None:
    """If the partial line cannot be cut off, the error says so (never that it was removed)
    and the writer refuses to append after it."""
    path = tmp_path / "q.jsonl"
    small_journal(path)
    disk = BadDisk()

    with open_writer(path, session="d15c00000002", fs=disk) as writer:
        disk.full = True
        with pytest.raises(JournalError) as first:
            writer.append(ev.JobCancelled(job="b"))
        disk.full = False
        with pytest.raises(JournalError) as later:
            writer.append(ev.JobCancelled(job="b"))

    assert "could not remove a partial line" in first.value.message
    assert "was removed" not in first.value.message
    assert first.value.message == later.value.message


class FailingFsync(RealFileSystem):
    """The real file system, but fsync fails with EIO while `failing`."""

    def __init__(self) -> None:
        self.failing = False

    def fsync(self, fd: int) -> None:
        if self.failing:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        super().fsync(fd)


def test_failed_fsync_is_fatal_for_the_writer(tmp_path: Path) -> None:
    """After one failed fsync the writer refuses every later append in this process, even
    once fsync works again, and says why; it never retries the fsync."""
    path = tmp_path / "q.jsonl"
    small_journal(path)
    disk = FailingFsync()

    with open_writer(path, session="f5c000000001", fs=disk) as writer:
        disk.failing = True
        with pytest.raises(JournalError) as first:
            writer.append(ev.JobCancelled(job="b"))
        size = path.stat().st_size
        disk.failing = False
        for event in (ev.JobRetried(job="a"), ev.JobCancelled(job="b")):
            with pytest.raises(JournalError) as later:
                writer.append(event)
            assert first.value.message == later.value.message
        with pytest.raises(JournalError):
            writer.append_line(b"{}\n")

    assert (f"fsync of {path} failed (EIO: Input/output error); the last event may not be on "
            "disk and journalq will not write again in this process. Check the disk (dmesg), "
            "then run `journalq status`") == first.value.message
    assert size == path.stat().st_size


class Recording(RealFileSystem):
    """The real file system, noting the calls that make data durable."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def open_append(self, path: str) -> int:
        self.calls.append("open_append")
        return super().open_append(path)

    def write(self, fd: int, data: bytes) -> int:
        self.calls.append("write")
        return super().write(fd, data)

    def fsync(self, fd: int) -> None:
        self.calls.append("fsync")
        super().fsync(fd)

    def fsync_dir(self, path: str) -> None:
        self.calls.append("fsync_dir")
        super().fsync_dir(path)


def test_each_append_is_one_write_then_fsync_and_creation_syncs_the_folder(
        tmp_path: Path) -> None:
    """A new journal is created at its first append (opening writes nothing), and its
    folder is fsync'd after the file is created; each event is one write of a whole line
    followed by one fsync."""
    disk = Recording()
    path = tmp_path / "new" / "q.jsonl"

    with open_writer(path, fs=disk) as writer:
        opened = list(disk.calls)
        disk.calls.clear()
        writer.append(CREATED)
        writer.append(added("a"))

    assert [] == opened
    assert not path.exists() or path.stat().st_size
    assert ["open_append", "fsync_dir", "write", "fsync", "write", "fsync"] == disk.calls


# ---- formats: newer journalq, unknown fields ---------------------------------------------------

def test_unknown_event_type_makes_the_journal_read_only(tmp_path: Path) -> None:
    """An event type this journalq does not know (or a newer `v`): replay skips and lists
    it, but writers refuse, saying a newer journalq wrote the journal."""
    path = tmp_path / "q.jsonl"
    events = small_journal(path)
    newer_v = {**json.loads(codec.encode(events[2])), "v": 2, "id": "ffff00000000:2",
               "session": "ffff00000000"}
    paused = {"type": "job_paused", "v": 1, "id": "ffff00000000:1", "ts": events[-1].ts,
              "session": "ffff00000000", "job": "a", "until": "tomorrow"}
    with path.open("ab") as handle:
        handle.write(json.dumps(paused).encode() + b"\n" + json.dumps(newer_v).encode() + b"\n")
    data = path.read_bytes()

    queue, report = replay(path)
    with pytest.raises(JournalError) as caught:
        open_writer(path)

    assert frozenset({"job_paused (format v1)", "job_added (format v2)"}) == queue.unknown_types
    assert fold.replay(events).jobs == queue.jobs
    assert ("job_added (format v2)", "job_paused (format v1)") == report.newer_types
    assert (f"{path} holds events this journalq does not know (job_added (format v2), "
            "job_paused (format v1)): a newer journalq wrote it. Upgrade journalq to write to "
            "it; `journalq status` still reads it") == caught.value.message
    assert data == path.read_bytes()


def test_unknown_fields_are_ignored(tmp_path: Path) -> None:
    """Extra fields on known events (a newer journalq's additions) change nothing, and the
    journal stays writable."""
    path = tmp_path / "q.jsonl"
    events = small_journal(path)
    lines = [json.loads(line) for line in path.read_bytes().splitlines()]
    richer = [{**line, "priority": 3, "labels": {"gpu": "a100"}} for line in lines]
    path.write_bytes(b"".join(json.dumps(line).encode() + b"\n" for line in richer))

    assert fold.replay(events) == replay(path)[0]
    with open_writer(path, session="5e5510000004") as writer:
        writer.append(ev.JobCancelled(job="b"))


@given(events=histories())
@settings(max_examples=60, deadline=None)
def test_every_event_survives_a_round_trip_through_a_line(events: list[ev.Event]) -> None:
    """encode then decode gives back the same event, with `type` and `v` first."""
    for event in events:
        if isinstance(event, UnknownEvent):
            continue
        line = codec.encode(event)
        obj = json.loads(line)
        assert ["type", "v", "id", "ts", "session"] == list(obj)[:5]
        assert event == codec.decode(obj)


# ---- time --------------------------------------------------------------------------------------

def test_timestamps_never_go_below_any_seen(tmp_path: Path) -> None:
    """A writer whose clock is behind the journal (another host, a reset clock) still
    stamps strictly increasing times above the newest it read."""
    path = tmp_path / "q.jsonl"
    future = BASE + 10 * 365 * 86_400_000_000
    with open_writer(path, session="f00000000001", clock=ticking(future)) as writer:
        old = [writer.append(event) for event in (CREATED, added("a"), added("b"))]

    with open_writer(path, session="ba0000000001", clock=lambda: 1_000_000) as writer:
        new = [writer.append(event) for event in (started("a", 1), beat("a", 1),
                                                  finished("a", 1))]

    stamps = [parse_ts_micros(event.ts) for event in (*old, *new)]
    assert sorted(set(stamps)) == stamps
    assert [stamps[2] + 1, stamps[2] + 2, stamps[2] + 3] == stamps[3:]
    assert ["ba0000000001:1", "ba0000000001:2", "ba0000000001:3"] == [e.id for e in new]
    queue, report = replay(path)
    assert (True, fold.replay([*old, *new])) == (report.ordered, queue)


def test_timestamps_are_fixed_width_utc_with_microseconds() -> None:
    """`ts` is RFC 3339 UTC with six fraction digits, so text order is time order."""
    assert "2026-01-01T00:00:00.000007Z" == format_ts(BASE + 7)
    assert BASE + 7 == parse_ts_micros(format_ts(BASE + 7))


# ---- merged files out of order -----------------------------------------------------------------

def two_sessions() -> tuple[list[ev.Event], list[ev.Event]]:
    """What two runners sharing a queue through a sync folder wrote at the same time: `a`
    ran on one, `b` on the other."""
    first = [CREATED, added("a"), added("b"), started("a", 1), beat("a", 1), finished("a", 1)]
    second = [started("b", 1), beat("b", 1), beat("b", 1), finished("b", 1, 2)]
    ours = [attrs.evolve(event, id=f"aaaa00000000:{n}", session="aaaa00000000",
                         ts=format_ts(BASE + 10 * n)) for n, event in enumerate(first, 1)]
    theirs = [attrs.evolve(event, id=f"bbbb00000000:{n}", session="bbbb00000000",
                           ts=format_ts(BASE + 35 + 10 * n)) for n, event in enumerate(second, 1)]
    return ours, theirs


def test_merged_file_out_of_order_replays_like_sorted(tmp_path: Path) -> None:
    """Lines of two sessions appended one session after the other (out of ts order) fold
    to the same queue as the sorted events, and a writer then stamps above the newest."""
    ours, theirs = two_sessions()
    merged = tmp_path / "q.jsonl"
    merged.write_bytes(b"".join(map(codec.encode, [*ours[:3], *theirs, *ours[3:]])))
    ordered = sorted([*ours, *theirs], key=fold.sort_key)

    queue, report = replay(merged)

    assert (False, len(ordered)) == (report.ordered, report.lines)
    assert fold.replay(ordered) == queue
    assert ("done", "failed") == (queue.jobs["a"].status.value, queue.jobs["b"].status.value)
    with open_writer(merged, session="cccc00000000", clock=lambda: 0) as writer:
        new = writer.append(ev.JobRetried(job="b"))
    assert fold.sort_key(ordered[-1]) < fold.sort_key(new)
    assert fold.replay([*ordered, new]) == replay(merged)[0]


@given(events=histories(), data=st.data())
@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_line_order_replays_like_sorted(tmp_path: Path, events: list[ev.Event],
                                            data: st.DataObject) -> None:
    """A journal file holding the events' lines in any order (a merge of ordered runs, or
    worse), torn tail or not, replays by a k-way merge of its ordered runs to the sorted
    events' queue."""
    lines = data.draw(st.permutations(events))
    tail = data.draw(st.sampled_from([b"", b"\0" * 64, b'{"type":"job_star']))
    path = tmp_path / "merged.jsonl"
    path.write_bytes(b"".join(map(line_of, lines)) + tail)

    queue, report = replay(path)

    assert fold.replay(events) == queue
    assert (list(lines) == events, len(events), len(tail)) == (
        report.ordered, report.lines, report.tail_size)


@pytest.mark.parametrize("version", [b"1.0", b"true"])
def test_a_heartbeat_with_a_non_integer_version_is_a_bad_line_on_every_path(
        tmp_path: Path, version: bytes) -> None:
    """Reading that folds heartbeats from their fields (status, writers) and reading that
    decodes every line (sync, repair) agree: `"v": 1.0` is not version 1, so a heartbeat
    spelled so, followed by valid lines, is corruption for both."""
    path = tmp_path / "q.jsonl"
    events = small_journal(path)
    beat = line_of(ev.Heartbeat(job="a", attempt=1, id=f"{SESSION}:90",
                                ts=events[-1].ts, session=SESSION))
    data = path.read_bytes()
    path.write_bytes(data + beat.replace(b'"v":1,', b'"v":' + version + b",") +
                     line_of(attrs.evolve(events[-1], id=f"{SESSION}:91")))

    with pytest.raises(journal.JournalError, match=r"q\.jsonl:\d+ \(byte \d+\): corrupt"):
        checkpoint.replay_anew(str(path))
    assert isinstance(reader.decode_line(beat.replace(b'"v":1,', b'"v":' + version + b",")
                                          .rstrip(b"\n")), str)
