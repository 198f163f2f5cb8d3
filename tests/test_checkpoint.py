"""The fold checkpoint beside a long journal is a cache: it changes how fast `status` is,
never what it says."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_fold import histories

from conftest import journalq
from journalq import checkpoint, clock, codec, fold, journal, policy
from journalq import events as ev
from journalq.cli import main
from journalq.state import JobSpec
from journalq.timestamps import format_ts

BASE = 1_790_000_000_000_000


def long_journal(path: Path, beats: int) -> None:
    """A journal a runner would leave: two jobs, one done after `beats` heartbeats."""
    spec = JobSpec.build(argv=("python", "x.py"), shell=False, cwd=".", env={},
                         out_dir="out/a", max_attempts=1, timeout=None)
    fields = policy.spec_fields(spec)
    events: list[ev.Event] = [
        ev.SessionStarted(command="run", host="box", boot_id="gone", pid=1, pid_start=1,
                          argv=(), journalq_version="0", python_version="3"),
        ev.QueueCreated(queue="long", config="c.yaml", config_sha256="0"),
        ev.JobAdded(job="a", **fields),
        ev.JobAdded(job="b", **{**fields, "out_dir": "out/b"}),
        ev.JobStarted(job="a", attempt=1, host="box", boot_id="gone", pid=1, log="a.log",
                      spec_sha256=spec.sha256),
        *(ev.Heartbeat(job="a", attempt=1, child_pid=2) for _ in range(beats)),
        ev.JobFinished(job="a", attempt=1, return_code=0, signal=None, outcome="done",
                       reason="exit", duration=1.0),
        ev.SessionEnded(exit_code=0, reason="completed"),
    ]
    lines = [codec.encode(attrs.evolve(event, id=f"s1:{n}", ts=format_ts(BASE + n * 1000),
                                       session="s1"))
             for n, event in enumerate(events, 1)]
    path.write_bytes(b"".join(lines))


def append(path: Path, *events: ev.Event, session: str = "s9", late: bool = False) -> None:
    """Append events stamped by another session: now, or (`late`) timestamped before the
    journal's own events, as a merge of an old copy would append them."""
    start = BASE - 10**9 if late else clock.now_micros()
    with path.open("ab") as handle:
        for n, event in enumerate(events, 1):
            stamped = attrs.evolve(event, id=f"{session}:{n}", session=session,
                                   ts=format_ts(start + n))
            handle.write(codec.encode(stamped))


