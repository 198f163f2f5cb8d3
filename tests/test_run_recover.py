"""A job left `running` by a runner on another machine (another boot id, so no pid check
applies) is judged by its last heartbeat alone. The clock is injected by writing the
journal by hand with old timestamps: nobody sleeps for two hours.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import attrs
from test_run_support import SmallQueue, counts

from journalq import codec, policy
from journalq import events as ev
from journalq.opened import load_config

OTHER_BOOT = "00000000-0000-4000-8000-000000000000"
STALE = 7200


def left_running_elsewhere(queue: SmallQueue, job: str, heartbeat_age: float) -> None:
    """Write a journal in which a runner on another machine started `job` and last
    heartbeated `heartbeat_age` seconds ago, then vanished without a word."""
    cfg = load_config(queue.config)
    began = heartbeat_age + 600
    facts: list[tuple[float, ev.Event]] = [
        (began, ev.SessionStarted(
            command="run", host="colab-vm", boot_id=OTHER_BOOT, pid=4242, pid_start=777,
            argv=("journalq", "run"), journalq_version="0.1.0", python_version="3.11.7")),
        (began, ev.QueueCreated(queue=queue.name, config=queue.config,
                                config_sha256=cfg.sha256)),
        *[(began, ev.JobAdded(job=job_id, **policy.spec_fields(spec)))
          for job_id, spec in cfg.jobs.items()],
        (heartbeat_age + 60, ev.JobStarted(
            job=job, attempt=1, host="colab-vm", boot_id=OTHER_BOOT, pid=4242,
            log=f"runtime_state/logs/{queue.name}/{job}/attempt-1.log",
            spec_sha256=cfg.jobs[job].sha256)),
        (heartbeat_age, ev.Heartbeat(job=job, attempt=1, child_pid=4243)),
    ]
    now = datetime.now(UTC)
    stamped = [
        # Each line a microsecond after the one before, so the file is in (ts, id) order.
        attrs.evolve(event, id=f"c0ffee000000:{n}", session="c0ffee000000",
                     ts=(now - timedelta(seconds=age, microseconds=-n))
                     .strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
        for n, (age, event) in enumerate(facts, start=1)
    ]
    queue.journal.parent.mkdir(parents=True, exist_ok=True)
    queue.journal.write_bytes(b"".join(codec.encode(event) for event in stamped))


def test_old_heartbeat_is_recovered_as_stale(project: Path) -> None:
    """A heartbeat three hours old is past --stale-seconds 7200: `recover --dry-run` says
    what it would do and writes nothing; `recover` settles the job by its budget with
    reason `stale`; a second `recover` appends nothing; `run` then finishes the job."""
    with SmallQueue(project, ["lost", "fresh"], max_attempts=2) as queue:
        left_running_elsewhere(queue, "lost", heartbeat_age=3 * 3600)
        written = queue.journal.read_bytes()

        dry = queue.command("recover", "--stale-seconds", str(STALE), "--dry-run")

        assert 0 == dry.returncode, dry.stderr
        assert ["would recover lost attempt 1: stale -> pending"] == dry.stdout.splitlines()
        assert written == queue.journal.read_bytes()

        recovered = queue.command("recover", "--stale-seconds", str(STALE))

        assert 0 == recovered.returncode, recovered.stderr
        assert "recovered 1 job(s)" in recovered.stdout
        assert [("lost", 1, "pending", "stale")] == [
            (e["job"], e["attempt"], e["to"], e["reason"])
            for e in queue.events("job_recovered")]
        lost = queue.job("lost")
        assert ("pending", 1) == (lost["status"], lost["attempts_left"])
        settled = queue.journal.read_bytes()

        again = queue.command("recover", "--stale-seconds", str(STALE))

        assert 0 == again.returncode, again.stderr
        assert "nothing to recover" in again.stdout
        assert settled == queue.journal.read_bytes()

        done = queue.run("--quiet")
        assert 0 == done.returncode, done.stderr
        assert [("lost", 2), ("fresh", 1)] == queue.runs()
        assert {"done": 2} == counts(queue.status())


def test_stale_job_without_budget_fails(project: Path) -> None:
    """With max_attempts 1, the stale attempt was the only one: the job ends failed with
    reason `stale`, and `run` without --resume refuses (exit 6) before that is decided."""
    with SmallQueue(project, ["lost"], max_attempts=1) as queue:
        left_running_elsewhere(queue, "lost", heartbeat_age=3 * 3600)
        written = queue.journal.read_bytes()

        refused = queue.run("--quiet", "--stale-seconds", str(STALE))

        assert 6 == refused.returncode
        assert "lost (attempt 1): no heartbeat for 3h00m" in refused.stderr
        assert "--resume" in refused.stderr
        assert written == queue.journal.read_bytes()

        resumed = queue.run("--quiet", "--resume", "--stale-seconds", str(STALE))

        assert 1 == resumed.returncode
        assert [] == queue.runs()
        lost = queue.job("lost")
        assert ("failed", "stale") == (lost["status"], lost["reason"])


def test_fresh_heartbeat_elsewhere_blocks_run_unless_forced(project: Path) -> None:
    """A heartbeat a minute old from another machine means its runner may be alive: `run`
    (even with --resume) and `recover` leave it alone and `run` exits 5 writing nothing;
    `run --force` treats that runner as dead, settles the job and runs it again."""
    with SmallQueue(project, ["elsewhere"], max_attempts=2) as queue:
        left_running_elsewhere(queue, "elsewhere", heartbeat_age=60)
        written = queue.journal.read_bytes()

        for flags in ((), ("--resume",)):
            busy = queue.run("--quiet", *flags)

            assert 5 == busy.returncode, flags
            assert "another runner looks alive (session c0ffee000000 on colab-vm" in busy.stderr
            assert "--force" in busy.stderr
            assert written == queue.journal.read_bytes()
        left_alone = queue.command("recover")
        assert 0 == left_alone.returncode
        assert "elsewhere is still running on colab-vm" in left_alone.stdout
        assert written == queue.journal.read_bytes()

        forced = queue.run("--quiet", "--force")

        assert 0 == forced.returncode, forced.stderr
        assert [("elsewhere", 1, "pending", "forced")] == [
            (e["job"], e["attempt"], e["to"], e["reason"])
            for e in queue.events("job_recovered")]
        assert [("elsewhere", 2)] == queue.runs()
        assert "done" == queue.job("elsewhere")["status"]


def test_attempt_numbers_continue_past_a_gap_left_by_merged_histories(project: Path) -> None:
    """After two runtimes' histories merge, a job's attempts can be numbered 1 and 3 (a
    runtime that never saw attempt 2). The next `run` numbers its attempt 4, past every
    number used, so the journal records it and its finish: the job runs once and is done."""
    with SmallQueue(project, ["a"], max_attempts=5) as queue:
        left_running_elsewhere(queue, "a", heartbeat_age=3 * 3600)
        cfg = load_config(queue.config)
        now = datetime.now(UTC)
        late = [ev.JobFinished(job="a", attempt=1, return_code=1, signal=None, outcome="failed",
                               reason="exit", duration=1.0),
                ev.JobStarted(job="a", attempt=3, host="vm-b", boot_id=OTHER_BOOT, pid=7,
                              log="runtime_state/logs/q/a/attempt-3.b.log",
                              spec_sha256=cfg.jobs["a"].sha256),
                ev.JobFinished(job="a", attempt=3, return_code=1, signal=None, outcome="failed",
                               reason="exit", duration=1.0)]
        with queue.journal.open("ab") as handle:
            for n, event in enumerate(late, start=1):
                session = "c0ffee000000" if n == 1 else "beef00000000"
                stamped = attrs.evolve(event, id=f"{session}:{100 + n}", session=session,
                                       ts=(now - timedelta(seconds=3 * 3600 - 10 * n))
                                       .strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
                handle.write(codec.encode(stamped))
        assert "pending" == queue.job("a")["status"]

        done = queue.run("--quiet")

        assert 0 == done.returncode, done.stderr
        assert [("a", 4)] == queue.runs()
        assert [1, 3, 4] == [a["attempt"] for a in queue.job("a")["attempts"]]
        assert "done" == queue.job("a")["status"]
