"""Many runtimes, one queue: runners that split a queue with `--shard K/N` (or job ids)
coexist on one sync folder, each running only its own jobs, and where two selections
overlap the later runner leaves the shared jobs to the earlier one (exit 5, naming it).

Real `journalq run` processes, each with its own machine identity (JOURNALQ_BOOT_ID) and its
own project folder and local journal, as two Colab notebooks would be; a shared ledger
counts every real start of a job.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pytest
from promise_support import (
    LaggingDrive,
    Project,
    counts,
    of_type,
    read_events,
    wait_until,
)

from journalq import events as ev
from journalq import fold, policy
from journalq.selection import Selection, parse_shard, selected
from journalq.state import JobSpec

EXIT_BUSY = 5
JOBS = [f"j{n}" for n in range(8)]


def finish(runner: object, timeout: float = 120) -> tuple[int, str]:
    """Wait for a background journalq; its exit code and stderr."""
    _, err = runner.communicate(timeout=timeout)  # type: ignore[attr-defined]
    return runner.returncode, err  # type: ignore[attr-defined]


def merged_status(project: Project, drive: Path) -> dict[str, object]:
    """`status --json` of the journal and the sync folder's copies together."""
    shown = project.command("status", "--config", project.config, "--sync-dir", str(drive),
                            "--json")
    assert 0 == shown.returncode, shown.stderr
    result: dict[str, object] = json.loads(shown.stdout)
    return result


def run_sessions(project: Project) -> list[str]:
    """The `run` sessions of this project's own runtime, in its journal."""
    return [e["session"] for e in project.events("session_started")
            if e["command"] == "run" and e["boot_id"] == project.boot]


# ---- the selection, as a pure function ------------------------------------------------------

def test_shards_split_the_queue_order_into_disjoint_parts() -> None:
    """Shards 0/3, 1/3 and 2/3 hold every job exactly once, by position in the queue order
    (not by the order jobs are listed in a selection)."""
    order = [f"j{n}" for n in range(10)]
    parts = [selected(order, Selection(shard=f"{k}/3")) for k in range(3)]

    assert ["j0", "j3", "j6", "j9"] == parts[0]
    assert sorted(order) == sorted(job for part in parts for job in part)
    assert ["j2", "j4"] == selected(order, Selection(jobs=("j4", "j2")))
    assert ["j1", "j4"] == selected(order, Selection(jobs=("j1", "j2", "j4"), shard="1/3"))
    assert ["j1", "j7"] == selected(order, Selection(only=("j1", "j7*")))


@pytest.mark.parametrize("text", ["2/2", "0/0", "-1/2", "1", "a/b", "1/2/3", " 0/2"])
def test_a_shard_that_is_not_k_of_n_is_refused(text: str) -> None:
    """`K/N` needs 0 <= K < N."""
    assert parse_shard(text) is None


def test_the_same_job_added_by_two_runtimes_is_no_anomaly() -> None:
    """Two runtimes that start a queue at once both add the config's jobs; the second
    identical `job_added` changes nothing and is not listed as an anomaly (another spec
    still is)."""
    spec = JobSpec.build(argv=("python", "w.py"), shell=False, cwd=".", env={},
                         out_dir="out/a", max_attempts=1, timeout=None)
    other = JobSpec.build(argv=("python", "w2.py"), shell=False, cwd=".", env={},
                          out_dir="out/a", max_attempts=1, timeout=None)

    def add(session: str, n: int, job_spec: JobSpec) -> ev.Event:
        return ev.JobAdded(job="a", id=f"{session}:{n}", ts=f"2024-01-01T00:00:0{n}.000000Z",
                           session=session, **policy.spec_fields(job_spec))

    same = fold.replay([add("aaaaaaaaaaaa", 1, spec), add("bbbbbbbbbbbb", 2, spec)])
    differs = fold.replay([add("aaaaaaaaaaaa", 1, spec), add("bbbbbbbbbbbb", 2, other)])

    assert () == same.anomalies
    assert spec.sha256 == same.jobs["a"].spec.sha256
    assert ["job added twice; the second spec is ignored"] == [
        a.message for a in differs.anomalies]
    assert spec.sha256 == differs.jobs["a"].spec.sha256


# ---- two runtimes, two shards ---------------------------------------------------------------

