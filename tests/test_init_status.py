"""`init` brings a journal up to date with its config and is idempotent; `status` replays
and never writes."""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

import pytest
from test_journal import held_elsewhere

from conftest import events, journalq, write
from journalq import checkpoint
from journalq import events as ev
from journalq.cli import main
from journalq.journal import Writer

JOURNAL = Path("runtime_state/lab.jsonl")
# Each job appends one line to <out_dir>/runs, so a test can count real runs.
COUNT_RUN = ("import os, sys; os.makedirs(sys.argv[1], exist_ok=True); "
             "print('ran', file=open(os.path.join(sys.argv[1], 'runs'), 'a'))")


def lab_config(folder: Path, *jobs: str, variant: dict[str, str] | None = None) -> Path:
    """`lab.yaml` with the given jobs; a job's `variant` is an extra argument, so changing
    it changes the job's spec."""
    lines = ["queue: lab", "out_root: out", "jobs:"]
    for job in jobs:
        extra = f", {(variant or {}).get(job)}" if (variant or {}).get(job) else ""
        lines.append(f"  - {{id: {job}, command: [python, -c, \"{COUNT_RUN}\", "
                     f"'{{out_dir}}'{extra}]}}")
    return write(folder / "lab.yaml", "\n".join(lines) + "\n")


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder (the current directory) with `lab.yaml` holding jobs a and b."""
    monkeypatch.chdir(tmp_path)
    lab_config(tmp_path, "a", "b")
    return tmp_path


def types(journal: Path, since: int = 0) -> list[object]:
    return [event["type"] for event in events(journal)[since:]]


def status(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    capsys.readouterr()
    assert 0 == main(["status", "--state", str(JOURNAL), *args])
    out, err = capsys.readouterr()
    assert "" == err
    return out


def status_of(capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    """Each job's status as the `status` table shows it (`done*` included)."""
    rows = status(capsys).splitlines()
    first = next(i for i, row in enumerate(rows) if row.startswith("JOB ")) + 1
    return {row.split()[0]: row.split()[1] for row in itertools.takewhile(bool, rows[first:])}


def run_queue(folder: Path) -> None:
    done = journalq("run", "--config", "lab.yaml", "--quiet", cwd=folder)
    assert 0 == done.returncode, done.stderr


def runs(folder: Path, job: str) -> int:
    marker = folder / "out" / job / "runs"
    return len(marker.read_text().splitlines()) if marker.exists() else 0


