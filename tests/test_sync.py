"""A batch survives any number of dead Colab runtimes through a sync folder (Drive).

Each runtime here is a folder of its own (configs/, scripts/run_sweep.py = the test worker,
its own runtime_state/) and its own machine identity (JOURNALQ_BOOT_ID); the sync folder D
plays Google Drive. Runtimes are real `journalq` processes, killed with a real SIGKILL, and
a dead runtime's folder is deleted: only D (with the outputs and logs folders the README
puts inside it) outlives it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO, WORKER, events, journalq, spawn
from journalq import checkpoint, clock, copyreader, timestamps
from journalq import copies as copies_
from journalq.errors import EXIT_BUSY, EXIT_JOURNAL
from journalq.fold import replay
from journalq.fs import REAL
from journalq.opened import load_config
from journalq.reader import Reader
from journalq.state import Queue

# Long crash, fault and multi-runtime scenarios: `pytest -m "not slow"` skips them.
pytestmark = pytest.mark.slow

CONFIG = "configs/experiments/colab_batch_a.yaml"
QUEUE = "colab_batch_a"
JOBS = list(load_config(str(REPO / CONFIG)).jobs)  # queue order: JOBS[3] is the 4th job
# WORKER_SLEEP_MATCH for the 3rd and 4th jobs only (gpt2-medium-L8-12-* does not match).
THIRD_AND_FOURTH = "gpt2-L8-12-"
POLL_SECONDS = 0.02


# ---- helpers -------------------------------------------------------------------------------

def wait_until(condition: Callable[[], Any], what: str, timeout: float = 20) -> Any:
    """Poll `condition` until it returns something true, and return that."""
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(POLL_SECONDS)
    return found


def copies(drive: Path) -> list[Path]:
    """The journal copies in the sync folder, by name."""
    if not drive.is_dir():
        return []
    return sorted(p for p in drive.iterdir() if p.name.startswith(f"{QUEUE}.")
                  and p.name.endswith(".jsonl"))


def parse(data: bytes) -> list[dict[str, Any]]:
    """The complete lines of a journal's bytes, parsed."""
    return [json.loads(line) for line in data.split(b"\n")[:-1] if line.strip()]


def drive_events(drive: Path) -> list[dict[str, Any]]:
    """Every event of every copy in the sync folder (duplicates included)."""
    return [event for path in copies(drive) for event in events(path)]


def has(found: list[dict[str, Any]], kind: str, job: str) -> bool:
    """Whether the events hold one of type `kind` about `job`."""
    return any(e["type"] == kind and e.get("job") == job for e in found)


def entries(path: Path) -> list[copies_.Entry]:
    """A copy's events as the merge reads them."""
    return [copies_.Entry.of(event, line, str(path))
            for line, event in Reader(str(path), REAL).entries()]


def merged(paths: list[Path]) -> list[copies_.Entry]:
    """The union of the copies' events, as `pull` would append them."""
    every = [entry for path in paths for entry in entries(path)]
    copyreader.refuse_conflicts(copies_.conflicts(every))
    return copies_.extend({}, every)


def fold(paths: list[Path]) -> Queue:
    """The queue the merged copies describe."""
    return replay(entry.decoded() for entry in merged(paths))


def ids(paths: list[Path]) -> set[str]:
    """The event ids the copies hold together."""
    return {str(event["id"]) for path in paths for event in events(path)}


