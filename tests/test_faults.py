"""A real `journalq` process meets a failing disk: the file size limit, a full disk, an fsync
that fails, a sync folder that drops out, a read-only folder. It either goes on (the sync
folder is only a copy) or stops with exit 4 and one line saying what happened, and the
journal is always left whole and readable.

Faults come from the kernel where a test can provoke them (RLIMIT_FSIZE, a full tmpfs or a
read-only bind mount in a private mount namespace, chmod), else from `tests/faultfs.py`
put behind journalq in the child (`python tests/faultfs.py --fail OP:ERRNO... -- ARGS`).
test_journal.py proves the writer's part in-process (a short write or ENOSPC is cut back
to the last whole line, a failed fsync stops the writer for good, a partial line that
cannot be removed is reported); test_run_crash.py proves a runner over the size limit
stops its job's processes. Here: what the user sees, and what is on disk after.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from test_run_support import SmallQueue, counts, wait_until

from conftest import journalq
from journalq import checkpoint

# Long crash, fault and multi-runtime scenarios: `pytest -m "not slow"` skips them.
pytestmark = pytest.mark.slow

FAULTFS = Path(__file__).resolve().parent / "faultfs.py"
JOURNAL = "runtime_state/q.jsonl"


def with_faults(queue: SmallQueue, *faults: str, args: list[str],
                **knobs: str) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:
    """`journalq ARGS` in a child with `faults` injected at its file-system seam; returns
    the finished process and every file operation it made."""
    log = queue.project / "faultfs-ops.jsonl"
    command = [sys.executable, str(FAULTFS), "--log", str(log)]
    for fault in faults:
        command += ["--fail", fault]
    done = subprocess.run([*command, "--", *args], cwd=queue.project, capture_output=True,
                          text=True, timeout=60, env={**os.environ, **queue.env(**knobs)})
    return done, [json.loads(line) for line in log.read_text().splitlines()]


def error_line(stderr: str) -> str:
    """The one `journalq: error:` line of a failed command (and no traceback)."""
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("journalq: error: ")]
    assert 1 == len(errors), stderr
    return errors[0]


def whole_and_readable(path: Path) -> None:
    """The journal ends in a whole line, replays without a tail, and `status` reads it."""
    data = path.read_bytes()
    assert data.endswith(b"\n")
    assert 0 == checkpoint.replay_anew(str(path))[1].tail_size
    status = journalq("status", "--state", str(path), "--json", cwd=path.parent.parent)
    assert 0 == status.returncode, status.stderr


def private_mounts() -> list[str] | None:
    """The command prefix that runs a child in a mount namespace of its own (as root, or
    in a user namespace), so it can mount without touching this machine; None if it can't."""
    if shutil.which("unshare") is None:
        return None
    prefix = ["unshare", "-m", "--propagation", "private"]
    if os.getuid() != 0:
        prefix.insert(1, "-r")
    probe = subprocess.run([*prefix, "sh", "-c", 'mount -t tmpfs tmpfs "$0"', "/mnt"],
                           capture_output=True, timeout=30)
    return prefix if probe.returncode == 0 else None


# ---- the file size limit: a short write, then EFBIG ----------------------------------------

