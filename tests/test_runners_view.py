"""The live runners as `status` shows them (journalq/runners_view.py): per `run` session that
may still be alive, its host, Slurm task, selection, running jobs and when it was last heard
from; ended, silent and non-run sessions are left out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import attrs
from promise_support import Project, read_events, wait_until

from journalq import events as ev
from journalq import fold, policy
from journalq.runners_view import live_here, live_rows, live_runners, live_runners_json
from journalq.state import JobSpec, Queue
from journalq.sync import CopyReader

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def ts(seconds_ago: float) -> str:
    """A journal timestamp `seconds_ago` before NOW."""
    return (NOW - timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Log:
    """Events of several sessions, stamped in order."""

    def __init__(self) -> None:
        self.events: list[ev.Event] = []
        self.seq: dict[str, int] = {}

    def add(self, session: str, ago: float, event: ev.Event) -> None:
        self.seq[session] = self.seq.get(session, 0) + 1
        self.events.append(type(event)(**{**_fields(event), "id": f"{session}:"
                                          f"{self.seq[session]}", "ts": ts(ago),
                                          "session": session}))

    def start(self, session: str, ago: float, *, command: str = "run", host: str = "node1",
              boot: str = "boot-1", **selection: object) -> None:
        self.add(session, ago, ev.SessionStarted(
            command=command, host=host, boot_id=boot, pid=100, pid_start=1, argv=(),
            journalq_version="0", python_version="3", **selection))


def _fields(event: ev.Event) -> dict[str, object]:
    return attrs.asdict(event, recurse=False)


def queue_of_four_sessions() -> Queue:
    """A: shard 0/2 on node1, running j0, heard 5 s ago (a Slurm task). B: jobs j1 on
    node2, running nothing, heard 30 s ago. C: ended. D: silent for 3 h. E: a `retry`."""
    log = Log()
    spec = JobSpec.build(argv=("true",), shell=False, cwd=".", env={}, out_dir="o",
                         max_attempts=1, timeout=None)
    log.add("init00000000", 400, ev.QueueCreated(queue="q", config="c", config_sha256="x"))
    for job in ("j0", "j1", "j2"):
        log.add("init00000000", 400, ev.JobAdded(job=job, **policy.spec_fields(spec)))
    log.start("dddddddddddd", 3 * 3600, host="gone", jobs=("j2",))
    log.start("aaaaaaaaaaaa", 100, shard="0/2", slurm_task="77_0")
    log.start("bbbbbbbbbbbb", 90, host="node2", boot="boot-2", jobs=("j1",))
    log.start("cccccccccccc", 80, host="node3")
    log.start("eeeeeeeeeeee", 70, command="retry")
    log.add("aaaaaaaaaaaa", 60, ev.JobStarted(job="j0", attempt=1, host="node1",
                                              boot_id="boot-1", pid=100, log="l",
                                              spec_sha256=spec.sha256))
    log.add("cccccccccccc", 50, ev.SessionEnded(exit_code=0, reason="completed"))
    log.add("bbbbbbbbbbbb", 30, ev.Heartbeat(job="j1", attempt=1, child_pid=None))
    log.add("aaaaaaaaaaaa", 5, ev.Heartbeat(job="j0", attempt=1, child_pid=5))
    return fold.replay(log.events)


def test_live_runners_are_listed_with_host_selection_task_jobs_and_last_word() -> None:
    """The two live run sessions, oldest first, with what each selected and runs now."""
    lines = live_runners(queue_of_four_sessions(), NOW, 7200)

    assert "2 live runner(s):" == lines[0]
    assert lines[1].split() == ["RUNNER", "HOST", "SLURM", "SELECTION", "LAST", "HEARD",
                                "RUNNING"]
    assert lines[2].split() == ["aaaaaaaaaaaa", "node1", "77_0", "shard", "0/2", "5.0s",
                                "ago", "j0", "(attempt", "1)"]
    assert lines[3].split() == ["bbbbbbbbbbbb", "node2", "-", "jobs", "j1", "30s", "ago",
                                "-"]
    assert 4 == len(lines)
    assert lines[2].index("shard") == lines[1].index("SELECTION")  # columns line up


def test_on_this_machine_a_session_lives_while_its_process_does() -> None:
    """With this machine's boot id, a session of it is live only if the shell saw its
    process (`live_here`), however fresh its heartbeats."""
    queue = queue_of_four_sessions()

    here = live_here(queue, "boot-1", lambda pid, start: pid == 100)
    assert frozenset({"aaaaaaaaaaaa", "dddddddddddd"}) == here  # not B (boot-2), C, E
    assert frozenset() == live_here(queue, "boot-1", lambda pid, start: False)
    gone = live_rows(queue, NOW, 7200, boot_id="boot-1")
    alive = live_rows(queue, NOW, 7200, boot_id="boot-1", live_here={"aaaaaaaaaaaa"})

    assert ["bbbbbbbbbbbb"] == [row.session for row in gone]
    assert ["aaaaaaaaaaaa", "bbbbbbbbbbbb"] == [row.session for row in alive]


def test_none_alive_shows_nothing_and_json_says_the_same() -> None:
    """A short stale_seconds leaves no live runner: no lines at all; the JSON form lists
    the same sessions as the table."""
    queue = queue_of_four_sessions()

    assert [] == live_runners(queue, NOW, 1)
    rows = live_runners_json(queue, NOW, 7200)
    assert [("aaaaaaaaaaaa", "shard 0/2", "77_0", [{"job": "j0", "attempt": 1}]),
            ("bbbbbbbbbbbb", "jobs j1", None, [])] == [
        (r["session"], r["selection"], r["slurm_task"], r["running"]) for r in rows]
    assert ts(5) == rows[0]["last_heard"]


def test_two_shard_runners_seen_from_the_sync_folder(tmp_path: Path) -> None:
    """While two runtimes run shards 0/2 and 1/2, the sync folder's copies, folded, show
    both as live runners, each on its machine with its shard."""
    drive = tmp_path / "drive"
    ledger = tmp_path / "ledger.log"
    jobs = [f"j{n}" for n in range(4)]
    with Project(tmp_path / "A", jobs, boot="machine-a", ledger=ledger) as a, \
            Project(tmp_path / "B", jobs, boot="machine-b", ledger=ledger) as b:
        first = a.start("--sync-dir", str(drive), "--shard", "0/2", WORKER_SLEEP="1")
        second = b.start("--sync-dir", str(drive), "--shard", "1/2", WORKER_SLEEP="1")

        def both() -> list[str]:
            events = [e for copy in drive.glob("q.*.jsonl") for e in read_events(copy)]
            started = {e["session"] for e in events if e["type"] == "job_started"}
            return sorted(started) if len(started) == 2 else []

        wait_until(both, "both runners' copies to show a start")
        reader = CopyReader(str(drive), "q", warn=lambda _: None)
        queue = fold.replay(entry.event for entry in reader.candidates())
        lines = live_runners(queue, datetime.now(UTC), 7200)
        first.communicate(timeout=60)
        second.communicate(timeout=60)

    assert "2 live runner(s):" == lines[0]
    shards = sorted(" ".join(line.split()[3:5]) for line in lines[2:])
    assert ["shard 0/2", "shard 1/2"] == shards