def is_worker(pid: int) -> bool:
    """Whether `pid` is a live test worker (so killing its group hits nothing else)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX" and b"run_sweep.py" in cmdline


class Runtime:
    """One Colab runtime: a local folder, a machine identity, and the processes it started.

    With `on_drive`, runtime_state/outputs and the queue's log folder are symlinks into the
    sync folder, as the README's Colab cell makes them, so run cards outlive the runtime.
    """

    def __init__(self, root: Path, name: str, drive: Path, on_drive: bool = False) -> None:
        self.name = name
        self.folder = root / name
        self.drive = drive
        self.runs_log = root / f"runs-{name}.log"
        shutil.copytree(REPO / "configs", self.folder / "configs")
        (self.folder / "scripts").mkdir()
        shutil.copy(WORKER, self.folder / "scripts" / "run_sweep.py")
        if on_drive:
            for shared in ("outputs", "logs"):
                (drive / shared).mkdir(parents=True, exist_ok=True)
            (self.folder / "runtime_state" / "logs").mkdir(parents=True)
            (self.folder / "runtime_state" / "outputs").symlink_to(drive / "outputs")
            (self.folder / "runtime_state" / "logs" / QUEUE).symlink_to(drive / "logs")
        self.journal = self.folder / "runtime_state" / f"{QUEUE}.jsonl"
        self.runners: list[subprocess.Popen[str]] = []

    def env(self, **knobs: str) -> dict[str, str]:
        """Its machine identity, and the worker logging each real run of a job."""
        return {"JOURNALQ_BOOT_ID": f"machine-{self.name}", "WORKER_LOG": str(self.runs_log),
                **knobs}

    def command(self, *args: str, **knobs: str) -> subprocess.CompletedProcess[str]:
        """Any journalq command, run to its end in this runtime."""
        return journalq(*args, cwd=self.folder, env=self.env(**knobs), timeout=60)

    def run(self, *args: str, **knobs: str) -> subprocess.CompletedProcess[str]:
        """`journalq run` of batch A with the sync folder, to its end."""
        return self.command("run", "--config", CONFIG, "--sync-dir", str(self.drive),
                            "--quiet", *args, **knobs)

    def start(self, *args: str, **knobs: str) -> subprocess.Popen[str]:
        """`journalq run` of batch A with the sync folder, in the background."""
        runner = spawn("run", "--config", CONFIG, "--sync-dir", str(self.drive), "--quiet",
                       *args, cwd=self.folder, env=self.env(**knobs))
        self.runners.append(runner)
        return runner

    def runs(self) -> list[tuple[str, int]]:
        """Every real start of the worker in this runtime, as (job, attempt), in order."""
        if not self.runs_log.exists():
            return []
        rows = [line.split() for line in self.runs_log.read_text().splitlines()]
        return [(job, int(attempt)) for job, attempt, _ in rows]

    def worker_pid(self, job: str) -> int:
        """The pid of the job's newest worker, once it has started."""
        def started() -> int | None:
            if not self.runs_log.exists():
                return None
            rows = [line.split() for line in self.runs_log.read_text().splitlines()]
            return next((int(pid) for name, _, pid in reversed(rows) if name == job), None)

        pid: int = wait_until(started, f"{job}'s worker to start in runtime {self.name}")
        return pid

    def die_during(self, job: str) -> bytes:
        """Wait until `job` is running and its start reached the sync folder, then SIGKILL
        the runner and the job (the VM is gone); returns its copy in the folder as of then."""
        def copy_with_start() -> Path | None:
            return next((path for path in copies(self.drive)
                         if has(events(path), "job_started", job)), None)

        copy: Path = wait_until(copy_with_start, f"{job}'s start to reach the sync folder")
        worker = self.worker_pid(job)
        for runner in self.runners:
            runner.kill()
            runner.communicate(timeout=10)
        if is_worker(worker):
            os.killpg(worker, signal.SIGKILL)
        return copy.read_bytes()

    def vanish(self) -> None:
        """The runtime's disk is gone with it."""
        shutil.rmtree(self.folder)

    def kill_everything(self) -> None:
        """SIGKILL whatever this runtime still runs (a failed test must not leak processes)."""
        for runner in self.runners:
            if runner.poll() is None:
                runner.kill()
            with contextlib.suppress(subprocess.TimeoutExpired, ValueError):
                runner.communicate(timeout=10)
        if self.runs_log.exists():
            for line in self.runs_log.read_text().splitlines():
                pid = int(line.split()[2])
                if is_worker(pid):
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(pid, signal.SIGKILL)