@pytest.mark.parametrize("room", [0, 37], ids=["efbig", "short-write"])
def test_run_past_the_file_size_limit_stops_with_the_journal_whole(project: Path,
                                                                   room: int) -> None:
    """A runner whose journal reaches RLIMIT_FSIZE while a job runs (set on the live process
    at a whole line plus `room` bytes) fails the `job_finished` append, by EFBIG or by a
    short write, cuts it back, and exits 4 with one error line; the journal ends where the
    limit was set. The run card written before saves the attempt: `run --resume` settles
    it as done and does not run it again."""
    with SmallQueue(project, ["a", "b"], max_attempts=2, heartbeat_seconds=60) as queue:
        runner = queue.start("--quiet", WORKER_SLEEP="1", WORKER_SLEEP_MATCH="a")
        wait_until(lambda: queue.has_event("job_started", "a"), "job a to start")
        before = queue.journal.read_bytes()
        hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
        resource.prlimit(runner.pid, resource.RLIMIT_FSIZE, (len(before) + room, hard))
        _, err = runner.communicate(timeout=30)

        assert 4 == runner.returncode, err
        problem = "File too large" if room == 0 else f"only {room} of "
        assert error_line(err).startswith(f"journalq: error: cannot append to {JOURNAL}: "
                                          f"{problem}")
        assert "the partial line was removed" in err
        assert before == queue.journal.read_bytes()
        whole_and_readable(queue.journal)

        resumed = queue.run("--resume", "--quiet")

        assert 0 == resumed.returncode, resumed.stderr
        assert [("a", 1), ("b", 1)] == queue.runs()
        assert [("a", "card", "done")] == [(e["job"], e["reason"], e["to"])
                                           for e in queue.events("job_recovered")]


# ---- a full disk -----------------------------------------------------------------------------

def test_a_full_sync_folder_warns_once_and_the_run_goes_on(project: Path) -> None:
    """With the sync folder on a real full file system (a tmpfs filled up), every copy fails
    with ENOSPC: one warning says so, every job runs and is journaled locally, exit 0, and
    no half-written temp file is left in the folder."""
    prefix = private_mounts()
    if prefix is None:
        pytest.skip("cannot make a mount namespace here (needs unshare and root or userns)")
    with SmallQueue(project, ["a", "b", "c"]) as queue:
        drive = project / "full-sync"
        drive.mkdir()
        # Fill the tmpfs, run journalq, then list what is in it (it vanishes with the
        # namespace): the listing goes next to the folder, outside the tmpfs.
        script = ('mount -t tmpfs -o size=16k tmpfs "$0" || exit 99; '
                  'head -c 1000000 /dev/zero > "$0/fill" 2>/dev/null; '
                  '"$@"; code=$?; ls -A "$0" > "$0.listing"; exit $code')
        done = subprocess.run(
            [*prefix, "sh", "-c", script, str(drive), sys.executable, "-m", "journalq", "run",
             "--config", queue.config, "--quiet", "--sync-dir", str(drive)],
            cwd=project, capture_output=True, text=True, timeout=60,
            env={**os.environ, **queue.env()})

        assert 0 == done.returncode, done.stderr
        failed = [line for line in done.stderr.splitlines() if "cannot copy" in line]
        assert 1 == len(failed), done.stderr
        assert failed[0].startswith(f"journalq: warning: cannot copy the journal to {drive} "
                                    "(ENOSPC: No space left on device); ")
        assert "up to date again" not in done.stderr
        assert "fill\n" == Path(f"{drive}.listing").read_text()
        assert {"done": 3} == counts(queue.status())
        assert [("a", 1), ("b", 1), ("c", 1)] == queue.runs()


def test_a_full_disk_under_the_journal_stops_the_run_with_one_line(project: Path) -> None:
    """Once the journal's appends fail with ENOSPC (at the seam, from job a's finish on),
    the runner exits 4 with one line saying to free space, the journal holds only whole
    lines, and after space is freed `run --resume` settles job a from its run card."""
    with SmallQueue(project, ["a", "b"], heartbeat_seconds=60) as queue:
        assert 0 == journalq("init", "--config", queue.config, cwd=project).returncode

        done, ops = with_faults(queue, "write:ENOSPC:q.jsonl:2",
                                args=["run", "--config", queue.config, "--quiet"])

        assert 4 == done.returncode, done.stderr
        assert (f"journalq: error: cannot append to {JOURNAL}: No space left on device (disk "
                "full or file size limit?); the partial line was removed. Free space, then "
                "rerun") == error_line(done.stderr)
        assert ["session_started", "job_started"] == [e["type"] for e in queue.events()][-2:]
        writes = [op["error"] for op in ops if (op["name"], op["path"]) == ("write", JOURNAL)]
        assert ["", "", "ENOSPC", "ENOSPC"] == writes  # job_finished, then session_ended
        whole_and_readable(queue.journal)

        resumed = queue.run("--resume", "--quiet")

        assert 0 == resumed.returncode, resumed.stderr
        assert [("a", 1), ("b", 1)] == queue.runs()
        assert [("a", "card")] == [(e["job"], e["reason"])
                                   for e in queue.events("job_recovered")]


