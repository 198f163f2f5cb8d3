"""Crash a scripted session after every single file operation, as a process crash (the
files as they are) and as a power loss (only what was fsync'd survives), then recover with
the real code: nothing acknowledged is lost, no partial line is folded, a torn tail is moved
aside before the next append, no finished job runs again, and the fold does not depend on
the order of the lines.

The session runs in this process through the real Writer, Session, run cards and sync
Mirror, with `tests/faultfs.FaultyFs` underneath (its docstring states the crash and
power-loss model). test_journal.py proves each failure alone (a torn tail cut at every
byte, a failed fsync, a short write); this proves them at every point of a whole session.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import attrs
import pytest
import reliability
from faultfs import FATES, Crash, FaultyFs
from test_fold import BASE
from test_journal import ticking

from journalq import checkpoint, codec, fold, host, policy
from journalq import events as ev
from journalq.card import read_card, write_card
from journalq.copyreader import CopyReader
from journalq.fs import REAL, FileSystem
from journalq.journal import Writer
from journalq.reader import Reader
from journalq.session import Session
from journalq.state import JobSpec, Status
from journalq.sync import Mirror

# Long crash, fault and multi-runtime scenarios: `pytest -m "not slow"` skips them.
pytestmark = pytest.mark.slow

SEED = 5
SESSION = "c7a5c0000001"
JOURNAL = "state/q.jsonl"
DRIVE = "drive"
JOBS = ("a", "b", "c")
IMAGES_PER_POINT = 3  # power-loss images per crash point, each with its own RNG draw


def spec(job: str) -> JobSpec:
    """A job with a spare attempt: abandoning its first leaves it pending, not failed."""
    return JobSpec.build(argv=("python", "-c", "pass"), shell=False, cwd=".", env={},
                         out_dir=f"out/{job}", max_attempts=2, timeout=None)


@attrs.define
class Progress:
    """What the session had been told was durable when it died."""

    acked: int = 0  # events whose append returned (so their fsync returned)
    carded: set[str] = attrs.Factory(set)  # jobs whose run card write returned
    finished: set[str] = attrs.Factory(set)  # jobs whose job_finished append returned


def ticking_seconds() -> Callable[[], float]:
    """A monotonic clock that moves 10 s at every reading: every push is due."""
    readings = itertools.count(0.0, 10.0)
    return lambda: next(readings)


def scripted_session(fs: FileSystem, progress: Progress) -> None:
    """`run` in miniature: a new journal (session, queue, three jobs), then each job's
    start, heartbeat, run card and finish, and a copy to the sync folder after each job
    and at the end."""
    writer = Writer.open(JOURNAL, session=SESSION, command="run", fs=fs, clock=ticking(),
                         replay=checkpoint.replay)
    try:
        session = Session(writer, "run")
        session.mirror = Mirror(DRIVE, "q", SESSION, 3600, warn=_no_warning, fs=fs,
                                clock=ticking_seconds())
        session.mirror.create_folder()
        session.merge()

        def append(event: ev.Event) -> None:
            session.append(event)
            progress.acked += 1

        session.announce()
        progress.acked += 1
        append(ev.QueueCreated(queue="q", config="q.yaml", config_sha256="0" * 64))
        for job in JOBS:
            append(ev.JobAdded(job=job, **policy.spec_fields(spec(job))))
        for job in JOBS:
            append(ev.JobStarted(job=job, attempt=1, host=host.hostname(),
                                 boot_id=host.boot_id(), pid=os.getpid(),
                                 log=f"logs/{job}/attempt-1.log", spec_sha256=spec(job).sha256))
            append(ev.Heartbeat(job=job, attempt=1, child_pid=None))
            fs.makedirs(spec(job).out_dir)
            write_card(spec(job).out_dir, {"job": job, "attempt": 1, "session": SESSION,
                                           "queue": "q", "outcome": "done", "reason": "exit",
                                           "return_code": 0, "duration": 0.5}, fs=fs)
            progress.carded.add(job)
            append(ev.JobFinished(job=job, attempt=1, return_code=0, signal=None,
                                  outcome="done", reason="exit", duration=0.5))
            progress.finished.add(job)
            session.push(boundary=True)
        append(ev.SessionEnded(exit_code=0, reason="completed"))
        session.push(final=True)
    finally:
        writer.close()


def _no_warning(message: str) -> None:
    raise AssertionError(f"unexpected warning: {message}")


def recover(fs: FileSystem = REAL, session_id: str = "2ec0e0000001") -> tuple[str | None, int]:
    """What the next `run --resume` does first, with the real code: open the journal (which
    moves a torn tail aside), settle the attempts the dead session left running by the
    policy (run cards first), and record the session. Returns where the tail went, if there
    was one, and how many events were appended. Every recovery's clock starts at the same
    instant, as a clock that went back would (a saved tail is never overwritten)."""
    writer = Writer.open(JOURNAL, session=session_id, command="recover", fs=fs,
                         replay=checkpoint.replay,
                         clock=ticking(BASE + 10**9))
    appended = 0
    try:
        session = Session(writer, "recover")
        session.announce()
        appended += 1
        queue = session.queue()
        cards = {job.id: card for job in queue.by_status(Status.RUNNING)
                 if (card := read_card(job.spec.out_dir, fs)) is not None and card.job == job.id}
        seen = policy.Observations(now=datetime.now(UTC), boot_id=host.boot_id(),
                                   stale_seconds=7200, cards=cards)
        orphans, alive = policy.classify_running(queue, seen)
        assert [] == alive
        for event in policy.recover(orphans, cards):
            session.append(event)
            appended += 1
        session.append(ev.SessionEnded(exit_code=0, reason="completed"))
        appended += 1
    finally:
        writer.close()
    return writer.tail_moved_to, appended


@attrs.define
class Tally:
    """What the recoveries of one test saw."""

    points: int = 0
    torn: int = 0
    lost: int = 0
    done_rerun: int = 0
    rerun: int = 0
    fates: dict[str, int] = attrs.Factory(lambda: dict.fromkeys(FATES, 0))


def check_recovery(reference: list[ev.Event], progress: Progress, rng: random.Random,
                   tally: Tally, what: str) -> None:
    """Recover the crashed session in the current folder and check every invariant."""
    data = Path(JOURNAL).read_bytes() if Path(JOURNAL).exists() else b""
    journal_reader = Reader(JOURNAL)
    found = list(journal_reader.events()) if data else []
    report = journal_reader.report() if data else None
    good = report.good_size if report else 0

    # Whole lines are exactly the session's first events, in order: nothing invented, and
    # every acknowledged event is there (at most the one in flight is extra).
    assert reference[: len(found)] == found, what
    tally.lost += max(0, progress.acked - len(found))
    assert progress.acked <= len(found) <= progress.acked + 1, what
    assert b"".join(map(codec.encode, found)) == data[:good], what
    tail = data[good:]
    # No partial line is folded: the journal's state is the fold of its whole lines.
    if data:
        assert fold.replay(found) == checkpoint.replay_anew(JOURNAL)[0].queue(), what

    moved_to, appended = recover()

    if tail:
        tally.torn += 1
        assert moved_to is not None, what
        assert tail == Path(moved_to).read_bytes(), what
    else:
        assert moved_to is None, what
    after = Reader(JOURNAL)
    events = list(after.events())
    assert (0, len(found) + appended) == (after.report().tail_size, len(events)), what
    assert found == events[: len(found)], what
    queue = fold.replay(events)

    # No job whose finish or run card was acknowledged runs again; the others are settled
    # by the policy (pending again, or done from a card that happened to get written).
    for job_id in JOBS:
        job = queue.jobs.get(job_id)
        status = job.status if job else None
        if job_id in progress.finished | progress.carded and status is not Status.DONE:
            tally.done_rerun += 1
        assert status in (None, Status.PENDING, Status.DONE), f"{what}: {job_id} {status}"
        if job and job.attempt and status is Status.PENDING:
            tally.rerun += 1
    done = {job.id for job in queue.by_status(Status.DONE)}
    assert progress.finished | progress.carded <= done, what

    # The fold is the same whatever order the lines are in.
    shuffled = list(events)
    rng.shuffle(shuffled)
    assert queue == fold.replay(shuffled), what
    Path("shuffled.jsonl").write_bytes(b"".join(map(codec.encode, shuffled)))
    assert queue == checkpoint.replay_anew("shuffled.jsonl")[0].queue(), what

    # A sync copy is whole and never holds an event the recovered journal lacks.
    for parts in CopyReader(DRIVE, "q", _no_warning).segments().values():
        assert [1] == [segment.part for segment in parts], what  # a small journal: one part
        copy_reader = Reader(f"{DRIVE}/{parts[0].name}")
        held = list(copy_reader.events())
        assert (0, events[: len(held)]) == (copy_reader.report().tail_size, held), what
    tally.points += 1


def crash_at_every_operation(tmp_path: Path, session: Callable[[FileSystem, Progress], None],
                             tally: Tally) -> int:
    """Run `session` once to count its operations, then once per operation with a crash
    there, recovering each crash as it stands and from power-loss images of it."""
    clean = tmp_path / "clean"
    clean.mkdir()
    with contextlib.chdir(clean):
        fs = FaultyFs(clean)
        session(fs, Progress())
        reference = list(Reader(JOURNAL).events())
    operations = len(fs.ops)
    for point in range(operations):
        folder = tmp_path / f"crash-{point}"
        folder.mkdir()
        progress = Progress()
        with contextlib.chdir(folder):
            fs = FaultyFs(folder)
            fs.crash_after(point)
            with contextlib.suppress(Crash):
                session(fs, progress)
            assert fs.crashed
            images = [fs.power_loss_image(random.Random(f"{SEED}:{point}:{n}"))
                      for n in range(IMAGES_PER_POINT)]
            rng = random.Random(f"{SEED}:{point}")
            check_recovery(reference, progress, rng, tally, f"process crash at {point}")
        for n, image in enumerate(images):
            where = tmp_path / f"power-{point}-{n}"
            image.write_to(where)
            for fate in image.fates.values():
                tally.fates[fate] += 1
            with contextlib.chdir(where):
                check_recovery(reference, progress, rng, tally, f"power loss {n} at {point}")
            shutil.rmtree(where)
        shutil.rmtree(folder)
    return operations


def test_every_crash_point_of_a_session_recovers_without_loss(tmp_path: Path) -> None:
    """After a crash at any file operation of a session, as a process crash or a power
    loss, the real recovery keeps every acknowledged event, folds no partial line, moves a
    torn tail aside before appending, reruns no job whose finish or card was durable, and
    folds the same whatever the order of the lines."""
    tally = Tally()

    operations = crash_at_every_operation(tmp_path, scripted_session, tally)

    assert operations >= 60
    assert (operations * (1 + IMAGES_PER_POINT), 0, 0) == (
        tally.points, tally.lost, tally.done_rerun)
    assert tally.torn > 0 and tally.rerun > 0
    assert all(tally.fates.values()), tally.fates  # every power-loss fate was exercised
    reliability.count(reliability.CRASH_POINTS, tally.points,
                      f"{operations} operations of a session x (process crash + "
                      f"{IMAGES_PER_POINT} power losses)")
    reliability.count(reliability.TORN_TAILS, tally.torn, f"crash matrix {tally.torn}")
    reliability.count(reliability.EVENTS_LOST, tally.lost)
    reliability.count(reliability.DONE_RERUN, tally.done_rerun)


TAILS = {
    "torn-line": b'{"type":"job_finished","v":1,"id":"c7a5c0000001:99","ts":"2026-01-01T00:',
    "nul-bytes": b"\0" * 300,
}


def test_a_crash_while_a_torn_tail_is_moved_aside_loses_neither_events_nor_the_tail(
        tmp_path: Path) -> None:
    """The recovery that moves a torn tail aside can itself crash or lose power at any
    operation: afterwards the whole lines are intact and the tail bytes are still at the
    journal's end or durable in a `.torn-*` file; the next recovery finishes the job."""
    points = 0
    for name, tail in TAILS.items():
        base = tmp_path / f"{name}-base"
        base.mkdir()
        with contextlib.chdir(base):
            scripted_session(REAL, Progress())
            whole = list(Reader(JOURNAL).events())
            with open(JOURNAL, "ab") as handle:
                handle.write(tail)
        counting = tmp_path / f"{name}-count"
        shutil.copytree(base, counting)
        with contextlib.chdir(counting):
            fs = FaultyFs(counting)
            recover(fs)
        for point in range(len(fs.ops)):
            folder = tmp_path / f"{name}-{point}"
            shutil.copytree(base, folder)
            with contextlib.chdir(folder):
                fs = FaultyFs(folder)
                fs.crash_after(point)
                with contextlib.suppress(Crash):
                    recover(fs)
                image = fs.power_loss_image(random.Random(f"{SEED}:{name}:{point}"))
            for where in (folder, tmp_path / f"{name}-{point}-power"):
                if where != folder:
                    image.write_to(where)
                with contextlib.chdir(where):
                    recover()
                    events = list(Reader(JOURNAL).events())
                    assert whole == events[: len(whole)], f"{name} at {point}"
                    # Another tail may be aside too: the crashed recovery's own unsynced
                    # append, torn by the power loss.
                    asides = [p.read_bytes() for p in Path("state").glob("q.jsonl.torn-*")]
                    assert tail in asides, f"{name} at {point}"
                    assert 0 == checkpoint.replay_anew(JOURNAL)[1].tail_size
                points += 1
    assert points >= 2 * len(TAILS) * 10
    reliability.count(reliability.CRASH_POINTS, points,
                      f"{points} while moving a torn tail aside")
    reliability.count(reliability.TORN_TAILS, points, f"tail move-aside {points}")


