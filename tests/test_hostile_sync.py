"""Hostile tests of the journal across runtimes: a sync folder that behaves like Drive
(segments arriving out of order, damaged or forged copies), compaction, the fold
checkpoint, and the readers (`status`, `wait`, `logs`, `collect`, `slurm`).

Every runtime is a real `journalq` process with its own machine identity
(JOURNALQ_BOOT_ID) and its own local journal; the sync folder is a plain folder that the
test edits the way Drive would deliver it. Each test failed before its fix.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import events, journalq, spawn, write

QUEUE_YAML = """\
queue: q
heartbeat_seconds: 1
matrix:
  id: "j{n}"
  axes:
    n: [0, 1, 2, 3, 4, 5, 6, 7]
  command: [sh, -c, "sleep ${SLP:-0}"]
"""


def runtime(name: str, *args: str, sleep: float = 0.0,
            config: str = "q.yaml") -> subprocess.CompletedProcess[str]:
    """`journalq run` on machine `name`, with its own local journal `<name>/q.jsonl`."""
    return journalq("run", "--config", config, "--state", f"{name}/q.jsonl", "--quiet", *args,
                    env={"JOURNALQ_BOOT_ID": name, "SLP": str(sleep)})


def only_copy(folder: Path) -> tuple[str, Path]:
    """(session, path) of the one copy in `folder`."""
    (path,) = sorted(folder.glob("q.*.jsonl"))
    return path.name.split(".")[1], path


@pytest.fixture
def queue_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project with `q.yaml` (eight jobs), as the current directory."""
    write(tmp_path / "q.yaml", QUEUE_YAML)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def a_finished_shard(folder: str = "A/sd") -> tuple[str, list[bytes]]:
    """Runtime A runs shard 0/2 with its own sync folder: (its session, its journal lines)."""
    done = runtime("A", "--sync-dir", folder, "--shard", "0/2")
    assert done.returncode == 0, done.stderr
    session, path = only_copy(Path(folder))
    return session, path.read_bytes().splitlines(keepends=True)


# ---- 1. an event whose id names another session than its `session` -----------------------

def test_an_event_whose_id_names_another_session_is_merged_once_at_most(
        queue_dir: Path) -> None:
    session, lines = a_finished_shard()
    last = json.loads(lines[-1])
    forged = {**last, "id": f"{session}:{len(lines) + 1}", "session": "ffffffffffff"}
    write(queue_dir / "sd" / "q.ffffffffffff.jsonl",
          b"".join(lines).decode() + json.dumps(forged) + "\n")
    runtime("B", "--sync-dir", "sd", "--shard", "1/2")
    for _ in range(3):
        journalq("sync", "--config", "q.yaml", "--state", "B/q.jsonl", "--sync-dir", "sd",
                 env={"JOURNALQ_BOOT_ID": "B"})
    ids = [event["id"] for event in events(queue_dir / "B" / "q.jsonl")]
    assert len(ids) == len(set(ids)), "an event was appended more than once"


# ---- 2. compaction on the strength of a copy that lacks an event --------------------------

def test_a_copy_with_a_damaged_line_never_lets_compaction_delete_the_sound_copy(
        queue_dir: Path) -> None:
    session, lines = a_finished_shard()
    (queue_dir / "sd").mkdir()
    (queue_dir / "sd" / f"q.{session}.jsonl").write_bytes(b"".join(lines))
    damaged = list(lines)
    damaged[8] = damaged[8][:40] + b"#mangled by Drive\n"
    (queue_dir / "sd" / "q.ffffffffffff.jsonl").write_bytes(b"".join(damaged))
    assert runtime("B", "--sync-dir", "sd", "--shard", "1/2").returncode == 0
    # The event of line 9 was in A's copy and in no other copy visible before: A's copy
    # must still be there (B's own copy, just written, may never reach Drive).
    assert (queue_dir / "sd" / f"q.{session}.jsonl").exists()


# ---- 3. segment 3 arriving before segment 2 ------------------------------------------------

@pytest.mark.slow
def test_a_segment_that_arrives_before_the_one_it_follows_is_merged_once_that_one_arrives(
        queue_dir: Path) -> None:
    session, lines = a_finished_shard()
    sd = queue_dir / "sd"
    sd.mkdir()
    (sd / f"q.{session}.jsonl").write_bytes(b"".join(lines[:5]))
    (sd / f"q.{session}-3.jsonl").write_bytes(b"".join(lines[10:]))
    late = queue_dir / "late"
    late.write_bytes(b"".join(lines[5:10]))
    runner = subprocess.Popen(
        ["sh", "-c", 'sleep 2.5; mv late "$1"', "sh", str(sd / f"q.{session}-2.jsonl")])
    done = runtime("B", "--sync-dir", "sd", "--shard", "1/2", sleep=1.2)
    runner.wait()
    assert done.returncode == 0, done.stderr
    held = [event for event in events(queue_dir / "B" / "q.jsonl")
            if event["session"] == session]
    assert len(held) == len(lines)
    assert "0 pending" in done.stderr.splitlines()[-2]


# ---- collect: result files as spreadsheets and notebooks write them ----------------------