def test_no_room_to_keep_a_torn_tail_refuses_before_cutting_it(project: Path) -> None:
    """If the torn tail cannot be copied aside (ENOSPC at the seam), the runner refuses with
    one line and exit 4 before anything is cut or run; once there is room, the next run
    moves the tail aside and runs the jobs."""
    with SmallQueue(project, ["a"]) as queue:
        assert 0 == journalq("init", "--config", queue.config, cwd=project).returncode
        with queue.journal.open("ab") as handle:
            handle.write(b'{"type":"job_started","v":1,"id":"')
        before = queue.journal.read_bytes()

        done, ops = with_faults(queue, "write_file:ENOSPC:.torn-",
                                args=["run", "--config", queue.config, "--quiet"])

        assert 4 == done.returncode, done.stderr
        assert (f"journalq: error: cannot write {JOURNAL}: No space left on device; check the "
                "folder's permissions and free space") == error_line(done.stderr)
        assert before == queue.journal.read_bytes()
        assert [] == [op for op in ops if op["name"] in ("truncate", "write")]
        assert [] == queue.runs()

        again = queue.run("--quiet")

        assert 0 == again.returncode, again.stderr
        assert "moved them to" in again.stderr
        assert [("a", 1)] == queue.runs()
        whole_and_readable(queue.journal)


# ---- a failed fsync --------------------------------------------------------------------------

def test_a_failed_fsync_stops_the_run_at_once_and_is_never_retried(project: Path) -> None:
    """fsync of the journal fails once with EIO (at job a's finish): the runner writes
    nothing more to the journal, neither a retried fsync nor `session_ended`, and exits 4
    with one line saying the last event may not be on disk. The journal stays readable, and
    the next run goes on from it without running job a again."""
    with SmallQueue(project, ["a", "b", "c"], heartbeat_seconds=60) as queue:
        assert 0 == journalq("init", "--config", queue.config, cwd=project).returncode

        done, ops = with_faults(queue, "fsync:EIO:q.jsonl:2:1",
                                args=["run", "--config", queue.config, "--quiet"])

        assert 4 == done.returncode, done.stderr
        assert (f"journalq: error: fsync of {JOURNAL} failed (EIO: Input/output error); the "
                "last event may not be on disk and journalq will not write again in this "
                "process. Check the disk (dmesg), then run `journalq status`") == error_line(
            done.stderr)
        on_journal = [(op["name"], op["error"]) for op in ops if op["path"] == JOURNAL
                      and op["name"] in ("write", "fsync")]
        assert [("write", ""), ("fsync", ""), ("write", ""), ("fsync", ""), ("write", ""),
                ("fsync", "EIO")] == on_journal  # session, a started, a finished: then nothing
        assert [("a", 1)] == queue.runs()
        whole_and_readable(queue.journal)

        resumed = queue.run("--resume", "--quiet")

        assert 0 == resumed.returncode, resumed.stderr
        assert [("a", 1), ("b", 1), ("c", 1)] == queue.runs()
        assert {"done": 3} == counts(queue.status())


# ---- the sync folder drops out ---------------------------------------------------------------