class Colab:
    """Runtimes that come and go around one sync folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.drive = root / "drive" / QUEUE
        self.runtimes: list[Runtime] = []

    def runtime(self, name: str, on_drive: bool = False) -> Runtime:
        """A fresh runtime (a new VM: empty local disk, another machine id)."""
        made = Runtime(self.root, name, self.drive, on_drive)
        self.runtimes.append(made)
        return made


@pytest.fixture
def colab(tmp_path: Path) -> Iterator[Colab]:
    """Runtimes around one sync folder; every process they started is killed at the end."""
    world = Colab(tmp_path)
    try:
        yield world
    finally:
        for runtime in world.runtimes:
            runtime.kill_everything()


def status(runtime: Runtime, *args: str) -> dict[str, Any]:
    """`journalq status --json` in a runtime."""
    shown = runtime.command("status", "--config", CONFIG, "--json", *args)
    assert 0 == shown.returncode, shown.stderr
    result: dict[str, Any] = json.loads(shown.stdout)
    return result


def counts(state: dict[str, Any]) -> dict[str, int]:
    """The non-zero status counts of `status --json`."""
    return {name: n for name, n in state["counts"].items() if n}


def job_of(state: dict[str, Any], job_id: str) -> dict[str, Any]:
    """One job of `status --json`."""
    return next(job for job in state["jobs"] if job["id"] == job_id)


def write_atomically(path: Path, data: bytes) -> None:
    """Replace a file whole, as Drive shows a synced file."""
    temp = path.with_name(f".{path.name}.restore")
    temp.write_bytes(data)
    os.replace(temp, path)


# ---- two runtimes --------------------------------------------------------------------------

def test_a_second_runtime_finishes_the_batch_from_the_sync_folder_alone(colab: Colab) -> None:
    """Runtime A dies mid-job and its disk is gone; runtime B, starting from the sync
    folder alone, reruns no job whose finish reached the folder, runs the killed job once
    more (max_attempts 2), and finishes the batch; the copies fold the same in any order."""
    a = colab.runtime("A")
    a.start(WORKER_SLEEP="30", WORKER_SLEEP_MATCH=JOBS[3])
    at_death = parse(a.die_during(JOBS[3]))
    a.vanish()
    b = colab.runtime("B")

    resumed = b.run("--resume", "--force")

    assert 0 == resumed.returncode, resumed.stderr
    finished_in_drive = [e["job"] for e in at_death if e["type"] == "job_finished"]
    assert JOBS[:3] == finished_in_drive
    assert [(job, 1) for job in JOBS[:4]] == a.runs()
    assert [(JOBS[3], 2)] + [(job, 1) for job in JOBS[4:]] == b.runs()
    state = status(b)
    assert {"done": 12} == counts(state)
    killed = job_of(state, JOBS[3])
    assert [(1, "failed", "forced"), (2, "done", "exit")] == [
        (t["attempt"], t["outcome"], t["reason"]) for t in killed["attempts"]]
    in_drive = copies(colab.drive)
    assert 2 == len(in_drive)
    forward, backward = fold(in_drive), fold(in_drive[::-1])
    assert forward == backward
    assert checkpoint.replay_anew(str(b.journal))[0].queue() == forward


def test_a_runner_heard_from_recently_blocks_a_second_runtime(colab: Colab) -> None:
    """While A's last sign of life in the sync folder is younger than stale_seconds, B
    refuses (exit 5) naming A's host and how long ago it was heard from, and runs and
    copies nothing; once A is older than --stale-seconds, B resumes without --force."""
    a = colab.runtime("A")
    a.start(WORKER_SLEEP="30", WORKER_SLEEP_MATCH=JOBS[0])
    a.die_during(JOBS[0])
    a.vanish()
    (a_copy,) = copies(colab.drive)
    a_session = next(e for e in events(a_copy) if e["type"] == "session_started")
    b = colab.runtime("B")

    refused = b.run("--resume")

    assert EXIT_BUSY == refused.returncode, refused.stderr
    (error,) = [line for line in refused.stderr.splitlines() if "journalq: error:" in line]
    match = re.search(r"session (\w+) on (\S+), last heard from (\S+) ago", error)
    assert match, error
    assert (a_session["session"], a_session["host"]) == match.group(1, 2)
    assert "--force" in error
    assert [] == b.runs()
    assert [a_copy] == copies(colab.drive)

    last_heard = max(timestamps.parse_ts_micros(str(e["ts"])) for e in events(a_copy))
    wait_until(lambda: clock.now_micros() > last_heard + 600_000, "A to be 0.6 s silent")
    resumed = b.run("--resume", "--stale-seconds", "0.5")

    assert 0 == resumed.returncode, resumed.stderr
    assert [(JOBS[0], 2)] + [(job, 1) for job in JOBS[1:]] == b.runs()
    recovered = [e for e in events(b.journal) if e["type"] == "job_recovered"]
    assert [(JOBS[0], 1, "stale", "pending")] == [
        (e["job"], e["attempt"], e["reason"], e["to"]) for e in recovered]


def test_a_lagging_sync_folder_reruns_only_jobs_without_finish_or_card(colab: Colab) -> None:
    """Drive kept an older copy of A: the 3rd job's finish and the 4th job never reached
    it. With outputs and logs on Drive (as the README sets them up), the 3rd job's run card
    settles it (reason `card`) and it is not rerun; the 4th, with neither a finish in the
    folder nor a card, is, and its rerun's log does not overwrite the killed attempt's."""
    a = colab.runtime("A", on_drive=True)
    a.start(WORKER_SLEEP="1.5", WORKER_SLEEP_MATCH=THIRD_AND_FOURTH)
    (a_copy,) = wait_until(lambda: copies(colab.drive), "A's first copy")

    def copy_with_third_started() -> bytes | None:
        data = a_copy.read_bytes()
        return data if has(parse(data), "job_started", JOBS[2]) else None

    old = wait_until(copy_with_third_started, f"{JOBS[2]} to start")
    a.die_during(JOBS[3])
    a.vanish()
    write_atomically(a_copy, old)
    b = colab.runtime("B", on_drive=True)

    resumed = b.run("--resume", "--force")

    assert 0 == resumed.returncode, resumed.stderr
    assert JOBS[:2] == [e["job"] for e in parse(old) if e["type"] == "job_finished"]
    assert [(job, 1) for job in JOBS[:4]] == a.runs()
    assert [(job, 1) for job in JOBS[3:]] == b.runs()
    recovered = [e for e in events(b.journal) if e["type"] == "job_recovered"]
    assert [(JOBS[2], 1, "card", "done")] == [
        (e["job"], e["attempt"], e["reason"], e["to"]) for e in recovered]
    assert {"done": 12} == counts(status(b))
    assert (colab.drive / "outputs" / QUEUE / JOBS[2] / "journalq-run.toml").exists()
    assert 2 == len(list((colab.drive / "logs" / JOBS[3]).iterdir()))


# ---- Drive failures ------------------------------------------------------------------------

def break_by_file(drive: Path, away: Path) -> None:
    """The folder's path now names a regular file: every write into it fails."""
    drive.rename(away)
    drive.write_text("not a folder\n")