def two_shards(tmp_path: Path, views: tuple[Path, Path]) -> tuple[Project, Project,
                                                                   tuple[int, str],
                                                                   tuple[int, str]]:
    """Runtimes A and B start `--shard 0/2` and `--shard 1/2` of 8 jobs at the same moment
    on an empty sync folder, each with a journal it made alone from the config (so each
    added every job itself, as two notebooks started at once do)."""
    ledger = tmp_path / "ledger.log"
    a = Project(tmp_path / "A", JOBS, boot="machine-a", ledger=ledger)
    b = Project(tmp_path / "B", JOBS, boot="machine-b", ledger=ledger)
    for project in (a, b):
        made = project.command("init", "--config", project.config)
        assert 0 == made.returncode, made.stderr
    first = a.start("--sync-dir", str(views[0]), "--shard", "0/2", WORKER_SLEEP="0.2")
    second = b.start("--sync-dir", str(views[1]), "--shard", "1/2", WORKER_SLEEP="0.2")
    return a, b, finish(first), finish(second)


def test_two_runtimes_split_a_queue_by_shard(tmp_path: Path) -> None:
    """Shards 0/2 and 1/2 on two runtimes at once: both exit 0, each job ran exactly once
    (by the one that holds it), and the merged status is all done, without anomalies."""
    drive = tmp_path / "drive"
    a, b, (a_code, a_err), (b_code, b_err) = two_shards(tmp_path, (drive, drive))
    with a, b:
        assert 0 == a_code, a_err
        assert 0 == b_code, b_err
        assert Counter(JOBS) == Counter(job for job, _ in a.runs())
        assert {"j0", "j2", "j4", "j6"} == {e["job"] for e in a.events("job_started")
                                            if e["boot_id"] == a.boot}
        (a_session,) = run_sessions(a)
        started = next(e for e in a.events("session_started") if e["session"] == a_session)
        assert "0/2" == started["shard"]
        state = merged_status(a, drive)
        assert {"done": 8} == counts(state)  # type: ignore[arg-type]
        assert [] == state["anomalies"]
        assert merged_status(b, drive)["counts"] == state["counts"]


@pytest.mark.slow
def test_two_shards_behind_a_folder_that_lags_three_seconds(tmp_path: Path) -> None:
    """The same with each runtime seeing the other's copies 3 s late: the split needs no
    word between them, so still every job runs exactly once and both exit 0; once the
    copies have arrived, each side's merged status is all done."""
    with LaggingDrive(tmp_path / "drive", ["A", "B"], lag=3.0) as drive:
        views = (drive.view("A"), drive.view("B"))
        a, b, (a_code, a_err), (b_code, b_err) = two_shards(tmp_path, views)
        with a, b:
            assert 0 == a_code, a_err
            assert 0 == b_code, b_err
            assert Counter(JOBS) == Counter(job for job, _ in a.runs())
            time.sleep(drive.lag + 1)  # every copy has reached every view
            for project, view in ((a, views[0]), (b, views[1])):
                state = merged_status(project, view)
                assert {"done": 8} == counts(state)  # type: ignore[arg-type]
                assert [] == state["anomalies"]


# ---- overlapping selections -----------------------------------------------------------------

def test_the_later_of_two_overlapping_runners_leaves_the_overlap_to_the_earlier(
        tmp_path: Path) -> None:
    """A runs j0..j3; once its copy shows it running, B starts on j2..j5: B runs j4 and j5
    only (none of the overlap j2, j3, which A runs), and exits 5 naming A's session; A
    exits 0. Every job ran exactly once."""
    drive = tmp_path / "drive"
    ledger = tmp_path / "ledger.log"
    with Project(tmp_path / "A", JOBS, boot="machine-a", ledger=ledger) as a, \
            Project(tmp_path / "B", JOBS, boot="machine-b", ledger=ledger) as b:
        first = a.start("--sync-dir", str(drive), "j0", "j1", "j2", "j3", WORKER_SLEEP="0.5")
        wait_until(lambda: any(of_type(read_events(copy), "job_started")
                               for copy in drive.glob("q.*.jsonl")), "A's copy to show a start")
        second = b.start("--sync-dir", str(drive), "j2", "j3", "j4", "j5",
                         WORKER_SLEEP="0.1")
        b_code, b_err = finish(second)
        a_code, a_err = finish(first)

        assert 0 == a_code, a_err
        assert EXIT_BUSY == b_code, b_err
        (a_session,) = run_sessions(a)
        assert a_session in b_err
        assert "left it the 2 job(s) both selected" in b_err
        b_started = {e["job"] for e in b.events("job_started") if e["boot_id"] == b.boot}
        assert {"j4", "j5"} == b_started
        runs = Counter(job for job, _ in a.runs())
        assert Counter(["j0", "j1", "j2", "j3", "j4", "j5"]) == runs
        state = merged_status(a, drive)
        assert {"done": 6, "pending": 2} == counts(state)  # type: ignore[arg-type]


