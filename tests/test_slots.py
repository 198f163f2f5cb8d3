"""Several jobs at once (issue 12), through real runs: overlap seen in the jobs' own ledger
of start and end times, each job pinned to its slot's device, signals stopping every
running job, timeouts and failures of one job leaving the others alone, the terminal never
stalling the runner, and `\\r` progress bars echoed as they come without two jobs sharing a
line. The kill loop is in test_slots_kill_loop.py.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
from slots_support import SlotQueue, gaps, job, most_at_once, per_slot_overlaps


def epoch(ts: str) -> float:
    """A journal timestamp as seconds since the epoch."""
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def wait_until(condition: Callable[[], object], what: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.02)


def spans(queue: SlotQueue) -> list[tuple[float, float]]:
    return [(start.t, end.t) for start, end in queue.intervals()]


# ---- overlap, slots and devices ---------------------------------------------------------

def test_two_gpus_run_two_jobs_at_once_each_on_its_device(project: Path) -> None:
    """gpus: [7, 9]: two jobs run at once (the jobs' own ledger), never two on one slot,
    each job sees only its slot's device, and job_started and the progress lines say
    which slot and device."""
    jobs = [job(f"j{n}", "--sleep", "0.8") for n in range(6)]
    with SlotQueue(project, jobs, gpus=[7, 9]) as queue:
        done = queue.run()

        assert 0 == done.returncode, done.stderr
        intervals = queue.intervals()
        assert 6 == len(intervals)
        assert 2 == most_at_once(spans(queue))
        assert [] == per_slot_overlaps(intervals)
        assert {("0", "7"), ("1", "9")} == {(s.slot, s.cuda) for s, _ in intervals}
        started = {e["job"]: (e["slot"], e["devices"]) for e in queue.events("job_started")}
        assert {s.job: (int(s.slot), [s.cuda]) for s, _ in intervals} == started
        assert ["j0", "j1", "j2", "j3", "j4", "j5"] == [
            e["job"] for e in queue.events("job_started")]  # config order
        assert re.search(r"start +j0  slot 0 \(GPU 7\), attempt 1", done.stderr)
        assert re.search(r"start +j1  slot 1 \(GPU 9\), attempt 1", done.stderr)
        assert not queue.leftovers()


def test_jobs_per_gpu_packs_two_jobs_on_each_device(project: Path) -> None:
    """gpus: [7, 9] with jobs_per_gpu: 2: four slots, two jobs on each device at once."""
    jobs = [job(f"j{n}", "--sleep", "1.2") for n in range(8)]
    with SlotQueue(project, jobs, gpus=[7, 9], jobs_per_gpu=2) as queue:
        done = queue.run("--quiet")

        assert 0 == done.returncode, done.stderr
        intervals = queue.intervals()
        assert 4 == most_at_once(spans(queue))
        assert [] == per_slot_overlaps(intervals)
        assert {("0", "7"), ("1", "9"), ("2", "7"), ("3", "9")} == {
            (s.slot, s.cuda) for s, _ in intervals}
        for device in ("7", "9"):
            assert 2 == most_at_once([(s.t, e.t) for s, e in intervals if s.cuda == device])
        assert "" == done.stdout


def test_slots_without_gpus_leave_cuda_visible_devices_alone(project: Path) -> None:
    """`--slots 3` over a config without slots: three at once, JOURNALQ_SLOT 0-2, the
    inherited CUDA_VISIBLE_DEVICES untouched, job_started with a slot and no devices."""
    jobs = [job(f"j{n}", "--sleep", "1") for n in range(6)]
    with SlotQueue(project, jobs) as queue:
        done = queue.run("--slots", "3", CUDA_VISIBLE_DEVICES="inherited")

        assert 0 == done.returncode, done.stderr
        intervals = queue.intervals()
        assert 3 == most_at_once(spans(queue))
        assert [] == per_slot_overlaps(intervals)
        assert {"0", "1", "2"} == {s.slot for s, _ in intervals}
        assert {"inherited"} == {s.cuda for s, _ in intervals}
        for event in queue.events("job_started"):
            assert event["slot"] in (0, 1, 2) and "devices" not in event
        assert re.search(r"start +j0  slot 0, attempt 1", done.stderr)


def test_a_freed_slot_takes_the_next_job_at_once(project: Path) -> None:
    """While one slot runs a long, quiet job (and no heartbeat is due), the other slot
    starts each next job right after the previous one exits, not at the next wake-up."""
    jobs = [job("long", "--sleep", "4"), *(job(f"s{n}", "--sleep", "0.1") for n in range(6))]
    with SlotQueue(project, jobs, slots=2, heartbeat_seconds=30) as queue:
        done = queue.run("--quiet")

        assert 0 == done.returncode, done.stderr
        ends = {m.job: m.t for m in queue.marks("end")}
        starts = {e["job"]: epoch(e["ts"]) for e in queue.events("job_started")}
        late = {f"s{n} -> s{n + 1}": round(starts[f"s{n + 1}"] - ends[f"s{n}"], 3)
                for n in range(5)}
        assert all(gap < 0.5 for gap in late.values()), late
        assert ends["s5"] < ends["long"]


@pytest.mark.parametrize("how", ["no setting", "slots: 1", "--slots 1"])
def test_one_slot_keeps_todays_journal(project: Path, how: str) -> None:
    """Without slots (or with one): one job at a time, and job_started without the new
    fields, exactly as before; progress lines name no slot."""
    top = {"slots": 1} if how == "slots: 1" else {}
    args = ["--slots", "1"] if how == "--slots 1" else []
    with SlotQueue(project, [job(f"j{n}", "--sleep", "0.3") for n in range(3)],
                   **top) as queue:
        done = queue.run(*args)

        assert 0 == done.returncode, done.stderr
        assert 1 == most_at_once(spans(queue))
        assert {"0"} == {s.slot for s, _ in queue.intervals()}
        for event in queue.events("job_started"):
            assert "slot" not in event and "devices" not in event, event
        assert "slot" not in done.stderr


def test_gpus_auto_takes_cuda_visible_devices(project: Path) -> None:
    """gpus: auto with CUDA_VISIBLE_DEVICES=3,5: two slots, one on 3, one on 5."""
    with SlotQueue(project, [job(f"j{n}", "--sleep", "0.8") for n in range(4)],
                   gpus="auto") as queue:
        done = queue.run("--quiet", CUDA_VISIBLE_DEVICES="3,5")

        assert 0 == done.returncode, done.stderr
        assert 2 == most_at_once(spans(queue))
        assert {("0", "3"), ("1", "5")} == {(s.slot, s.cuda) for s, _ in queue.intervals()}


def test_gpus_auto_without_a_gpu_is_a_one_line_error(project: Path, tmp_path: Path) -> None:
    """gpus: auto, no CUDA_VISIBLE_DEVICES and no nvidia-smi: exit 3, one line saying so,
    nothing started."""
    with SlotQueue(project, [job("j0")], gpus="auto") as queue:
        done = queue.run(PATH=str(tmp_path / "empty-bin"))

        assert 3 == done.returncode, done.stderr
        assert 1 == len(done.stderr.splitlines()), done.stderr
        assert done.stderr.startswith("journalq: error: gpus: auto found no GPU")
        assert "no CUDA_VISIBLE_DEVICES" in done.stderr and "nvidia-smi" in done.stderr
        assert [] == queue.marks()


def test_slots_and_gpus_flags_together_are_a_usage_error(project: Path) -> None:
    with SlotQueue(project, [job("j0")]) as queue:
        done = queue.run("--slots", "2", "--gpus", "0,1")

        assert 2 == done.returncode
        assert re.fullmatch(r"journalq: error: .*--slots.*--gpus.*\n", done.stderr)
        bad = queue.run("--gpus", "0,,1")
        assert 2 == bad.returncode
        assert bad.stderr.startswith("journalq: error: --gpus '0,,1'"), bad.stderr
        assert [] == queue.marks()


@pytest.mark.parametrize(("top", "field"), [
    ({"gpus": []}, "$.gpus"),
    ({"gpus": [0, 0]}, "$.gpus"),
    ({"gpus": "all"}, "$.gpus"),
    ({"gpus": [-1]}, "$.gpus"),
    ({"gpus": [0.5]}, "$.gpus"),
    ({"gpus": [0, 1], "slots": 2}, "$.slots"),
    ({"gpus": [0], "jobs_per_gpu": 0}, "$.jobs_per_gpu"),
    ({"slots": 0}, "$.slots"),
    ({"halt_after_failures": 0}, "$.halt_after_failures"),
])
def test_bad_slot_settings_are_config_errors_naming_the_field(
        project: Path, top: dict[str, object], field: str) -> None:
    with SlotQueue(project, [job("j0")], **top) as queue:
        done = queue.run()

        assert 3 == done.returncode, done.stderr
        assert 1 == len(done.stderr.splitlines()), done.stderr
        assert f"{field}:" in done.stderr
        assert [] == queue.marks()


# ---- stopping ---------------------------------------------------------------------------

@pytest.mark.parametrize(("signum", "code"),
                         [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_a_signal_stops_every_running_job_uncharged(project: Path, signum: int,
                                                    code: int) -> None:
    """Three jobs running, one ignoring SIGTERM: the runner exits 128+signal within grace
    + 1 s, all three are journaled interrupted and pending again with their attempts
    uncharged, the fourth never started, and no process of the run is left."""
    grace = 1.0
    jobs = [job("a", "--sleep", "60"), job("stubborn", "--sleep", "60", "--ignore-term"),
            job("c", "--sleep", "60", "--daemon"), job("d")]
    with SlotQueue(project, jobs, slots=3, grace_seconds=grace) as queue:
        runner = queue.start()
        wait_until(lambda: 3 == len(queue.marks("start")), "three jobs to start")
        time.sleep(0.3)  # let the ignoring job set its handler, the daemon start

        sent = time.monotonic()
        runner.send_signal(signum)
        _, err = runner.communicate(timeout=30)
        took = time.monotonic() - sent

        assert code == runner.returncode, err
        assert took <= grace + 1, f"exit took {took:.2f}s"
        assert {("a", signum), ("stubborn", signum), ("c", signum)} == {
            (e["job"], e["signal"]) for e in queue.events("job_interrupted")}
        state = {j["id"]: j for j in queue.status()["jobs"]}
        for job_id in ("a", "stubborn", "c"):
            assert "pending" == state[job_id]["status"]
            assert [False] == [a["charged"] for a in state[job_id]["attempts"]]
        assert "pending" == state["d"]["status"] and [] == state["d"]["attempts"]
        assert "# exit: signal 9 (interrupted)" in queue.log("stubborn").read_text()
        assert [] == queue.leftovers()


@pytest.mark.parametrize("slots", [1, 2])
def test_a_job_that_ended_of_the_same_stop_is_run_again(project: Path, slots: int) -> None:
    """SIGTERM to every process, as Slurm stops a task: each job checkpoints and exits 0
    before the runner (busy: here stopped with SIGSTOP) sees its own SIGTERM. Its attempt
    is journaled interrupted (pending again, uncharged), not done: its work is not."""
    jobs = [job(f"j{n}", "--sleep", "60", "--checkpoint-on-term") for n in range(2)]
    with SlotQueue(project, jobs, slots=slots) as queue:
        runner = queue.start("--quiet")
        wait_until(lambda: len(queue.marks("start")) == slots, "the jobs to start")
        time.sleep(0.3)  # their handlers are set
        runner.send_signal(signal.SIGSTOP)
        try:
            for mark in queue.marks("start"):
                os.killpg(mark.pid, signal.SIGTERM)
            wait_until(lambda: len(queue.marks("checkpoint")) == slots, "the checkpoints")
            time.sleep(0.2)  # their exits are in
            runner.send_signal(signal.SIGTERM)
        finally:
            runner.send_signal(signal.SIGCONT)
        _, err = runner.communicate(timeout=30)

        assert 143 == runner.returncode, err
        assert [] == queue.events("job_finished")
        stopped = {m.job for m in queue.marks("checkpoint")}
        assert stopped == {e["job"] for e in queue.events("job_interrupted")}
        state = {j["id"]: j for j in queue.status()["jobs"]}
        assert all(state[job_id]["status"] == "pending" for job_id in stopped)


def test_a_second_ctrl_c_kills_every_job_at_once(project: Path) -> None:
    """With a long grace period, a second SIGINT SIGKILLs every group at once."""
    jobs = [job(f"j{n}", "--sleep", "60", "--ignore-term") for n in range(3)]
    with SlotQueue(project, jobs, slots=3, grace_seconds=60) as queue:
        runner = queue.start("--quiet")
        wait_until(lambda: 3 == len(queue.marks("start")), "three jobs to start")
        time.sleep(0.3)
        runner.send_signal(signal.SIGINT)
        time.sleep(0.5)
        assert runner.poll() is None  # the grace period runs
        sent = time.monotonic()
        runner.send_signal(signal.SIGINT)
        _, err = runner.communicate(timeout=30)

        assert 130 == runner.returncode, err
        assert time.monotonic() - sent < 1.0
        assert 3 == len(queue.events("job_interrupted"))
        assert [] == queue.leftovers()


def test_groups_a_killed_runner_left_are_stopped_together(project: Path) -> None:
    """SIGKILL a runner of three jobs that ignore SIGTERM (each with a group child and a
    setsid sleeper that ignore it too): the next holder stops every process they left
    within one grace period, not one grace period per group and per leftover, and
    recovers each job on its own."""
    grace = 1.5
    jobs = [job(f"j{n}", "--sleep", "60", "--ignore-term", "--daemon") for n in range(3)]
    with SlotQueue(project, jobs, slots=3, grace_seconds=grace) as queue:
        runner = queue.start("--quiet")
        wait_until(lambda: 3 == len(queue.marks("start")), "three jobs to start")
        time.sleep(0.5)  # the sleepers start
        runner.kill()
        runner.communicate(timeout=10)
        assert len(queue.leftovers()) == 9  # three jobs, each with two sleepers

        began = time.monotonic()
        done = subprocess.run([*queue.argv()[:3], "recover", "--config", queue.config],
                              cwd=project, capture_output=True, text=True, env=queue.env(),
                              timeout=60)
        took = time.monotonic() - began

        assert 0 == done.returncode, done.stderr
        assert [] == queue.leftovers()
        for n in range(3):  # the lock file named every group
            assert re.search(rf"stopped process group \d+ of job j{n}, left running", done.stderr)
        assert {"j0", "j1", "j2"} == {e["job"] for e in queue.events("job_recovered")}
        assert took < grace + 1.5, f"recover took {took:.1f}s"


# ---- one job's trouble is its own ---------------------------------------------------------

def test_one_timeout_does_not_disturb_the_others(project: Path) -> None:
    """A job past its timeout (and ignoring SIGTERM) is killed after the grace period while
    two others run on: they end done, on time, and their heartbeats keep their cadence."""
    beat = 0.3
    jobs = [job("late", "--sleep", "60", "--ignore-term", timeout=1),
            job("a", "--sleep", "3"), job("b", "--sleep", "3")]
    with SlotQueue(project, jobs, slots=3, heartbeat_seconds=beat,
                   grace_seconds=0.5) as queue:
        done = queue.run("--quiet")

        assert 1 == done.returncode, done.stderr
        finished = {e["job"]: e for e in queue.events("job_finished")}
        assert ("failed", "timeout", 9) == (finished["late"]["outcome"],
                                            finished["late"]["reason"],
                                            finished["late"]["signal"])
        assert 1.5 <= finished["late"]["duration"] < 2.5
        for job_id in ("a", "b"):
            assert "done" == finished[job_id]["outcome"]
            assert finished[job_id]["duration"] < 4
            start = epoch(next(e["ts"] for e in queue.events("job_started")
                               if e["job"] == job_id))
            beats = [epoch(e["ts"]) for e in queue.events("heartbeat") if e["job"] == job_id]
            end = epoch(finished[job_id]["ts"])
            silences = gaps(start, beats, end)
            assert max(silences) < beat + 0.35, (job_id, silences)
            expected = finished[job_id]["duration"] / beat
            assert abs(len(beats) - expected) <= 1.5, (job_id, len(beats), expected)


@pytest.mark.parametrize("how", ["config", "flag", "one slot"])
def test_halt_after_failures_stops_new_starts(project: Path, how: str) -> None:
    """After the 2nd failed attempt no job starts; the running one finishes (done); exit 1;
    the summary says the run halted and how many jobs it did not start."""
    top: dict[str, object] = {"halt_after_failures": 2} if how != "flag" else {}
    args = ["--halt", "2"] if how == "flag" else []
    if how == "one slot":
        jobs = [job("f1", "--fail"), job("ok", "--sleep", "0.2"), job("f2", "--fail"),
                job("x1"), job("x2")]
    else:
        top["slots"] = 2
        jobs = [job("f1", "--fail"), job("long", "--sleep", "2"), job("f2", "--fail"),
                job("x1"), job("x2")]
    with SlotQueue(project, jobs, **top) as queue:
        done = queue.run("--quiet", *args)

        assert 1 == done.returncode, done.stderr
        ran = [e["job"] for e in queue.events("job_started")]
        assert ran == [j["id"] for j in jobs[:3]]
        outcomes = {e["job"]: e["outcome"] for e in queue.events("job_finished")}
        assert {"f1": "failed", "f2": "failed", ran[1]: "done"} == outcomes
        assert "halted after 2 failed attempt(s) (halt_after_failures: 2); 2 job(s) not " \
            "started" in done.stderr
        if how != "one slot":  # the long job was still running at the halt, and finished
            finish_order = [e["job"] for e in queue.events("job_finished")]
            assert "long" == finish_order[-1]


# ---- the terminal -----------------------------------------------------------------------

def test_a_stalled_stdout_does_not_stall_the_runner(project: Path) -> None:
    """`journalq run | (sleep 7; cat)`: with nobody reading stdout, a job printing without
    pause still times out on time, heartbeats keep their cadence, its log has every line
    it printed, and one warning says how much echo was dropped."""
    beat, timeout, grace, stall = 0.5, 3, 1, 7
    jobs = [job("chatty", "--spam", "200", timeout=timeout)]
    with SlotQueue(project, jobs, heartbeat_seconds=beat, grace_seconds=grace) as queue:
        runner = queue.start()
        assert runner.stdout is not None and runner.stderr is not None
        err_lines: list[str] = []
        reader = threading.Thread(target=lambda: err_lines.extend(runner.stderr or []))
        reader.start()
        time.sleep(stall)  # stdout unread all this while
        assert runner.stdout.read()  # now drain it, so the runner can exit
        runner.wait(timeout=30)
        reader.join(timeout=10)
        err = "".join(err_lines)

        assert 1 == runner.returncode, err
        finished = queue.events("job_finished")[0]
        assert ("timeout", "failed") == (finished["reason"], finished["outcome"])
        started = epoch(queue.events("job_started")[0]["ts"])
        assert epoch(finished["ts"]) - started <= timeout + grace + 1
        beats = [epoch(e["ts"]) for e in queue.events("heartbeat")]
        silences = gaps(started, beats, epoch(finished["ts"]))
        assert max(silences) <= beat + 0.5, silences
        assert abs(len(beats) - finished["duration"] / beat) <= 1.5, (len(beats), finished)
        printed = int((queue.out_dir("chatty") / "printed").read_text())
        lines = queue.log("chatty").read_text().splitlines()
        numbers = [int(line.split()[0]) for line in lines if not line.startswith("#")
                   and re.match(r"\d{10} x+$", line)]
        assert printed > 20_000  # it printed well past the echo buffer
        assert numbers[:printed] == list(range(printed))
        assert 1 == err.count("job output were not echoed"), err


def test_one_terminal_keeps_output_and_progress_in_order(project: Path) -> None:
    """stdout and stderr on one terminal (here one pipe, read slowly): the line saying the
    job is done comes after every line of the job's output, as it happened."""
    jobs = [job("chatty", "--lines", "20000")]
    with SlotQueue(project, jobs) as queue:
        read_end, write_end = os.pipe()
        runner = subprocess.Popen(queue.argv(), cwd=project, stdout=write_end,
                                  stderr=write_end, env=queue.env())
        os.close(write_end)
        chunks = []
        while chunk := os.read(read_end, 16384):
            chunks.append(chunk)
            time.sleep(0.002)  # a slow terminal
        os.close(read_end)
        runner.wait(timeout=30)

        assert 0 == runner.returncode
        text = b"".join(chunks).decode()
        done_at = text.index("] done ")
        assert text.rindex("chatty | line 19999") < done_at


def test_progress_lines_never_join_a_progress_bar(project: Path) -> None:
    """stdout and stderr on one terminal: journalq's own lines (a job starting, a job done)
    never land on the line where a job's `\\r` progress bar shows; the bar goes on after
    them on a line of its own, after its prefix."""
    jobs = [job("bar", "--bars", "30", "--bar-pause", "0.05"),
            *(job(f"q{n}", "--sleep", "0.1") for n in range(4))]
    with SlotQueue(project, jobs, slots=2) as queue:
        read_end, write_end = os.pipe()
        runner = subprocess.Popen(queue.argv(), cwd=project, stdout=write_end,
                                  stderr=write_end, env=queue.env())
        os.close(write_end)
        chunks = []
        while chunk := os.read(read_end, 65536):
            chunks.append(chunk)
        os.close(read_end)
        runner.wait(timeout=30)

        assert 0 == runner.returncode
        lines = b"".join(chunks).decode().split("\n")
        ours = [line for line in lines if re.search(r"\] (start|done) ", line)]
        assert 10 == len(ours)
        for line in ours:
            assert re.fullmatch(r"\[[ \d]+/5\] (start|done) +\S+  .*", line), line
        bars = [line for line in lines if "bar | " in line]
        for line in bars:
            assert all(s.startswith("bar | ") for s in line.split("\r") if s), line


def read_timed(stream: int, into: list[tuple[float, bytes]]) -> None:
    """Read a pipe until its end, noting when each chunk arrived."""
    while chunk := os.read(stream, 65536):
        into.append((time.time(), chunk))


def test_a_progress_bar_update_shows_at_once(project: Path) -> None:
    """A `\\r` update reaches the runner's stdout within a second of being written (not
    when the line ends), after the job's prefix."""
    jobs = [job("bar", "--bars", "2", "--bar-pause", "2")]
    with SlotQueue(project, jobs) as queue:
        runner = subprocess.Popen(queue.argv(), cwd=project, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, env=queue.env())
        assert runner.stdout is not None
        chunks: list[tuple[float, bytes]] = []
        read_timed(runner.stdout.fileno(), chunks)
        runner.wait(timeout=30)

        assert 0 == runner.returncode
        written = queue.marks("bar")[0].t
        arrived = next(t for t, _ in _prefix_sums(chunks) if b"bar | bar 000" in _)
        assert arrived - written < 1.0, f"first update after {arrived - written:.2f}s"
        text = b"".join(c for _, c in chunks)
        assert text == b"bar | \rbar | bar 000\rbar | bar 001\n"


def _prefix_sums(chunks: list[tuple[float, bytes]]) -> list[tuple[float, bytes]]:
    """(arrival, everything so far) after each chunk."""
    sums, so_far = [], b""
    for t, chunk in chunks:
        so_far += chunk
        sums.append((t, so_far))
    return sums


def test_two_progress_bars_never_share_a_line(project: Path) -> None:
    """Two slots writing `\\r` updates at once: every terminal line holds one job's updates
    only, each after that job's prefix, and no update is lost on the way."""
    jobs = [job("a", "--bars", "40", "--bar-pause", "0.01"),
            job("b", "--bars", "40", "--bar-pause", "0.013")]
    with SlotQueue(project, jobs, slots=2) as queue:
        done = queue.run()

        assert 0 == done.returncode, done.stderr
        assert 2 == most_at_once([(m.t, m.t + 0.4) for m in queue.marks("bar")])
        seen: dict[str, list[str]] = {"a": [], "b": []}
        for line in done.stdout.split("\n"):
            segments = [s for s in line.split("\r") if s]
            owners = {s.split(" | ")[0] for s in segments}
            assert len(owners) <= 1, f"a line shared by {owners}: {line!r}"
            for segment in segments:
                owner, _, text = segment.partition(" | ")
                assert owner in seen and (text == "" or text.startswith(f"{owner} ")), line
                if text:
                    seen[owner].append(text)
        for owner, updates in seen.items():
            assert [f"{owner} {n:03d}" for n in range(40)] == updates