def test_the_model_loses_what_was_not_made_durable(tmp_path: Path) -> None:
    """The power-loss model itself: a file not yet named in a synced folder vanishes, an
    unsynced rename is undone, and unsynced appended bytes are dropped, zeroed or cut."""
    (tmp_path / "d").mkdir()
    fs = FaultyFs(tmp_path)
    fd = fs.open_append(str(tmp_path / "d" / "log"))
    fs.write(fd, b"synced\n")
    fs.fsync(fd)
    fs.fsync_dir(str(tmp_path / "d"))
    fs.write(fd, b"not yet\n")
    fs.write_file(str(tmp_path / "d" / "new"), b"data")
    fs.write_file(str(tmp_path / "d" / "old"), b"v1")
    fs.fsync_dir(str(tmp_path / "d"))
    fs.write_file(str(tmp_path / "d" / "tmp"), b"v2")
    fs.replace(str(tmp_path / "d" / "tmp"), str(tmp_path / "d" / "old"))
    fs.write_file(str(tmp_path / "d" / "unnamed"), b"gone")
    fs.close(fd)

    seen = {}
    for seed in range(40):
        image = fs.power_loss_image(random.Random(seed))
        assert {"d/log", "d/new", "d/old"} == set(image.files)
        assert (b"data", b"v1") == (image.files["d/new"], image.files["d/old"])
        log = image.files["d/log"]
        seen[image.fates["d/log"]] = log
        assert log.startswith(b"synced\n") and len(log) <= len(b"synced\nnot yet\n")
    assert b"synced\n" == seen["dropped"]
    assert b"synced\n" + b"\0" * 8 == seen["zeros"]
    assert b"synced\nnot yet\n".startswith(seen["prefix"])
    assert ["open_append", "write", "fsync", "fsync_dir", "write", "write_file"] == [
        op.name for op in fs.ops[:6]]
    assert ("d/tmp", "d/old") == (fs.ops[9].path, fs.ops[9].target)