def test_init_creates_the_journal_with_every_job_pending(
        lab: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`init` writes the queue and one `job_added` per job, in a session; all pending."""
    code = main(["init", "--config", "lab.yaml"])

    out, err = capsys.readouterr()
    assert (0, "") == (code, err)
    assert out.startswith(f"{JOURNAL}: queue lab, 2 jobs; 2 jobs: 2 pending, 0 running, 0 done")
    assert ["session_started", "queue_created", "job_added", "job_added",
            "session_ended"] == types(lab / JOURNAL)
    assert {"a": "pending", "b": "pending"} == status_of(capsys)


def test_init_again_appends_nothing(lab: Path) -> None:
    """Running `init` twice with the same config leaves the journal byte for byte as it was."""
    assert 0 == main(["init", "--config", "lab.yaml"])
    before = (lab / JOURNAL).read_bytes()

    assert 0 == main(["init", "--config", "lab.yaml"])

    assert before == (lab / JOURNAL).read_bytes()


def test_a_new_job_in_the_config_is_added_once(lab: Path) -> None:
    """A job added to the config becomes exactly one `job_added` on the next `init`."""
    assert 0 == main(["init", "--config", "lab.yaml"])
    count = len(events(lab / JOURNAL))
    lab_config(lab, "a", "b", "c")

    assert 0 == main(["init", "--config", "lab.yaml"])
    assert 0 == main(["init", "--config", "lab.yaml"])

    assert ["session_started", "job_added", "session_ended"] == types(lab / JOURNAL, count)
    assert "c" == events(lab / JOURNAL)[count + 1]["job"]


def test_a_changed_pending_job_is_recorded_as_changed(
        lab: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A pending job whose spec changed in the config gets one `job_changed` with the new
    spec; it stays pending."""
    assert 0 == main(["init", "--config", "lab.yaml"])
    count = len(events(lab / JOURNAL))
    lab_config(lab, "a", "b", variant={"b": "v2"})

    assert 0 == main(["init", "--config", "lab.yaml"])

    new = events(lab / JOURNAL)[count:]
    assert ["session_started", "job_changed", "session_ended"] == [e["type"] for e in new]
    assert ("b", "v2") == (new[1]["job"], new[1]["argv"][-1])
    assert "1 changed" in capsys.readouterr().out
    assert {"a": "pending", "b": "pending"} == status_of(capsys)


def test_a_changed_done_job_is_flagged_and_not_rerun_until_retried(
        lab: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A done job whose spec changed is recorded, shown as `done*`, skipped by `run`; after
    `retry` the next `run` runs it with the new spec and it is plain `done` again."""
    assert 0 == main(["init", "--config", "lab.yaml"])
    run_queue(lab)
    assert (1, 1) == (runs(lab, "a"), runs(lab, "b"))
    lab_config(lab, "a", "b", variant={"a": "v2"})

    assert 0 == main(["init", "--config", "lab.yaml"])
    assert "job_changed" in types(lab / JOURNAL)
    assert {"a": "done*", "b": "done"} == status_of(capsys)
    document = json.loads(status(capsys, "--json"))
    assert [True, False] == [job["changed_after_done"] for job in document["jobs"]]

    run_queue(lab)
    assert (1, 1) == (runs(lab, "a"), runs(lab, "b"))
    assert {"a": "done*", "b": "done"} == status_of(capsys)

    assert 0 == main(["retry", "--config", "lab.yaml", "a"])
    run_queue(lab)
    assert (2, 1) == (runs(lab, "a"), runs(lab, "b"))
    assert {"a": "done", "b": "done"} == status_of(capsys)


def test_status_never_writes(lab: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`status` (table and --json) leaves the journal's bytes and mtime alone and creates
    no lock file."""
    assert 0 == main(["init", "--config", "lab.yaml"])
    journal = lab / JOURNAL
    lock = Path(f"{journal}.lock")
    lock.unlink()
    before = (journal.read_bytes(), journal.stat().st_mtime_ns)

    status(capsys)
    status(capsys, "--json")
    assert 0 == main(["status", "--config", "lab.yaml"])

    assert before == (journal.read_bytes(), journal.stat().st_mtime_ns)
    assert not lock.exists()
    assert ["lab.jsonl"] == os.listdir(lab / "runtime_state")


def test_status_works_while_another_process_writes(
        lab: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`status` takes no lock: it reads the journal while another process holds the
    writer's lock, and leaves the holder's lock record alone."""
    assert 0 == main(["init", "--config", "lab.yaml"])
    journal = lab / JOURNAL

    with held_elsewhere(journal):
        record = Path(f"{journal}.lock").read_bytes()
        before = journal.read_bytes()
        assert {"a": "pending", "b": "pending"} == status_of(capsys)
        assert 2 == len(json.loads(status(capsys, "--json"))["jobs"])
        assert record == Path(f"{journal}.lock").read_bytes()
        assert before == journal.read_bytes()


JOB_FIELDS = {"id", "status", "attempt", "max_attempts", "command", "out_dir", "created",
              "started", "finished", "last_heartbeat", "return_code", "log", "attempts"}


def test_status_json_has_the_documented_schema(lab: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """`status --json` gives, per job: id, status, attempt, max_attempts, command, out_dir,
    created, started, finished, last_heartbeat, return_code, log and attempts[]."""
    assert 0 == main(["init", "--config", "lab.yaml"])
    with Writer.open(str(JOURNAL), session="5c4e3a000001", command="test",
                     replay=checkpoint.replay) as writer:
        start = writer.append(ev.JobStarted(job="a", attempt=1, host="box", boot_id="x",
                                            pid=1, log="logs/a-1.log", spec_sha256="0"))
        beat = writer.append(ev.Heartbeat(job="a", attempt=1, child_pid=2))
        end = writer.append(ev.JobFinished(job="a", attempt=1, return_code=3, signal=None,
                                           outcome="failed", reason="exit", duration=0.25))

    document = json.loads(status(capsys, "--json"))

    a, b = document["jobs"]
    assert JOB_FIELDS <= set(a)
    added = events(lab / JOURNAL)[2]
    assert {"id": "a", "status": "failed", "attempt": 1, "max_attempts": 1,
            "command": added["argv"], "out_dir": "out/a", "created": added["ts"],
            "started": start.ts, "finished": end.ts, "last_heartbeat": beat.ts,
            "return_code": 3, "log": "logs/a-1.log"} == {
        key: a[key] for key in JOB_FIELDS - {"attempts"}}
    assert [(1, start.ts, end.ts, "failed", 3)] == [
        (t["attempt"], t["started"], t["finished"], t["outcome"], t["return_code"])
        for t in a["attempts"]]
    assert {"id": "b", "status": "pending", "attempt": 0, "started": None, "finished": None,
            "last_heartbeat": None, "return_code": None, "log": None, "attempts": []} == {
        key: b[key] for key in ("id", "status", "attempt", "started", "finished",
                                "last_heartbeat", "return_code", "log", "attempts")}
    assert {"pending": 1, "running": 0, "done": 0, "failed": 1, "cancelled": 0} == (
        document["counts"])
    assert ("lab", str(JOURNAL)) == (document["queue"], document["journal"])


@pytest.mark.parametrize("command", ["retry", "cancel"])
def test_unknown_job_ids_exit_2_and_change_nothing(
        lab: Path, capsys: pytest.CaptureFixture[str], command: str) -> None:
    """`retry` or `cancel` of an id the queue does not have exits 2, naming it, and the
    journal is left byte for byte as it was."""
    assert 0 == main(["init", "--config", "lab.yaml"])
    before = (lab / JOURNAL).read_bytes()
    capsys.readouterr()

    code = main([command, "--state", str(JOURNAL), "a", "nope"])

    assert (2, "journalq: error: no such job: nope; `journalq status` lists the ids\n") == (
        code, capsys.readouterr().err)
    assert before == (lab / JOURNAL).read_bytes()


def test_init_refuses_a_journal_of_another_queue(lab: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """Pointing a config at the journal of another queue is refused, changing nothing."""
    assert 0 == main(["init", "--config", "lab.yaml"])
    write(lab / "other.yaml", "queue: other\njobs:\n  - {id: z, command: [x]}\n")
    before = (lab / JOURNAL).read_bytes()
    capsys.readouterr()

    code = main(["init", "--config", "other.yaml", "--state", str(JOURNAL)])

    err = capsys.readouterr().err
    assert (2, 1) == (code, err.count("\n"))
    assert err.startswith(f"journalq: error: {JOURNAL} is the journal of queue 'lab'")
    assert before == (lab / JOURNAL).read_bytes()