def status_of(path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """`journalq status --json` in this process, minus nothing: the whole document."""
    capsys.readouterr()
    assert 0 == main(["status", "--state", str(path), "--json"])
    return capsys.readouterr().out


@pytest.fixture
def small_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    """Checkpoints for journals of any length, so tests need not write 20,000 lines."""
    monkeypatch.setattr(checkpoint, "WORTH_IT", 0)


def save_checkpoint(path: Path) -> None:
    folder, report = checkpoint.replay_anew(str(path))
    checkpoint.save(str(path), folder, report.good_size, report.lines, report.last_ts)


def test_a_writer_leaves_a_checkpoint_beside_a_long_journal(tmp_path: Path) -> None:
    """A session that ends on a journal of 20,000 events or more saves `<journal>.fold`;
    `status` then folds only what came after it, and says exactly what a full replay says."""
    path = tmp_path / "long.jsonl"
    long_journal(path, beats=checkpoint.WORTH_IT)
    full = journalq("status", "--state", str(path), "--json").stdout

    assert 0 == journalq("cancel", "--state", str(path), "b").returncode
    assert Path(checkpoint.path_for(str(path))).exists()
    append(path, ev.JobRetried(job="b"))

    from_checkpoint = journalq("status", "--state", str(path), "--json")
    Path(checkpoint.path_for(str(path))).unlink()
    from_scratch = journalq("status", "--state", str(path), "--json")

    assert 0 == from_checkpoint.returncode, from_checkpoint.stderr
    assert from_scratch.stdout == from_checkpoint.stdout
    assert json.loads(full)["counts"] == {"pending": 1, "running": 0, "done": 1, "failed": 0,
                                          "cancelled": 0}
    assert "pending" == json.loads(from_scratch.stdout)["jobs"][1]["status"]


def test_short_journals_get_no_checkpoint(tmp_path: Path) -> None:
    """Below 20,000 events a full replay is quick: no cache file is written at all."""
    path = tmp_path / "short.jsonl"
    long_journal(path, beats=10)

    assert 0 == journalq("cancel", "--state", str(path), "b").returncode

    assert not Path(checkpoint.path_for(str(path))).exists()


def test_deleting_the_checkpoint_changes_nothing(tmp_path: Path, small_threshold: None,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """status with the checkpoint and status after deleting it print the same document."""
    path = tmp_path / "j.jsonl"
    long_journal(path, beats=50)
    save_checkpoint(path)
    append(path, ev.JobCancelled(job="b"))

    with_it = status_of(path, capsys)
    os.remove(checkpoint.path_for(str(path)))

    assert status_of(path, capsys) == with_it


@pytest.mark.parametrize("damage", ["cut-before-offset", "garbage-cache", "other-journal",
                                    "older-events-merged", "rewritten-middle"])
def test_a_checkpoint_that_does_not_match_is_ignored(
        tmp_path: Path, small_threshold: None, capsys: pytest.CaptureFixture[str],
        damage: str) -> None:
    """Whatever happened to the journal or the cache since it was saved (a cut below its
    offset, a corrupt or foreign cache file, older events merged in, bytes rewritten),
    status shows what a full replay shows."""
    path = tmp_path / "j.jsonl"
    long_journal(path, beats=50)
    save_checkpoint(path)
    cache = Path(checkpoint.path_for(str(path)))
    if damage == "cut-before-offset":
        data = path.read_bytes()
        path.write_bytes(data[: data.rindex(b"\n", 0, len(data) - 1) + 1])
    elif damage == "garbage-cache":
        cache.write_bytes(b"\x00not json at all")
    elif damage == "other-journal":
        other = tmp_path / "other.jsonl"
        shutil.copy(path, other)
        shutil.copy(cache, checkpoint.path_for(str(other)))
        path = other
    elif damage == "older-events-merged":
        append(path, ev.JobCancelled(job="b"), late=True)  # sorts before the checkpoint
    elif damage == "rewritten-middle":
        data = bytearray(path.read_bytes())
        at = data.index(b'"attempt":1', len(data) // 2)
        data[at:at + 11] = b'"attempt":2'
        path.write_bytes(bytes(data))

    shown = status_of(path, capsys)
    Path(checkpoint.path_for(str(path))).unlink()
    assert status_of(path, capsys) == shown


@settings(max_examples=60, deadline=None)
@given(events=histories(), data=st.data())
def test_a_restored_snapshot_folds_on_like_the_original(events: list[ev.Event],
                                                        data: st.DataObject) -> None:
    """Snapshot a fold after any prefix, restore it from JSON, feed the rest: the queue is
    the replay of everything."""
    cut = data.draw(st.integers(0, len(events)))
    running = fold.Fold()
    for event in events[:cut]:
        running.feed(event)

    stored = json.loads(json.dumps(checkpoint.rows(running.export())))
    restored = fold.Fold.resume(checkpoint.state_of(stored))
    for event in events[cut:]:
        restored.feed(event)

    assert fold.replay(events) == restored.queue()


def test_a_writer_opening_from_the_checkpoint_appends_where_a_full_replay_would(
        tmp_path: Path, small_threshold: None) -> None:
    """A writer that opens a long journal through its checkpoint stamps after the newest
    event, refuses a journal with newer event types, and leaves a journal whose full
    replay is what it folded."""
    path = tmp_path / "j.jsonl"
    long_journal(path, beats=50)
    save_checkpoint(path)
    newest = checkpoint.replay_anew(str(path))[1].last_ts

    with journal.Writer.open(str(path), session="w1", command="test",
                             replay=checkpoint.replay) as writer:
        stamped = writer.append(ev.JobCancelled(job="b"))
        folded = writer.fold.queue()

    assert stamped.ts > newest
    assert checkpoint.replay_anew(str(path))[0].queue() == folded
    with path.open("ab") as handle:
        handle.write(b'{"type":"job_teleported","v":2,"id":"x:1","ts":"2099-01-01T00:00:00'
                     b'.000000Z","session":"x"}\n')
    save_checkpoint(path)
    with pytest.raises(journal.JournalError, match="newer journalq"):
        journal.Writer.open(str(path), session="w2", command="test",
                            replay=checkpoint.replay)


@pytest.mark.parametrize("content", [b'{"v":1,"fingerprint":{"offset":1e400}}',
                                     b"[" * 100_000, b'{"v":1}', b"\xff\xfe"])
def test_any_unreadable_checkpoint_is_no_checkpoint(
        tmp_path: Path, small_threshold: None, capsys: pytest.CaptureFixture[str],
        content: bytes) -> None:
    """A checkpoint file that is damaged in any way (numbers too big, nesting too deep,
    fields missing, not UTF-8) is ignored: status works and says what a full replay says."""
    path = tmp_path / "j.jsonl"
    long_journal(path, beats=20)
    plain = status_of(path, capsys)
    Path(checkpoint.path_for(str(path))).write_bytes(content)

    assert plain == status_of(path, capsys)