@pytest.mark.parametrize(("op", "code"), [
    ("write_file", "ENOTCONN"),
    ("replace", "EIO"),
    ("fsync_dir", "EIO"),
    ("write_file", "ENOSPC"),
])
def test_sync_folder_errors_warn_once_and_the_next_boundary_retries(
        project: Path, op: str, code: str) -> None:
    """The second and third copies to the sync folder fail (Drive's FUSE mount answering
    ENOTCONN or EIO, or a full Drive) at any step of the copy: the run goes on, one warning
    names the error, the next job boundary copies again and says the copy is up to date,
    and no temp file is left behind."""
    with SmallQueue(project, ["a", "b", "c"], heartbeat_seconds=60) as queue:
        drive = project / "gdrive-sync"

        # Jobs longer than PUSH_GAP (1 s), so that every boundary makes a push of its own.
        done, ops = with_faults(queue, f"{op}:{code}:gdrive-sync:1:2",
                                args=["run", "--config", queue.config, "--quiet",
                                      "--sync-dir", str(drive)], WORKER_SLEEP="1.2")

        assert 0 == done.returncode, done.stderr
        failed = [line for line in done.stderr.splitlines() if "cannot copy" in line]
        assert 1 == len(failed), done.stderr
        assert failed[0].startswith(f"journalq: warning: cannot copy the journal to {drive} "
                                    f"({code}: ")
        assert 1 == done.stderr.count("is up to date again"), done.stderr
        assert 2 == len([o for o in ops if o["name"] == op and o["error"] == code])
        [copy] = [p for p in drive.iterdir()]
        assert queue.journal.read_bytes() == copy.read_bytes()
        assert {"done": 3} == counts(queue.status())
        assert [("a", 1), ("b", 1), ("c", 1)] == queue.runs()


# ---- a read-only folder ----------------------------------------------------------------------

STATUS = ["status", "--state", JOURNAL, "--json"]
WRITERS = [["init", "--config", "configs/q.yaml"], ["run", "--config", "configs/q.yaml"],
           ["cancel", "--state", JOURNAL, "b"], ["recover", "--state", JOURNAL]]


@pytest.mark.parametrize("via", ["real", "seam"])
def test_a_journal_in_a_read_only_folder_is_read_but_never_written(project: Path,
                                                                   via: str) -> None:
    """With the journal's folder read-only (really: chmod when not root, a read-only bind
    mount as root; or EROFS from the seam), `status` works as before, and every command
    that would write exits 4 with one line naming the journal, leaving every file as it
    was."""
    with SmallQueue(project, ["a", "b"]) as queue:
        assert 1 == queue.run("--quiet", WORKER_FAIL_MATCH="a").returncode  # a failed
        folder = queue.journal.parent
        before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
        expected = json.loads(journalq(*STATUS, cwd=project).stdout)
        prefix = private_mounts() if via == "real" and os.getuid() == 0 else None
        if via == "seam":
            how = "seam"
        elif os.getuid() != 0:
            how = "chmod"
            for name in before:
                (folder / name).chmod(0o444)
            folder.chmod(0o555)
        elif prefix:
            how = "bind mount"
        else:
            pytest.skip("root, and no mount namespace for a read-only bind mount")
        try:
            for args in [STATUS, *WRITERS]:
                if how == "bind mount":
                    assert prefix is not None
                    script = ('mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && '
                              'exec "$@"')
                    done = subprocess.run(
                        [*prefix, "sh", "-c", script, str(folder), sys.executable, "-m",
                         "journalq", *args], cwd=project, capture_output=True, text=True,
                        timeout=60, env={**os.environ, **queue.env()})
                elif how == "seam":
                    done, _ = with_faults(queue, "open_append:EROFS", "write_file:EROFS",
                                          args=args)
                else:
                    done = journalq(*args, cwd=project, env=queue.env())

                if args[0] == "status":
                    assert 0 == done.returncode, done.stderr
                    assert expected == json.loads(done.stdout)
                    continue
                assert 4 == done.returncode, f"{how} {args}: {done.stderr}"
                line = error_line(done.stderr)
                assert JOURNAL in line, line
                assert any(reason in line for reason in (
                    "Read-only file system", "Permission denied")), line
        finally:
            folder.chmod(0o755)
            for name in before:
                (folder / name).chmod(0o644)

        after = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
        if how == "seam":  # the lock file is not written through the seam: its holder note is
            before.pop("q.jsonl.lock")  # rewritten by each command, as on a writable disk
            after.pop("q.jsonl.lock")
        assert before == after
        assert [("a", 1), ("b", 1)] == queue.runs()
