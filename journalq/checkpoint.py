"""A disposable fold checkpoint beside a long journal: `<journal>.fold`.

`status` on a journal of a million events spends seconds replaying it; with a checkpoint it
folds only the lines appended since. The checkpoint is a cache, never a source of truth:
it holds the fold's state, the byte offset it covers, and a fingerprint of those bytes (the
file's identity and a SHA-256 of all of them). `status` uses it
only when the journal still matches the fingerprint and the new lines sort after it;
anything else (a repair, a torn-tail cut before the offset, an out-of-order merge, a
corrupt or foreign checkpoint) means a full replay, as if it did not exist. Deleting it
changes nothing but speed.

Writers save it when they end, for journals long enough to be worth it, and use it when
they open one (so `run` on a long, finished journal is quick too); `status` never writes.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import json
import os
from typing import Any

import attrs

from journalq.fold import Fold, FoldState, OutOfOrder, sort_key
from journalq.fs import REAL, FileSystem
from journalq.reader import Reader, ReadReport, check_journal
from journalq.state import Anomaly, Attempt, Job, JobSpec, Queue, SessionInfo, Status

SUFFIX = ".fold"
VERSION = 1
# Below this many events a full replay takes well under a tenth of a second.
WORTH_IT = 20_000


def path_for(journal: str) -> str:
    """Where the journal's checkpoint lives."""
    return journal + SUFFIX


def _fingerprint(journal: str, offset: int, fs: FileSystem,
                 digest: Any = None) -> tuple[dict[str, Any], Any]:
    """What must still hold of the journal for a checkpoint covering `offset` bytes: the
    same file (device and inode: a repair writes a new one), and a SHA-256 of every byte
    covered (a tenth of a second for a million events, a twentieth of parsing them), so
    that a line damaged in place is found exactly as a full read would find it. `digest`,
    if given, is already that SHA-256 (the writer kept it as it read and appended); else
    the bytes are read. Returns the fingerprint and the digest."""
    identity = fs.stat(journal)
    left = 0
    if digest is None:
        import hashlib  # only for long journals: `status` on a short one starts without it

        digest = hashlib.sha256()
        left = offset
        for chunk in fs.read(journal):
            digest.update(chunk[:left])
            left -= min(left, len(chunk))
            if not left:
                break
    return {"device": identity.st_dev, "inode": identity.st_ino, "offset": offset,
            "covered": offset - left, "sha256": digest.hexdigest()}, digest


def _schema() -> dict[str, list[str]]:
    """The field names the snapshot's rows are laid out by: a journalq whose state types
    have other fields reads an older checkpoint as no checkpoint."""
    return {kind.__name__: [field.name for field in attrs.fields(kind)]
            for kind in (Job, JobSpec, Attempt, SessionInfo, Anomaly)}


def rows(state: FoldState) -> dict[str, Any]:
    """A fold's state as plain JSON values, laid out by the state types' fields (`_schema`):
    compact (rows, not objects), and read back by `state_of`."""
    return {
        "name": state.header.name,
        "config": state.header.config,
        "jobs": [_job_row(job) for job in state.jobs],
        "sessions": [attrs.astuple(info, recurse=False) for info in state.sessions],
        "anomalies": [attrs.astuple(a, recurse=False) for a in state.anomalies],
        "unknown": sorted(state.unknown),
        "beats": {job: list(beat) for job, beat in state.beats.items()},
        "count": state.count,
        "seen": dict(state.seen),
        "newest": dict(state.newest),
        "last": list(state.last),
    }


def state_of(document: dict[str, Any]) -> FoldState:
    """The fold's state `rows` wrote; raises (KeyError, TypeError, ValueError) on anything
    malformed, which `_load` treats as "no checkpoint"."""
    ts, event_id = document["last"]
    return FoldState(
        header=Queue(name=document["name"], config=document["config"]),
        jobs=tuple(_job_from_row(row) for row in document["jobs"]),
        sessions=tuple(SessionInfo(*row) for row in document["sessions"]),
        anomalies=tuple(Anomaly(*row) for row in document["anomalies"]),
        unknown=frozenset(document["unknown"]),
        beats={job: (int(b[0]), str(b[1]), b[2]) for job, b in document["beats"].items()},
        count=int(document["count"]), seen=dict(document["seen"]),
        newest=dict(document["newest"]),
        last=(str(ts), str(event_id)),
    )


def _job_row(job: Job) -> list[Any]:
    spec = attrs.astuple(job.spec, recurse=False)
    attempts = [attrs.astuple(attempt, recurse=False) for attempt in job.attempts]
    return [job.id, spec, job.added, job.status.value, attempts, job.charged, job.reason,
            job.changed_after_done]


def _job_from_row(row: list[Any]) -> Job:
    job_id, spec, added, status, attempts, charged, reason, changed = row
    argv, shell, cwd, env, out_dir, max_attempts, timeout, sha256 = spec
    return Job(
        id=job_id,
        spec=JobSpec(tuple(argv), shell, cwd, env, out_dir, max_attempts, timeout, sha256),
        added=added, status=Status(status),
        attempts=tuple([Attempt(*attempt) for attempt in attempts]),
        charged=charged, reason=reason, changed_after_done=changed,
    )