COLLECT_YAML = """\
queue: c
matrix:
  id: "k{n}"
  axes:
    n: [0, 1, 2]
  command: [sh, -c, "true"]
"""


@pytest.fixture
def finished(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A finished queue of three jobs; returns its out_root."""
    write(tmp_path / "c.yaml", COLLECT_YAML)
    monkeypatch.chdir(tmp_path)
    done = journalq("run", "--config", "c.yaml", "--quiet")
    assert done.returncode == 0, done.stderr
    return tmp_path / "runtime_state" / "outputs" / "c"


def collected(name: str, fmt: str = "jsonl") -> list[dict[str, object]]:
    done = journalq("collect", "--config", "c.yaml", "--file", name, "--format", fmt,
                    "--done-only")
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.split("\n") if line]


def test_collect_reads_a_utf8_bom_as_the_start_of_the_text_not_part_of_it(
        finished: Path) -> None:
    (finished / "k0" / "r.csv").write_bytes(b"\xef\xbb\xbfscore,n\n5,6\n")
    (finished / "k0" / "r.json").write_bytes(b'\xef\xbb\xbf{"score": 5}')
    (finished / "k0" / "r.jsonl").write_bytes(b'\xef\xbb\xbf{"score": 5}\n')
    for name in ("r.csv", "r.json", "r.jsonl"):
        rows = collected(name)
        assert rows[0]["result.score"] in ("5", 5), (name, rows[0])
        assert all("\ufeff" not in key for key in rows[0]), name


def test_collect_keeps_a_quoted_csv_cell_with_a_newline_and_splits_tsv_on_newlines_only(
        finished: Path) -> None:
    (finished / "k0" / "r.csv").write_bytes(b'note,n\n"line1\nline2",2\n')
    (finished / "k0" / "r.tsv").write_bytes("note\tn\nx\u2028y\x0cz\t2\n".encode())
    assert [row["result.note"] for row in collected("r.csv")[:1]] == ["line1\nline2"]
    rows = [row for row in collected("r.tsv") if row["id"] == "k0"]
    assert [(row["result.note"], row["result.n"]) for row in rows] == [("x\u2028y\x0cz", "2")]


def test_collect_jsonl_is_json_even_when_a_result_holds_nan_or_infinity(
        finished: Path) -> None:
    (finished / "k0" / "r.jsonl").write_text('{"loss": NaN, "best": [Infinity, 1]}\n')
    done = journalq("collect", "--config", "c.yaml", "--file", "r.jsonl", "--format",
                    "jsonl")

    def refuse(constant: str) -> object:
        raise ValueError(f"{constant} is not JSON")

    rows = [json.loads(line, parse_constant=refuse) for line in done.stdout.splitlines()]
    assert rows[0]["result.loss"] is None
    assert rows[0]["result.best"] == [None, 1]


# ---- run --dry-run says what the real run does -----------------------------------------

def test_dry_run_plans_what_the_real_run_does_when_specs_changed(queue_dir: Path) -> None:
    assert runtime("A", "--shard", "0/2").returncode == 0
    write(queue_dir / "q.yaml", QUEUE_YAML.replace("sleep ${SLP:-0}", "sleep 0"))
    plan = runtime("A", "--dry-run")
    real = runtime("A")
    assert real.returncode == 6
    assert "would stop (exit 6)" in plan.stdout
    assert "would run 4" not in plan.stdout  # the real run starts nothing
    # Another shard's changed specs are not this shard's business, in the plan as for real.
    plan = runtime("A", "--dry-run", "--shard", "0/2")
    assert "would stop" not in plan.stdout, plan.stdout
    assert runtime("A", "--shard", "0/2").returncode == 0


# ---- a sealed segment deleted from the folder ----------------------------------------------

BENCH = Path(__file__).resolve().parent / "bench"


def test_a_sealed_segment_deleted_from_the_folder_is_written_again(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch
                                                                  ) -> None:
    monkeypatch.chdir(tmp_path)
    made = subprocess.run([sys.executable, str(BENCH / "journal_gen.py"), "big.jsonl",
                           "--jobs", "10", "--events", "8000", "--config", "big.yaml"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "big.jsonl").stat().st_size > 1 << 20  # more than one segment
    write(tmp_path / "scripts" / "run_sweep.py", "import time\ntime.sleep(1)\n")
    retried = journalq("retry", "--state", "big.jsonl", "sweep-lr0.00001-seed0",
                       "sweep-lr0.00001-seed1")
    assert retried.returncode == 0, retried.stderr
    runner = spawn("run", "--config", "big.yaml", "--state", "big.jsonl", "--sync-dir", "sd",
                   "--quiet")
    sd = tmp_path / "sd"
    deadline = time.monotonic() + 20
    while not list(sd.glob("bench.*.jsonl")):  # segment 1: the journal as the run found it
        assert time.monotonic() < deadline, "no copy was pushed"
        time.sleep(0.02)
    for segment in sd.glob("bench.*.jsonl"):
        segment.unlink()  # Drive lost it, or someone cleaned up
    assert runner.wait(timeout=60) == 0, runner.stderr.read() if runner.stderr else ""
    view = journalq("status", "--config", "big.yaml", "--state", "other.jsonl", "--sync-dir",
                    "sd", "--json", env={"JOURNALQ_BOOT_ID": "Z"})
    assert view.returncode == 0, view.stderr
    assert json.loads(view.stdout)["counts"]["done"] == 10


# ---- a copy written by a newer journalq -------------------------------------------------

def test_a_runner_never_merges_a_newer_journalqs_events_and_writes_on(queue_dir: Path) -> None:
    sd = queue_dir / "sd"
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
    session = "eeeeeeeeeeee"
    lines = [
        {"type": "session_started", "v": 1, "id": f"{session}:1", "ts": stamp,
         "session": session, "command": "run", "host": "h", "boot_id": "E", "pid": 1,
         "pid_start": 1, "argv": ["journalq"], "journalq_version": "9.0.0",
         "python_version": "3.13.0"},
        {"type": "job_paused", "v": 1, "id": f"{session}:2", "ts": stamp,
         "session": session, "job": "j3"},
    ]
    write(sd / f"q.{session}.jsonl", "".join(json.dumps(line) + "\n" for line in lines))
    done = runtime("B", "--sync-dir", "sd")
    assert done.returncode == 4, done.stderr
    assert "a newer journalq wrote it" in done.stderr
    # Nothing ran, and the local journal stays one this journalq can write to.
    journal = queue_dir / "B" / "q.jsonl"
    assert not journal.exists() or not [
        e for e in events(journal) if e["type"] in ("job_started", "job_paused")]
    assert runtime("B").returncode == 0


def test_a_sync_dir_that_names_a_file_is_not_blamed_on_drive(queue_dir: Path) -> None:
    write(queue_dir / "afile", "")
    for command in (["status", "--config", "q.yaml"], ["run", "--config", "q.yaml"]):
        done = journalq(*command, "--sync-dir", "afile")
        assert done.returncode == 4, done.stderr
        assert "remount" not in done.stderr and "must name a folder" in done.stderr


# ---- journalq slurm: the script, run by bash with Slurm's variables faked --------------------

def test_the_log_of_a_slurm_task_is_read_from_the_login_node(queue_dir: Path) -> None:
    shared = queue_dir / "shared"
    made = journalq("slurm", "--config", "q.yaml", "--sync-dir", str(shared))
    assert made.returncode == 0, made.stderr
    script = made.stdout.strip().splitlines()[-1]
    node = queue_dir / "node0"  # the node's $SLURM_TMPDIR, gone with the node
    task = subprocess.run(["bash", script], capture_output=True, text=True, env={
        **os.environ, "SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_JOB_ID": "77",
        "SLURM_TMPDIR": str(node), "JOURNALQ_BOOT_ID": "node0"})
    assert task.returncode == 0, task.stderr
    shutil.rmtree(node)
    shown = journalq("logs", "--config", "q.yaml", "--sync-dir", str(shared), "j0")
    assert shown.returncode == 0, shown.stderr


# ---- a runtime whose clock runs ahead -------------------------------------------------------

def test_the_runners_table_says_a_runners_clock_is_ahead_as_the_jobs_table_does(
        queue_dir: Path) -> None:
    session, lines = a_finished_shard()
    ended = json.loads(lines[-1])
    assert ended["type"] == "session_ended"
    # Its clock is ten minutes fast, and it is still running: its last event (where
    # session_ended was) is stamped ten minutes ahead of ours.
    late = {key: ended[key] for key in ("type", "v", "id", "ts", "session")}
    late.update(type="job_cancelled", job="j1",
                ts=time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(time.time() + 600)))
    write(queue_dir / "sd" / f"q.{session}.jsonl",
          b"".join(lines[:-1]).decode() + json.dumps(late) + "\n")
    shown = journalq("status", "--config", "q.yaml", "--state", "Z/q.jsonl", "--sync-dir", "sd",
                     env={"JOURNALQ_BOOT_ID": "Z"})
    assert shown.returncode == 0, shown.stderr
    (row,) = [line for line in shown.stdout.splitlines() if line.startswith(session)]
    assert "ahead of ours" in row, shown.stdout


def test_collect_out_writes_through_a_link_and_into_a_pipe_and_never_replaces_them(
        finished: Path) -> None:
    target = finished.parent.parent / "drive" / "results.tsv"
    target.parent.mkdir()
    link = Path("results.tsv")
    link.symlink_to(target)
    done = journalq("collect", "--config", "c.yaml", "--out", "results.tsv")
    assert done.returncode == 0, done.stderr
    assert link.is_symlink() and target.read_text().startswith("id\tstatus")
    fifo = Path("pipe")
    os.mkfifo(fifo)
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE, text=True)
    done = journalq("collect", "--config", "c.yaml", "--out", "pipe")
    got, _ = reader.communicate(timeout=30)
    assert done.returncode == 0, done.stderr
    assert got.startswith("id\tstatus") and fifo.is_fifo()
    refused = journalq("collect", "--config", "c.yaml", "--out", "results.parquet")
    assert refused.returncode == 2 and not Path("results.parquet").exists()