def test_disjoint_runners_never_wait_for_each_other(tmp_path: Path) -> None:
    """Runners whose selections do not overlap (j0 j1 and --only 'j[67]') both run
    alongside a live one and exit 0: only an overlap makes a runner yield."""
    drive = tmp_path / "drive"
    ledger = tmp_path / "ledger.log"
    with Project(tmp_path / "A", JOBS, boot="machine-a", ledger=ledger) as a, \
            Project(tmp_path / "B", JOBS, boot="machine-b", ledger=ledger) as b:
        first = a.start("--sync-dir", str(drive), "j0", "j1", WORKER_SLEEP="0.8")
        wait_until(lambda: any(of_type(read_events(copy), "job_started")
                               for copy in drive.glob("q.*.jsonl")), "A's copy to show a start")
        done = b.run("--sync-dir", str(drive), "--only", "j[67]", WORKER_SLEEP="0.1")
        a_code, a_err = finish(first)

        assert 0 == done.returncode, done.stderr
        assert 0 == a_code, a_err
        assert Counter(["j0", "j1", "j6", "j7"]) == Counter(job for job, _ in a.runs())


def test_a_runner_settles_and_waits_for_only_its_own_jobs_orphans(tmp_path: Path) -> None:
    """j0's runner was killed (its attempt is left running, its process gone). `run j1`
    neither refuses for want of --resume nor settles j0: j0 belongs to whoever selects it
    (in a job array, its own task's rerun, which settles it as `requeued`). `run j0 --resume`
    then settles it."""
    with Project(tmp_path, JOBS[:2]) as project:
        crashed = project.run("j0", JOURNALQ_FAILPOINT="after-card@j0")
        assert -9 == crashed.returncode

        other = project.run("j1")

        assert 0 == other.returncode, other.stderr
        assert [] == project.events("job_recovered")
        assert "running" == project.job("j0")["status"]
        own = project.run("j0", "--resume")
        assert 0 == own.returncode, own.stderr
        assert [("j0", "card")] == [(e["job"], e["reason"])
                                    for e in project.events("job_recovered")]
        assert Counter(JOBS[:2]) == Counter(job for job, _ in project.runs())


# ---- many sessions, one folder --------------------------------------------------------------

@pytest.mark.slow
def test_thirty_sessions_keep_the_folder_within_three_times_the_merged_journal(
        tmp_path: Path) -> None:
    """30 sequential `run JOB` sessions, each on its own machine with a fresh local journal
    (as a job array's tasks are), one sync folder: after every session the folder holds at
    most 3x the bytes of the merged journal (compaction deletes the copies of ended sessions
    that another copy covers), never more than 3 copies, and each job ran once.
    (tests/bench/bench_sessions.py runs 200 and times the pulls.)"""
    jobs = [f"s{n:02d}" for n in range(30)]
    drive = tmp_path / "drive"
    ledger = tmp_path / "ledger.log"
    with Project(tmp_path / "p", jobs, ledger=ledger) as project:
        for n, job in enumerate(jobs):
            state = tmp_path / "nodes" / job / "q.jsonl"
            done = project.command("run", "--config", project.config, "--quiet", "--sync-dir",
                                   str(drive), "--state", str(state), job,
                                   JOURNALQ_BOOT_ID=f"node-{n}")
            assert 0 == done.returncode, done.stderr
            copies = sorted(drive.glob("q.*.jsonl"))
            lines: dict[str, int] = {}
            for copy in copies:
                for line in copy.read_bytes().splitlines(keepends=True):
                    lines.setdefault(json.loads(line)["id"], len(line))
            held = sum(p.stat().st_size for p in drive.iterdir())
            assert held <= 3 * sum(lines.values()), (n, held, sum(lines.values()))
            assert len(copies) <= 3, (n, copies)
        assert Counter(jobs) == Counter(job for job, _ in project.runs())
        assert {"done": 30} == counts(merged_status(project, drive))
