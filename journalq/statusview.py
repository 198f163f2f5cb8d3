"""What `status` shows: the table, its notes, and the `--json` document (documented in the
README; its field names are as stable as the journal's)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from journalq.render import age, counts_line, duration, return_code_text, safe, tries
from journalq.state import Attempt, Job, Queue, Status
from journalq.timestamps import seconds_between

JSON_SCHEMA_VERSION = 1


def status_table(queue: Queue, now: datetime, jobs: Iterable[Job] | None = None) -> str:
    """The status view: a counts line (of the whole queue), one row per job shown (`jobs`,
    default all), then notes and anomalies."""
    rows = [("JOB", "STATUS", "ATTEMPT", "TRIES", "RC", "DURATION", "HEARTBEAT", "OUT_DIR")]
    shown = list(queue.jobs.values()) if jobs is None else list(jobs)
    for job in shown:
        rows.append((
            safe(job.id), _status_word(job), str(job.attempt), tries(job),
            return_code_text(job.last), duration(_duration(job.last, now)), _beat_age(job, now),
            safe(job.spec.out_dir),
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = [f"queue {safe(queue.name or '?')}: {counts_line(queue)}", ""]
    if len(shown) != len(queue.jobs):
        lines[-1:] = [f"{len(shown)} of {len(queue.jobs)} jobs shown (filtered)", ""]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    lines.extend(notes(queue))
    return "\n".join(lines)


def _status_word(job: Job) -> str:
    if job.status is Status.DONE and job.changed_after_done:
        return "done*"
    if job.status is Status.FAILED and job.reason and job.reason != "exit":
        return f"failed({job.reason})"
    return job.status.value


def _duration(attempt: Attempt | None, now: datetime) -> float | None:
    if attempt is None:
        return None
    if attempt.duration is not None:
        return attempt.duration
    if attempt.finished is None:
        return max(0.0, seconds_between(attempt.started, now))
    return None


def _beat_age(job: Job, now: datetime) -> str:
    attempt = job.last
    if job.status is not Status.RUNNING or attempt is None:
        return "-"
    return age(seconds_between(attempt.heartbeat or attempt.started, now))


def notes(queue: Queue) -> list[str]:
    """Lines that explain anything unusual: changed specs, anomalies, newer event types."""
    lines: list[str] = []
    changed = [job.id for job in queue.jobs.values() if job.changed_after_done]
    if changed:
        lines.append("")
        lines.append(f"done* = the config changed after the job was done "
                     f"({safe(', '.join(changed))}); "
                     "it is not rerun unless you `journalq retry` it")
    if queue.anomalies:
        lines.append("")
        lines.append(f"{len(queue.anomalies)} event(s) did not fit the state (kept, ignored):")
        for anomaly in queue.anomalies:
            times = f" (x{anomaly.count})" if anomaly.count > 1 else ""
            lines.append(safe(f"  {anomaly.event_id} {anomaly.job or '-'}: {anomaly.message}")
                         + times)
    if queue.unknown_types:
        lines.append("")
        lines.append("events from a newer journalq were skipped: "
                     + safe(", ".join(sorted(queue.unknown_types))))
    return lines


def job_json(job: Job) -> dict[str, Any]:
    """One job as `status --json` shows it (documented in the README)."""
    last = job.last
    return {
        "id": job.id,
        "status": job.status.value,
        "attempt": job.attempt,
        "max_attempts": job.spec.max_attempts,
        "attempts_left": job.attempts_left,
        "command": list(job.spec.argv),
        "shell": job.spec.shell,
        "cwd": job.spec.cwd,
        "out_dir": job.spec.out_dir,
        "created": job.added,
        "started": last.started if last else None,
        "finished": last.finished if last else None,
        "last_heartbeat": last.heartbeat if last else None,
        "return_code": last.return_code if last else None,
        "signal": last.signal if last else None,
        "duration": last.duration if last else None,
        "reason": job.reason,
        "log": last.log if last else None,
        "commit": last.commit if last else None,
        "spec_sha256": job.spec.sha256,
        "changed_after_done": job.changed_after_done,
        "attempts": [_attempt_json(attempt) for attempt in job.attempts],
    }


def _attempt_json(attempt: Attempt) -> dict[str, Any]:
    return {
        "attempt": attempt.number, "session": attempt.session, "host": attempt.host,
        "started": attempt.started, "finished": attempt.finished,
        "last_heartbeat": attempt.heartbeat, "outcome": attempt.outcome,
        "reason": attempt.reason, "return_code": attempt.return_code,
        "signal": attempt.signal, "duration": attempt.duration, "log": attempt.log,
        "charged": attempt.charged, "commit": attempt.commit, "dirty": attempt.dirty,
    }


def done_commits(jobs: Iterable[Job]) -> dict[str, list[str]]:
    """The git commits done jobs ran (their done attempt's), each with its jobs; a
    commit is `<hash>+dirty` when its work tree had changes. Jobs run outside git are left
    out."""
    found: dict[str, list[str]] = {}
    for job in jobs:
        if job.status is not Status.DONE:
            continue
        ran = next((a for a in reversed(job.attempts) if a.outcome == "done"), None)
        if ran is not None and ran.commit:
            found.setdefault(ran.commit + ("+dirty" if ran.dirty else ""), []).append(job.id)
    return found


def commit_notes(jobs: Iterable[Job], head: str | None) -> list[str]:
    """What `status` says when done jobs ran other code than the work tree's HEAD now (a
    notebook that `git pull`s on every new runtime makes that the common case)."""
    other = {commit: ids for commit, ids in done_commits(jobs).items()
             if head is None or commit.removesuffix("+dirty") != head or
             commit.endswith("+dirty")}
    if not other:
        return []
    lines = ["", "done jobs that ran other code than HEAD"
             + (f" ({head[:12]})" if head else "") + ":"]
    for commit, ids in other.items():
        shown = ", ".join(ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")
        lines.append(safe(f"  {commit[:12]}{'+dirty' if commit.endswith('+dirty') else ''}:"
                          f" {shown}"))
    return lines


def status_json(queue: Queue, journal: str, warnings: Iterable[str],
                jobs: Iterable[Job] | None = None,
                runners: list[dict[str, Any]] | None = None) -> Iterator[str]:
    """The whole `status --json` document, in pieces: one line per job, so that ten
    thousand jobs never sit in memory twice (as values and as text). `jobs` (default all)
    are the ones listed; `counts` is always the whole queue's; `runners` the live ones."""
    head = {
        "schema": JSON_SCHEMA_VERSION,
        "queue": queue.name,
        "journal": journal,
        "events": queue.events,
        "counts": {status.value: count for status, count in queue.counts().items()},
    }
    yield json.dumps(head, ensure_ascii=False)[:-1] + ',\n "jobs": ['
    for number, job in enumerate(queue.jobs.values() if jobs is None else jobs):
        yield ("\n  " if number == 0 else ",\n  ") + json.dumps(job_json(job),
                                                                ensure_ascii=False)
    tail = {
        "anomalies": [
            {"event": a.event_id, "ts": a.ts, "job": a.job, "message": a.message,
             "count": a.count} for a in queue.anomalies
        ],
        "unknown_event_types": sorted(queue.unknown_types),
        "warnings": list(warnings),
        "runners": runners or [],
    }
    yield "\n ],\n " + json.dumps(tail, ensure_ascii=False)[1:] + "\n"
