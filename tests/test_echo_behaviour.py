"""What the terminal cannot do to a run (issue 10.1 and 10.2), through real runs: a job's
`\\r` progress output is kept byte for byte in its attempt's log, echo on or off; and with
nobody reading the runner's output (a pipe nobody drains, a terminal stopped by Ctrl-S),
job boundaries still reach the sync folder within a second, and Ctrl-C still stops the run
on time and journals the job `job_interrupted`.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest
from slots_support import SlotQueue, job

from conftest import write

# A tqdm-like job: 2 MB of `\r`-terminated updates with multi-byte bar characters, a
# newline now and then, and a last update with no newline; written in uneven pieces (a
# piece may end inside a character), and kept in <out_dir>/payload.bin to compare.
PROGRESS = r'''
import os
out = os.environ["JOURNALQ_OUT_DIR"]
os.makedirs(out, exist_ok=True)
pieces, total, n = [], 0, 0
while total < 2_000_000:
    piece = f"\r{n:07d} |{'█' * (n % 41)}{' ' * (40 - n % 41)}| {n % 100}%".encode()
    if n % 5000 == 4999:
        piece += b"\n"
    pieces.append(piece)
    total, n = total + len(piece), n + 1
payload = b"".join(pieces) + "\rdone █ 100%".encode()
with open(os.path.join(out, "payload.bin"), "wb") as kept:
    kept.write(payload)
view, at, step = memoryview(payload), 0, 1
while at < len(payload):
    size = 1 + (step * 7919) % 65000
    written = os.write(1, view[at:at + size])
    at, step = at + written, step + 1
'''


HEADER = (b"# journalq: job ", b"# command: ", b"# cwd: ", b"# started: ")


def log_body(log: bytes) -> bytes:
    """The job's output in an attempt's log: after the four header lines (`# journalq:`,
    `# command:`, `# cwd:`, `# started:`), before the `# exit:` trailer, which starts on a
    line of its own (so a log whose output did not end in a newline has one added)."""
    *header, rest = log.split(b"\n", 4)
    for line, start in zip(header, HEADER, strict=True):
        assert line.startswith(start), header
    trailer = rest.rindex(b"\n# exit: ")
    assert rest.endswith(b"\n") and rest.count(b"\n", trailer + 1) == 1, rest[-200:]
    return rest[:trailer]


@pytest.mark.parametrize("quiet", [False, True], ids=["echo", "quiet"])
def test_a_progress_bars_output_is_kept_byte_for_byte_in_the_log(project: Path,
                                                                 quiet: bool) -> None:
    """2 MB of `\\r` updates (multi-byte characters split between writes, a few newlines,
    no newline at the end): the attempt's log holds exactly those bytes between its
    header and its trailer, whether the run echoes them or not."""
    write(project / "scripts" / "progress.py", PROGRESS)
    bar = {"id": "bar", "command": ["python", "scripts/progress.py"]}
    with SlotQueue(project, [bar], name="e") as queue:
        done = queue.run(*(["--quiet"] if quiet else []))

        assert 0 == done.returncode, done.stderr
        payload = (queue.out_dir("bar") / "payload.bin").read_bytes()
        assert len(payload) > 2_000_000
        body = log_body(queue.log("bar").read_bytes())
        assert len(body) == len(payload)
        assert body == payload
        if not quiet:  # the updates were echoed too (prefixed: only the counts are ours)
            assert "done █ 100%" in done.stdout


def epoch(ts: str) -> float:
    """A journal timestamp as seconds since the epoch."""
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def pushed_late(queue: SlotQueue, folder: Path) -> list[tuple[str, str]]:
    """The job boundaries in the journal that did not reach the sync folder within
    1.25 s of their timestamps (one second, as the README says, plus this poll's slack)."""
    missing = []
    for event in queue.events():
        if event["type"] not in ("job_started", "job_finished"):
            continue
        deadline = epoch(str(event["ts"])) + 1.25
        while not any(event["id"] in copy.read_text() for copy in folder.glob("*.jsonl")):
            if time.time() > deadline:
                missing.append((str(event["job"]), str(event["type"])))
                break
            time.sleep(0.01)
    return missing


def stop_with_stdout_unread(queue: SlotQueue, folder: Path, *, share_stderr: bool,
                            grace: float) -> tuple[float, int, str, list[tuple[str, str]]]:
    """Start the run with stdout a pipe nobody reads (and stderr too, if `share_stderr`:
    a terminal stopped by Ctrl-S) and a sync folder; once the job has printed well past
    any pipe's buffer, see which job boundaries were not pushed in time, and SIGINT the
    runner; returns (seconds until it exited, its exit code, its stderr, the boundaries
    pushed late)."""
    runner = subprocess.Popen(queue.argv("--sync-dir", str(folder)), cwd=queue.project,
                              stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT if share_stderr else subprocess.PIPE,
                              env=queue.env())
    err: list[bytes] = []
    reader = None
    if not share_stderr:
        reader = threading.Thread(target=lambda: err.extend(runner.stderr or []))
        reader.start()
    try:
        deadline = time.monotonic() + 20
        while not any(e["job"] == "chatty" for e in queue.events("job_started")):
            assert time.monotonic() < deadline, "the job never started"
            time.sleep(0.05)
        time.sleep(2)  # it fills any pipe in milliseconds
        late = pushed_late(queue, folder)
        runner.send_signal(signal.SIGINT)
        sent = time.monotonic()
        while runner.poll() is None and time.monotonic() - sent < grace + 10:
            time.sleep(0.01)
        took = time.monotonic() - sent
    finally:
        if runner.poll() is None:
            runner.kill()
        assert runner.stdout is not None
        runner.stdout.read()  # only now is stdout read, so that nothing is left blocked
        runner.wait(timeout=30)
        if reader is not None:
            reader.join(timeout=10)
    return took, runner.returncode, b"".join(err).decode(errors="replace"), late


@pytest.mark.slow
@pytest.mark.parametrize("share_stderr", [False, True], ids=["stdout", "stdout+stderr"])
def test_ctrl_c_stops_a_run_whose_output_nobody_reads(project: Path,
                                                      share_stderr: bool) -> None:
    """A job printing without pause after one that ended at once, the runner's stdout
    (and in the second case its stderr too: a terminal stopped by Ctrl-S) unread: the
    first job's finish and the second's start still reach the sync folder within a second
    (the run loop pushes whatever the echo does), SIGINT ends the run within
    `grace_seconds` + 2 s, exit 130, and the job is journaled `job_interrupted`."""
    grace = 1.0
    jobs = [{"id": "quick", "command": ["true"]}, job("chatty", "--spam", "200")]
    with SlotQueue(project, jobs, heartbeat_seconds=0.5, grace_seconds=grace) as queue:
        took, code, err, late = stop_with_stdout_unread(
            queue, project / "drive", share_stderr=share_stderr, grace=grace)

        assert [] == late
        assert took <= grace + 2, (took, err)
        printed = int((queue.out_dir("chatty") / "printed").read_text())
        assert printed * 200 > 1 << 20  # far past any pipe's buffer: the echo was stalled
        assert 130 == code, err
        assert queue.events("job_interrupted"), queue.events()[-3:]
        assert ["quick"] == [e["job"] for e in queue.events("job_finished")]