def save(journal: str, folder: Fold, offset: int, lines: int, newest: str,
         fs: FileSystem = REAL, digest: Any = None) -> None:
    """Write the checkpoint for `folder`, which folded the journal's first `offset` bytes
    (`lines` lines, newest timestamp `newest`; `digest`, if known, their SHA-256). Best
    effort: a cache that cannot be written is simply not there."""
    if folder.event_count() < WORTH_IT:
        return
    target = path_for(journal)
    temp = f"{target}.tmp-{os.getpid()}"
    with contextlib.suppress(OSError):
        document = {
            "v": VERSION, "fingerprint": _fingerprint(journal, offset, fs, digest)[0],
            "lines": lines,
            "newest": newest, "newer_types": folder.unknown_types(), "schema": _schema(),
            "state": rows(folder.export()),
        }
        fs.write_file(temp, json.dumps(document, separators=(",", ":")).encode(), False)
        fs.replace(temp, target)


def _load(journal: str, fs: FileSystem
          ) -> tuple[Fold, int, int, str, list[str], Any] | None:
    """The checkpoint's fold, offset, line count, newest timestamp, the newer event types
    it covers and the SHA-256 of the bytes it covers, if it is valid."""
    try:
        document = json.loads(b"".join(fs.read(path_for(journal))))
        if document.get("v") != VERSION or document.get("schema") != _schema():
            return None
        offset = int(document["fingerprint"]["offset"])
        fingerprint, digest = _fingerprint(journal, offset, fs)
        if document["fingerprint"] != fingerprint:
            return None
        folder = Fold.resume(state_of(document["state"]))
        newer = [str(kind) for kind in document["newer_types"]]
        return (folder, offset, int(document["lines"]), str(document["newest"]), newer,
                digest)
    except Exception:  # noqa: BLE001 - a cache that cannot be read is no cache; never an error
        return None


def replay(journal: str, fs: FileSystem = REAL, *,
           digest: bool = False) -> tuple[Fold, ReadReport]:
    """The journal folded from its checkpoint and the lines after it, else from scratch:
    the one way every reader of a journal (status, writers) folds it, reading its bytes
    once. A path that holds no journal (a FIFO, a config) is refused first, untouched
    (`reader.check_journal`). With `digest` (writers), the report carries a SHA-256 of
    the journal as read (see `ReadReport.digest`)."""
    check_journal(journal, fs)
    loaded = _load(journal, fs) if fs.exists(path_for(journal)) else None
    if loaded is None:
        return replay_anew(journal, fs, digest=digest)
    folder, offset, lines, newest, newer, covered = loaded
    reader = Reader(journal, fs, start=offset, first_line=lines + 1,
                    digest=covered if digest else None)
    reader.on_heartbeat = folder.beat
    try:
        for event in reader.events():
            folder.feed(event)
    except OutOfOrder:  # a merge appended older events: only a full replay sorts them in
        return replay_anew(journal, fs, digest=digest)
    report = reader.report()
    return folder, ReadReport(
        path=report.path, good_size=report.good_size, tail_size=report.tail_size,
        lines=lines + report.lines, last_ts=max(newest, report.last_ts),
        newer_types=tuple(sorted({*report.newer_types, *newer})), ordered=report.ordered,
        tail_reason=report.tail_reason, checkpoint_offset=offset,
        digest=report.digest if report.digest is not None and digest else None,
    )


def replay_anew(journal: str, fs: FileSystem = REAL, *,
                digest: bool = False) -> tuple[Fold, ReadReport]:
    """A full replay, checkpoint or not."""
    if not digest:
        return _replay_all(journal, fs)
    import hashlib

    return _replay_all(journal, fs, hashlib.sha256())


def _replay_all(path: str, fs: FileSystem = REAL,
                digest: Any = None) -> tuple[Fold, ReadReport]:
    """Fold the journal at `path` in (ts, id) order, streaming; `digest` (a hashlib object,
    if given) takes every byte read, and comes back in the report (see `ReadReport`).

    A journal is already in that order unless sessions that ran at the same time were merged
    into it; then it is a few ordered runs, and those are merged lazily, one event per run
    in memory at a time (the one case that reads the journal more than once).
    """
    fold = Fold()
    reader = Reader(path, fs, digest=digest.copy() if digest is not None else None)
    reader.on_heartbeat = fold.beat
    try:
        for event in reader.events():
            fold.feed(event)
        return fold, reader.report()
    except OutOfOrder:
        pass
    # The rare case: find where each ordered run starts, then merge the runs.
    reader = Reader(path, fs, digest=digest)
    for _ in reader.events():
        pass
    report = reader.report()
    bounds = [*reader.run_starts, (report.good_size, -1)]
    ordered_runs = [Reader(path, fs, start, end, line).events()
                    for (start, line), (end, _) in itertools.pairwise(bounds)]
    fold = Fold()
    for event in heapq.merge(*ordered_runs, key=sort_key):
        fold.feed(event)
    return fold, report
