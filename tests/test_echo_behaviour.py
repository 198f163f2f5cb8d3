"""What the terminal cannot do to a run (issue 10.1 and 10.2), through real runs: a job's
`\\r` progress output is kept byte for byte in its attempt's log, echo on or off; and with
nobody reading the runner's output (a pipe nobody drains, a terminal stopped by Ctrl-S),
Ctrl-C still stops the run on time and journals the job `job_interrupted`.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
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


def stop_with_stdout_unread(queue: SlotQueue, *, share_stderr: bool,
                            grace: float) -> tuple[float, int, str]:
    """Start the run with stdout a pipe nobody reads (and stderr too, if `share_stderr`:
    a terminal stopped by Ctrl-S); once the job has printed well past any pipe's buffer,
    SIGINT the runner; returns (seconds until it exited, its exit code, its stderr)."""
    runner = subprocess.Popen(queue.argv(), cwd=queue.project, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT if share_stderr else subprocess.PIPE,
                              env=queue.env())
    err: list[bytes] = []
    reader = None
    if not share_stderr:
        reader = threading.Thread(target=lambda: err.extend(runner.stderr or []))
        reader.start()
    try:
        deadline = time.monotonic() + 20
        while not queue.events("heartbeat") or len(queue.events("heartbeat")) < 3:
            assert time.monotonic() < deadline, "the job never got going"
            time.sleep(0.05)
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
    return took, runner.returncode, b"".join(err).decode(errors="replace")


@pytest.mark.slow
@pytest.mark.parametrize("share_stderr", [False, True], ids=["stdout", "stdout+stderr"])
def test_ctrl_c_stops_a_run_whose_output_nobody_reads(project: Path,
                                                      share_stderr: bool) -> None:
    """A job printing without pause, the runner's stdout (and in the second case its
    stderr too: a terminal stopped by Ctrl-S) unread: SIGINT ends the run within
    `grace_seconds` + 2 s, exit 130, and the job is journaled `job_interrupted`."""
    grace = 1.0
    with SlotQueue(project, [job("chatty", "--spam", "200")], heartbeat_seconds=0.5,
                   grace_seconds=grace) as queue:
        took, code, err = stop_with_stdout_unread(queue, share_stderr=share_stderr,
                                                  grace=grace)

        printed = int((queue.out_dir("chatty") / "printed").read_text())
        assert printed * 200 > 1 << 20  # far past any pipe's buffer: the echo was stalled
        assert took <= grace + 2, (took, err)
        assert 130 == code, err
        assert queue.events("job_interrupted"), queue.events()[-3:]
        assert [] == queue.events("job_finished")