def break_by_vanishing(drive: Path, away: Path) -> None:
    """The folder is gone (Drive unmounted under us)."""
    drive.rename(away)


@pytest.mark.parametrize("breakage", [break_by_file, break_by_vanishing],
                         ids=["replaced-by-a-file", "vanished"])
def test_a_drive_outage_mid_run_warns_once_and_recovers(
        colab: Colab, breakage: Callable[[Path, Path], None]) -> None:
    """When the sync folder cannot be written mid-run, the jobs go on, one warning line says
    the copy failed and how to remount, the runner never recreates a vanished folder, and
    the first boundary after the folder is back brings its copy up to date."""
    a = colab.runtime("A")
    runner = a.start(WORKER_SLEEP="1", WORKER_SLEEP_MATCH=THIRD_AND_FOURTH)
    wait_until(lambda: has(drive_events(colab.drive), "job_started", JOBS[2]),
               f"{JOBS[2]}'s start to reach the sync folder")
    away = colab.drive.with_name("drive-away")
    breakage(colab.drive, away)
    # Pushes closer than PUSH_GAP (1 s) share one: by the 5th job's start, one push fell
    # during the 4th job (1 s long) and failed.
    wait_until(lambda: a.journal.exists() and has(events(a.journal), "job_started", JOBS[4]),
               f"{JOBS[4]} to start")
    was_file = colab.drive.is_file()
    if was_file:
        colab.drive.unlink()
    assert not colab.drive.exists(), "the runner recreated the sync folder"
    away.rename(colab.drive)

    _, err = runner.communicate(timeout=60)

    assert 0 == runner.returncode, err
    failed = [line for line in err.splitlines() if "cannot copy the journal" in line]
    assert 1 == len(failed), err
    assert failed[0].startswith("journalq: warning: ")
    assert "force_remount=True" in failed[0]
    back = [line for line in err.splitlines() if "up to date again" in line]
    assert 1 == len(back), err
    assert err.index(failed[0]) < err.index(back[0])
    (copy,) = copies(colab.drive)
    assert a.journal.read_bytes() == copy.read_bytes()
    assert {"done": 12} == counts(status(a))
    assert [(job, 1) for job in JOBS] == a.runs()


@pytest.mark.parametrize("command", [["run", "--quiet"], ["init"], ["sync"]])
@pytest.mark.parametrize("where", ["a-file", "under-a-file"])
def test_an_unreadable_sync_folder_stops_a_command_before_it_writes(
        colab: Colab, command: list[str], where: str) -> None:
    """A --sync-dir that cannot be a folder (a file, or a path through a file) ends the
    command with one `journalq: error:` line and exit 4, before anything is written
    locally: no journal, no lock file, no runtime_state/."""
    a = colab.runtime("A")
    colab.drive.parent.mkdir(parents=True)
    colab.drive.write_text("a file, not a folder\n")
    sync_dir = colab.drive if where == "a-file" else colab.drive / "sub"

    done = a.command(*command, "--config", CONFIG, "--sync-dir", str(sync_dir))

    assert EXIT_JOURNAL == done.returncode, done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"journalq: error: cannot read the sync folder {sync_dir} ")
    assert "" == done.stdout
    assert not (a.folder / "runtime_state").exists()
    assert [] == a.runs()


# ---- sync and status on demand -------------------------------------------------------------

def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder`, by relative path, with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_sync_pushes_and_pulls_and_status_merges_without_writing(colab: Colab) -> None:
    """`journalq sync` copies the local journal into the folder and merges the folder's
    copies into it; `status --sync-dir` shows the merged queue but writes nothing, neither
    locally nor in the folder."""
    x = colab.runtime("X")
    y = colab.runtime("Y")
    state = "runtime_state/colab_batch_a.jsonl"
    assert 0 == x.command("init", "--config", CONFIG).returncode
    assert [] == copies(colab.drive)

    pushed = x.command("sync", "--state", state, "--sync-dir", str(colab.drive))

    assert 0 == pushed.returncode, pushed.stderr
    (x_copy,) = copies(colab.drive)
    assert x.journal.read_bytes() == x_copy.read_bytes()
    cancelled = y.command("cancel", "--config", CONFIG, "--sync-dir", str(colab.drive),
                          JOBS[5])
    assert 0 == cancelled.returncode, cancelled.stderr
    assert 2 == len(copies(colab.drive))
    local_before, drive_before = snapshot(x.folder), snapshot(colab.drive)

    shown = x.command("status", "--state", state, "--sync-dir", str(colab.drive), "--json")

    assert 0 == shown.returncode, shown.stderr
    assert "cancelled" == job_of(json.loads(shown.stdout), JOBS[5])["status"]
    assert local_before == snapshot(x.folder)
    assert drive_before == snapshot(colab.drive)
    assert "pending" == job_of(status(x), JOBS[5])["status"]

    pulled = x.command("sync", "--state", state, "--sync-dir", str(colab.drive))

    assert 0 == pulled.returncode, pulled.stderr
    assert "cancelled" == job_of(status(x), JOBS[5])["status"]
    assert ids(copies(colab.drive)) == {str(e["id"]) for e in events(x.journal)}
    assert x.journal.read_bytes() in [copy.read_bytes() for copy in copies(colab.drive)]


# ---- merge errors and duplicates -----------------------------------------------------------

def test_one_event_id_with_two_contents_is_an_error_naming_both_files(colab: Colab) -> None:
    """Two copies that disagree about one event cannot both be history: the union fails
    naming the event and both files, so does reading the folder (exit 4, naming both
    copies), and `sync` merges nothing into the local journal."""
    x, y = colab.runtime("X"), colab.runtime("Y")
    assert 0 == x.command("init", "--config", CONFIG, "--sync-dir",
                          str(colab.drive)).returncode
    (original,) = copies(colab.drive)
    lines = original.read_bytes().split(b"\n")
    number = next(i for i, line in enumerate(lines) if b'"job_added"' in line)
    edited = json.loads(lines[number])
    edited["timeout"] = 60.0
    lines[number] = json.dumps(edited).encode()
    forged = colab.drive / f"{QUEUE}.ffffffffffff.jsonl"
    forged.write_bytes(b"\n".join(lines))
    local_before = x.journal.read_bytes()

    with pytest.raises(copyreader.SyncError) as caught:
        merged([original, forged])
    shown = y.command("status", "--config", CONFIG, "--sync-dir", str(colab.drive))
    pulled = x.command("sync", "--config", CONFIG, "--sync-dir", str(colab.drive))

    assert str(original) in caught.value.message
    assert str(forged) in caught.value.message
    assert edited["id"] in caught.value.message
    for done, other in ((shown, str(original)), (pulled, str(original))):
        assert EXIT_JOURNAL == done.returncode, done.stderr
        (line,) = done.stderr.splitlines()
        assert line.startswith(f"journalq: error: event {edited['id']} differs between ")
        assert other in line
        assert str(forged) in line
    assert local_before == x.journal.read_bytes()
    assert not y.journal.exists()


def test_identical_duplicates_are_merged_once(colab: Colab) -> None:
    """The same events in two copies, even written with another key order, are one history:
    the union holds each id once and `sync` adds nothing to a journal that has them all."""
    x = colab.runtime("X")
    assert 0 == x.command("init", "--config", CONFIG, "--sync-dir",
                          str(colab.drive)).returncode
    (original,) = copies(colab.drive)
    reordered = colab.drive / f"{QUEUE}.eeeeeeeeeeee.jsonl"
    reordered.write_text("".join(json.dumps(e, sort_keys=True) + "\n"
                                 for e in events(original)))
    local_before = x.journal.read_bytes()
    held = [e["id"] for e in events(original)]

    union = merged([original, reordered])
    alone, doubled = fold([original]), fold([original, reordered])
    pulled = x.command("sync", "--config", CONFIG, "--sync-dir", str(colab.drive))

    assert held == [entry.id for entry in union]
    assert alone == doubled
    assert 0 == pulled.returncode, pulled.stderr
    assert "merged" not in pulled.stderr
    assert local_before == x.journal.read_bytes()[:len(local_before)]
    added = parse(x.journal.read_bytes()[len(local_before):])
    assert ["session_started", "session_ended"] == [e["type"] for e in added]


# ---- compaction ----------------------------------------------------------------------------

def test_compaction_removes_only_covered_copies_of_ended_sessions(colab: Colab) -> None:
    """Short sessions on alternating runtimes leave at most the two newest copies of ended
    sessions (plus the copy of a runner that never ended, which may still write again);
    no event ever leaves the folder."""
    killed = colab.runtime("K")
    killed.start(WORKER_SLEEP="30", WORKER_SLEEP_MATCH=JOBS[0])
    killed.die_during(JOBS[0])
    killed.vanish()
    (unended,) = copies(colab.drive)
    x, y = colab.runtime("X"), colab.runtime("Y")
    steps = [
        (x, ["sync", "--config", CONFIG]),
        (y, ["cancel", "--config", CONFIG, JOBS[1]]),
        (x, ["retry", "--config", CONFIG, JOBS[1]]),
        (y, ["cancel", "--config", CONFIG, JOBS[2]]),
        (x, ["recover", "--config", CONFIG, "--force"]),
        (y, ["sync", "--config", CONFIG]),
        (x, ["retry", "--config", CONFIG, JOBS[2]]),
    ]
    made: list[Path] = []
    for runtime, args in steps:
        before = ids(copies(colab.drive))

        done = runtime.command(*args, "--sync-dir", str(colab.drive))

        assert 0 == done.returncode, (args, done.stderr)
        now = copies(colab.drive)
        assert before <= ids(now), args
        assert {str(e["id"]) for e in events(runtime.journal)} == ids(now), args
        (new,) = set(now) - {unended, *made}
        made.append(new)
        assert {unended, *made[-2:]} == set(now), args

    state = status(x)
    assert {"pending": 12} == counts(state)
    assert [(1, "failed", "forced")] == [
        (t["attempt"], t["outcome"], t["reason"]) for t in job_of(state, JOBS[0])["attempts"]]
