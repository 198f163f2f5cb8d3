"""`journalq slurm`: a Slurm job array that runs what is pending, one task per job or one
per shard, each task an ordinary `journalq run` on node-local disk with its copy in the
shared sync folder.

The first tests need no Slurm: they check what the command writes and refuses, and run
the script it writes with bash, with the variables Slurm would set. The rest (marked slow)
submit to the real one-node cluster of tests/slurm_cluster.py: throttled arrays with one GPU
per task, `scontrol requeue` of a running task, `kill -9` of a task's journalq, resubmitting
what is left, and status from the shared folder when a copy is gone.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from promise_support import journalq, one_error_line, read_events, write
from slurm_cluster import NOTES, TIMINGS, SlurmCluster

from journalq.slurmscript import array_spec, bad_option, quote

EXIT_USAGE = 2

# A test job: notes its start and its end in the ledger (one JSON line each, appended whole),
# with the GPU Slurm gave its task. Knobs, by environment: JOB_SLEEP seconds (default 1);
# JOB_LONG "job[@attempt],..." sleep 300 s instead; JOB_FAIL "job,..." exit 3;
# JOB_IGNORE_TERM "job,..." ignore SIGTERM.
JOB = """\
import json, os, signal, sys, time

job, attempt = os.environ["JOURNALQ_JOB"], int(os.environ["JOURNALQ_ATTEMPT"])


def note(what):
    line = json.dumps({
        "what": what, "job": job, "attempt": attempt, "pid": os.getpid(), "t": time.time(),
        "gpus": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "task": os.environ.get("SLURM_ARRAY_TASK_ID"),
        "restart": int(os.environ.get("SLURM_RESTART_COUNT") or 0)})
    fd = os.open(os.environ["LEDGER"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    os.write(fd, (line + "\\n").encode())
    os.close(fd)


def listed(name):
    return os.environ.get(name, "").split(",")


note("start")
if job in listed("JOB_IGNORE_TERM"):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
long = job in listed("JOB_LONG") or f"{job}@{attempt}" in listed("JOB_LONG")
time.sleep(300 if long else float(os.environ.get("JOB_SLEEP", "1")))
if job in listed("JOB_FAIL"):
    note("fail")
    sys.exit(3)
os.makedirs(sys.argv[1], exist_ok=True)
note("end")
"""


class SlurmProject:
    """A project folder as on a cluster's shared storage: a config of JOB jobs, the test
    job, a ledger, and a shared sync folder. `env` is what `journalq slurm` (and so, by
    sbatch's --export=ALL, every task) runs with."""

    def __init__(self, root: Path, jobs: list[str], *, max_attempts: int = 1,
                 grace_seconds: float = 1.0, env: dict[str, str] | None = None) -> None:
        self.root = root
        self.jobs = jobs
        self.sync = root / "shared-copies"
        self.ledger = root / "ledger.jsonl"
        self.config = "configs/q.yaml"
        self.node_local = root / "node-local"  # TMPDIR of the tasks
        self.node_local.mkdir(parents=True, exist_ok=True)
        write(root / "scripts" / "job.py", JOB)
        lines = ["queue: q", "heartbeat_seconds: 0.2", f"grace_seconds: {grace_seconds}",
                 "sync_seconds: 1", "defaults:", f"  max_attempts: {max_attempts}", "jobs:"]
        for job in jobs:
            lines += [f"  - id: {job}", '    command: [python, scripts/job.py, "{out_dir}"]']
        write(root / self.config, "\n".join(lines) + "\n")
        self.env = {**(env or {}), "LEDGER": str(self.ledger), "TMPDIR": str(self.node_local)}

    def command(self, *args: str, **knobs: str) -> subprocess.CompletedProcess[str]:
        """A journalq command with the config and the sync folder, in the project folder."""
        return journalq(*args, "--config", self.config, "--sync-dir", str(self.sync),
                        cwd=self.root, env={**self.env, **knobs})

    def slurm(self, *args: str, **knobs: str) -> subprocess.CompletedProcess[str]:
        """`journalq slurm ARGS` (options after `--` go last)."""
        words = list(args)
        extra = words[words.index("--"):] if "--" in words else []
        words = words[:len(words) - len(extra)]
        return journalq("slurm", "--config", self.config, "--sync-dir", str(self.sync),
                        *words, *extra, cwd=self.root, env={**self.env, **knobs})

    def status(self) -> dict[str, Any]:
        """The merged `status --json`."""
        shown = self.command("status", "--json")
        assert 0 == shown.returncode, shown.stderr
        result: dict[str, Any] = json.loads(shown.stdout)
        return result

    def notes(self) -> list[dict[str, Any]]:
        """The ledger's lines."""
        if not self.ledger.exists():
            return []
        return [json.loads(line) for line in self.ledger.read_text().splitlines()]

    def count(self, what: str) -> Counter[str]:
        """How many `start`s (or `end`s) each job noted."""
        return Counter(note["job"] for note in self.notes() if note["what"] == what)

    def copies(self) -> list[Path]:
        """The queue's copies in the sync folder."""
        return sorted(p for p in self.sync.glob("q.*.jsonl") if not p.name.startswith("."))

    def all_events(self) -> list[dict[str, Any]]:
        """Every event of every copy, once each (by id)."""
        found: dict[str, dict[str, Any]] = {}
        for copy in self.copies():
            for event in read_events(copy):
                found.setdefault(event["id"], event)
        return sorted(found.values(), key=lambda e: (e["ts"], e["id"]))


def script_of(done: subprocess.CompletedProcess[str], root: Path) -> Path:
    """The script path `journalq slurm` printed first."""
    assert 0 == done.returncode, done.stderr
    return root / done.stdout.splitlines()[0]


def counts(state: dict[str, Any]) -> dict[str, int]:
    """The non-zero counts of `status --json`."""
    return {name: n for name, n in state["counts"].items() if n}


# ---- what it writes, without Slurm ---------------------------------------------------------

def test_pure_parts() -> None:
    """Task ids as Slurm ranges with the throttle; one shell word per option; --array and
    quotes refused on an #SBATCH line."""
    assert "0-5%2" == array_spec(range(6), 2)
    assert "0,2-3,7" == array_spec([7, 0, 3, 2], None)
    assert "plain/path-1.x" == quote("plain/path-1.x")
    assert "'a b'" == quote("a b")
    assert bad_option(["--array=0-3"]) and bad_option(["-a", "3"]) and bad_option(["-a3"])
    assert bad_option(["--comment=it's"]) and bad_option(["a\nb"])
    assert bad_option(["-p", "gpu", "--account=lab", "-A", "x", "--time=1:00:00"]) is None


def test_one_task_per_pending_job_frozen_in_the_manifest(tmp_path: Path) -> None:
    """The script's array has one task per pending job (done and cancelled ones are left
    out), line i+1 of the manifest beside it is task i's job, its #SBATCH lines carry the
    throttle, the GPUs, --requeue and the options after `--`, and stdout is its path."""
    project = SlurmProject(tmp_path, ["a", "b", "c", "d"])
    assert 0 == project.command("run", "a", "--quiet", JOB_SLEEP="0").returncode
    assert 0 == project.command("cancel", "c").returncode

    done = project.slurm("--array-limit", "2", "--gpus-per-task", "1", "--", "-p", "gpu",
                         "--comment=two words")

    script = script_of(done, tmp_path)
    assert [str(script.relative_to(tmp_path))] == done.stdout.splitlines()
    assert re.fullmatch(r"runtime_state/slurm/q/\d{8}T\d{6}Z-[0-9a-f]{12}",
                        str(script.parent.relative_to(tmp_path)))
    assert "b\nd\n" == (script.parent / "manifest.txt").read_text()
    text = script.read_text()
    sbatch = [line[len("#SBATCH "):] for line in text.splitlines()
              if line.startswith("#SBATCH ")]
    assert "--array=0-1%2" in sbatch
    assert {"--requeue", "--gres=gpu:1", "-p gpu '--comment=two words'"} <= set(sbatch)
    assert f"--output={script.parent}/slurm-%A_%a.out" in sbatch
    assert f" -m journalq run --config {tmp_path / project.config} " in text
    assert os.access(script, os.X_OK)
    assert "2 pending job(s) in 2 array task(s)" in done.stderr


def test_shard_tasks_skip_shards_with_nothing_pending(tmp_path: Path) -> None:
    """With --tasks 3 over 6 jobs of which 0, 3 (shard 0) are done, task ids 1 and 2 run
    shards 1/3 and 2/3; shard 0 has nothing left and is not submitted."""
    project = SlurmProject(tmp_path, [f"j{n}" for n in range(6)])
    assert 0 == project.command("run", "j0", "j3", "--quiet", JOB_SLEEP="0").returncode

    done = project.slurm("--tasks", "3")

    script = script_of(done, tmp_path)
    assert "\n1/3\n2/3\n" == (script.parent / "manifest.txt").read_text()
    assert "#SBATCH --array=1-2\n" in script.read_text()
    assert '--shard "$selection"' in script.read_text()


def test_nothing_pending_writes_nothing(tmp_path: Path) -> None:
    """When every job is done, it says so, exits 0 and writes no script."""
    project = SlurmProject(tmp_path, ["a"])
    assert 0 == project.command("run", "--quiet", JOB_SLEEP="0").returncode

    done = project.slurm("--submit")

    assert 0 == done.returncode, done.stderr
    assert "" == done.stdout
    assert "nothing pending in queue q" in done.stderr
    assert not (tmp_path / "runtime_state" / "slurm").exists()


@pytest.mark.parametrize(("args", "says"), [
    (["--", "--array=0-9"], "journalq sets --array itself"),
    (["-p"], "unrecognized arguments: -p"),
    (["--", "--comment=it's"], "holds a newline or a quote"),
])
def test_options_it_cannot_use_are_refused(tmp_path: Path, args: list[str], says: str) -> None:
    """An --array of one's own, sbatch options not after `--`, or a quote in one: exit 2,
    one line, nothing written."""
    project = SlurmProject(tmp_path, ["a"])

    done = project.slurm(*args)

    assert EXIT_USAGE == done.returncode
    assert says in one_error_line(done.stderr)
    assert not (tmp_path / "runtime_state" / "slurm").exists()


def test_without_a_sync_folder_it_is_refused(tmp_path: Path) -> None:
    """The tasks' copies need a shared folder: without one, exit 2 and one line."""
    project = SlurmProject(tmp_path, ["a"])

    done = journalq("slurm", "--config", project.config, cwd=tmp_path, env=project.env)

    assert EXIT_USAGE == done.returncode
    assert "needs --sync-dir" in one_error_line(done.stderr)


def test_submit_without_sbatch_says_where_the_script_is(tmp_path: Path) -> None:
    """No sbatch on PATH: exit 2, one line naming the script, which is written."""
    project = SlurmProject(tmp_path, ["a"])
    bare = tmp_path / "bin"
    bare.mkdir()

    done = project.slurm("--submit", PATH=str(bare))

    assert EXIT_USAGE == done.returncode
    assert "Traceback" not in done.stderr
    line = done.stderr.splitlines()[-1]  # after the lines about the queue and the array
    assert line.startswith("journalq: error: ")
    assert "sbatch not found" in line
    script = tmp_path / done.stdout.splitlines()[0]
    assert str(script.relative_to(tmp_path)) in line
    assert script.exists()


def test_a_job_whose_lost_copy_ran_it_is_settled_from_its_card(tmp_path: Path) -> None:
    """A job ran on a runtime whose journal copy was lost, but its run card (on shared
    storage) records the finished attempt: it is settled from the card, not submitted."""
    elsewhere = SlurmProject(tmp_path / "elsewhere", ["a", "b"])
    project = SlurmProject(tmp_path / "here", ["a", "b"])
    assert 0 == elsewhere.command("run", "a", "--quiet", JOB_SLEEP="0").returncode
    out = Path("runtime_state/outputs/q/a")
    (project.root / out).mkdir(parents=True)
    (project.root / out / "journalq-run.toml").write_bytes(
        (elsewhere.root / out / "journalq-run.toml").read_bytes())

    done = project.slurm()

    assert "b\n" == (script_of(done, project.root).parent / "manifest.txt").read_text()
    assert "not submitting a" in done.stderr
    assert {"done": 1, "pending": 1} == counts(project.status())


def task_env(project: SlurmProject, job: int, task: int, **more: str) -> dict[str, str]:
    """What Slurm sets for array task `task` of job `job` (and the project's knobs)."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    return {**inherited, **project.env, "SLURM_ARRAY_JOB_ID": str(job),
            "SLURM_ARRAY_TASK_ID": str(task), "SLURM_JOB_ID": str(job + 1 + task),
            "JOB_SLEEP": "0", **more}


def test_the_script_runs_its_tasks_job_from_node_local_disk(tmp_path: Path) -> None:
    """Run by bash as Slurm would run task 1: it runs the manifest's line 2 (job b) only,
    with its journal under $TMPDIR, its copy in the sync folder, its attempt log in the
    project's runtime_state/logs, and `session_started` naming the Slurm task."""
    project = SlurmProject(tmp_path, ["a", "b", "c"])
    script = script_of(project.slurm(), tmp_path)

    done = subprocess.run(["bash", str(script)], cwd="/", capture_output=True, text=True,
                          env=task_env(project, 41, 1), timeout=60)

    assert 0 == done.returncode, done.stderr
    assert Counter(["b"]) == project.count("end")
    (local,) = project.node_local.glob("journalq-q-*-41_1/q.jsonl")
    started = [e for e in read_events(local) if e["type"] == "session_started"
               and e["command"] == "run"]
    assert [("41_1", ["b"])] == [(e["slurm_task"], e["jobs"]) for e in started]
    assert (tmp_path / "runtime_state" / "logs" / "q" / "b" / "attempt-1.log").exists()
    state = project.status()
    assert {"done": 1, "pending": 2} == counts(state)


def test_the_shard_script_runs_its_shard(tmp_path: Path) -> None:
    """With --tasks 2, task 1 runs shard 1/2 (b and d of a..d) and records the shard."""
    project = SlurmProject(tmp_path, ["a", "b", "c", "d"])
    script = script_of(project.slurm("--tasks", "2"), tmp_path)

    done = subprocess.run(["bash", str(script)], cwd="/", capture_output=True, text=True,
                          env=task_env(project, 7, 1), timeout=60)

    assert 0 == done.returncode, done.stderr
    assert Counter(["b", "d"]) == project.count("end")
    (local,) = project.node_local.glob("journalq-q-*-7_1/q.jsonl")
    assert ["1/2"] == [e["shard"] for e in read_events(local)
                       if e["type"] == "session_started" and e["command"] == "run"]


def test_a_task_without_a_manifest_line_stops_with_one_line(tmp_path: Path) -> None:
    """Task 7 of a 3-task array (someone edited --array): exit 2, one error line, no run."""
    project = SlurmProject(tmp_path, ["a", "b", "c"])
    script = script_of(project.slurm(), tmp_path)

    done = subprocess.run(["bash", str(script)], cwd="/", capture_output=True, text=True,
                          env=task_env(project, 41, 7), timeout=60)

    assert EXIT_USAGE == done.returncode
    assert "array task 7 has no line" in one_error_line(done.stderr)
    assert [] == project.notes()


# ---- on a real Slurm -----------------------------------------------------------------------

def submit(project: SlurmProject, *args: str, **knobs: str) -> tuple[Path, int]:
    """`journalq slurm --submit ARGS`: the script and the Slurm job id it printed."""
    done = project.slurm("--submit", *args, **knobs)
    assert 0 == done.returncode, done.stderr
    script, job = done.stdout.splitlines()
    return project.root / script, int(job)


def manifest(script: Path) -> list[str]:
    """The lines of the manifest beside a script."""
    return (script.parent / "manifest.txt").read_text().splitlines()


def started_in_copies(project: SlurmProject, job: str) -> dict[str, Any] | None:
    """The newest `job_started` of `job` that the sync folder's copies show, if any."""
    found = [e for e in project.all_events() if e["type"] == "job_started"
             and e["job"] == job]
    return found[-1] if found else None


def leftover_jobs(project: SlurmProject) -> list[int]:
    """Live processes of this project's test jobs (their environment names its ledger)."""
    marker = f"LEDGER={project.ledger}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


@pytest.fixture
def cluster_project(slurm_cluster: SlurmCluster,
                    request: pytest.FixtureRequest) -> Iterator[SlurmCluster]:
    """The cluster, and after the test no process of its projects left (a `kill -9` of a
    task's journalq can leave its job running outside Slurm's process tree)."""
    made: list[SlurmProject] = []
    request.node.projects = made
    yield slurm_cluster
    for project in made:
        for pid in leftover_jobs(project):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def new_project(cluster: SlurmCluster, request: pytest.FixtureRequest, name: str,
                jobs: list[str], **options: Any) -> SlurmProject:
    """A project in the cluster's shared folder, cleaned up after the test."""
    project = SlurmProject(cluster.folder(name), jobs, env=cluster.env, **options)
    request.node.projects.append(project)
    return project


def spans(project: SlurmProject) -> dict[str, tuple[float, float, str | None]]:
    """job -> (start, end, CUDA_VISIBLE_DEVICES) of its attempt that ended."""
    starts = {(n["job"], n["attempt"]): n for n in project.notes() if n["what"] == "start"}
    return {n["job"]: (starts[(n["job"], n["attempt"])]["t"], n["t"],
                       starts[(n["job"], n["attempt"])]["gpus"])
            for n in project.notes() if n["what"] == "end"}


def most_at_once(found: list[tuple[float, float]]) -> int:
    """The largest number of spans that overlap at one instant."""
    edges = sorted([(s, 1) for s, _ in found] + [(e, -1) for _, e in found])
    now = peak = 0
    for _, step in edges:
        now += step
        peak = max(peak, now)
    return peak


def of_job(found: list[dict[str, Any]], kind: str, job: str) -> list[dict[str, Any]]:
    """The events of one type about one job."""
    return [e for e in found if e["type"] == kind and e.get("job") == job]


@pytest.mark.slow
def test_an_array_of_six_jobs_two_at_a_time_one_gpu_each(
        cluster_project: SlurmCluster, request: pytest.FixtureRequest) -> None:
    """`journalq slurm --array-limit 2 --gpus-per-task 1 --submit` over 6 jobs, watched with
    `journalq wait --sync-dir` (exit 0): every job runs exactly once, by the task its
    manifest line names, never more than 2 at once, and two jobs running together see
    different CUDA_VISIBLE_DEVICES; every task COMPLETED and the status of the shared
    folder's copies is all done."""
    cluster = cluster_project
    jobs = [f"j{n}" for n in range(6)]
    project = new_project(cluster, request, "six", jobs)
    start = time.monotonic()

    script, job = submit(project, "--array-limit", "2", "--gpus-per-task", "1", JOB_SLEEP="2")
    waited = project.command("wait", "--timeout", "240")  # as from the login node
    assert 0 == waited.returncode, waited.stderr
    cluster.wait_all(timeout=60, job=job)
    TIMINGS["journalq slurm: 6 jobs %2, gpu:1 each, 2 s jobs"] = time.monotonic() - start

    assert jobs == manifest(script)
    assert Counter(jobs) == project.count("start") == project.count("end")
    found = spans(project)
    assert 2 == most_at_once([(s, e) for s, e, _ in found.values()])
    for a, (sa, ea, ga) in found.items():
        assert ga in {"0", "1"}, (a, ga)
        for b, (sb, eb, gb) in found.items():
            if a < b and sa < eb and sb < ea:
                assert ga != gb, (a, b, ga)
    tasks = cluster.jobs(job)
    assert {"COMPLETED"} == {task["JobState"] for task in tasks}, tasks
    events = project.all_events()
    ran_by = {e["session"]: e["slurm_task"] for e in events
              if e["type"] == "session_started" and e["command"] == "run"}
    for index, job_id in enumerate(jobs):
        (started,) = of_job(events, "job_started", job_id)
        assert f"{job}_{index}" == ran_by[started["session"]]
    state = project.status()
    assert {"done": 6} == counts(state)
    assert [] == state["anomalies"]
    NOTES.append(f"6-job array: {len(project.copies())} copies left in the sync folder")


@pytest.mark.slow
def test_a_requeued_task_settles_its_stopped_attempt_and_runs_the_job_once_more(
        cluster_project: SlurmCluster, request: pytest.FixtureRequest) -> None:
    """`scontrol requeue` of two running tasks. Job x ignores SIGTERM, so Slurm kills its
    task's journalq before it can record anything: the rerun (SLURM_RESTART_COUNT=1)
    settles x's attempt at once, reason `requeued`, by budget, and runs x again. Job y
    stops on SIGTERM: its journalq records the interruption (uncharged) and the rerun runs
    it again. Each job started twice and ended once, and is done."""
    cluster = cluster_project
    project = new_project(cluster, request, "requeue", ["x", "y"], max_attempts=2,
                          grace_seconds=60)
    start = time.monotonic()
    _, job = submit(project, JOB_LONG="x@1,y@1", JOB_IGNORE_TERM="x")
    cluster.wait_for("both jobs to start, in the copies too", lambda: all(
        started_in_copies(project, name) and project.count("start")[name]
        for name in ("x", "y")), timeout=60)

    cluster.scontrol("requeue", f"{job}_0,{job}_1")
    cluster.wait_all(timeout=240, job=job)
    TIMINGS["journalq slurm: requeue of 2 running tasks, to the end"] = (
        time.monotonic() - start)

    assert Counter(x=2, y=2) == project.count("start")
    assert Counter(x=1, y=1) == project.count("end")
    events = project.all_events()
    (settled,) = of_job(events, "job_recovered", "x")
    assert ("requeued", 1, "pending") == (settled["reason"], settled["attempt"],
                                          settled["to"])
    (interrupted,) = of_job(events, "job_interrupted", "y")
    assert 1 == interrupted["attempt"]
    assert [] == of_job(events, "job_recovered", "y")
    for name in ("x", "y"):
        assert [2] == [e["attempt"] for e in of_job(events, "job_finished", name)]
    assert {"done": 2} == counts(project.status())
    assert {"1"} == {task["Restarts"] for task in cluster.jobs(job)}


@pytest.mark.slow
def test_a_killed_tasks_journalq_is_settled_on_its_rerun_by_budget_or_card(
        cluster_project: SlurmCluster, request: pytest.FixtureRequest) -> None:
    """`kill -9` of task 1's journalq while job b runs, and task 2's journalq killing itself
    right after c's run card is written (JOURNALQ_FAILPOINT=after-card@c). Requeued, task
    1's rerun settles b's attempt by budget (`requeued`, pending) and runs b again; task 2's
    settles c from its card (done) without running it again."""
    cluster = cluster_project
    project = new_project(cluster, request, "kill9", ["a", "b", "c"], max_attempts=2)
    start = time.monotonic()
    _, job = submit(project, JOB_LONG="b@1", JOURNALQ_FAILPOINT="after-card@c")
    cluster.wait_for("b to run", lambda: started_in_copies(project, "b")
                     and project.count("start")["b"], timeout=60)
    runner = started_in_copies(project, "b")
    assert runner is not None
    os.kill(runner["pid"], signal.SIGKILL)  # the runner's pid, from job_started
    cluster.wait_all(timeout=120, job=job)
    states = {task["ArrayTaskId"]: task["JobState"] for task in cluster.jobs(job)}
    assert {"0": "COMPLETED", "1": "FAILED", "2": "FAILED"} == states

    cluster.scontrol("requeue", f"{job}_1,{job}_2")
    cluster.wait_all(timeout=240, job=job)
    TIMINGS["journalq slurm: kill -9 of 2 tasks' journalq, requeue, to the end"] = (
        time.monotonic() - start)

    assert Counter(a=1, b=2, c=1) == project.count("start")
    assert Counter(a=1, b=1, c=1) == project.count("end")
    events = project.all_events()
    (b_settled,) = of_job(events, "job_recovered", "b")
    assert ("requeued", 1, "pending") == (b_settled["reason"], b_settled["attempt"],
                                          b_settled["to"])
    (c_settled,) = of_job(events, "job_recovered", "c")
    assert ("card", 1, "done") == (c_settled["reason"], c_settled["attempt"],
                                   c_settled["to"])
    assert [] == of_job(events, "job_finished", "c")  # its runner died before recording
    assert {"done": 3} == counts(project.status())


@pytest.mark.slow
def test_retry_failed_then_slurm_again_resubmits_exactly_what_is_left(
        cluster_project: SlurmCluster, request: pytest.FixtureRequest) -> None:
    """Of four jobs (one attempt each) b fails and c's task journalq is killed with -9.
    `recover` settles c (its runner is gone: this machine's process table says so; on a
    cluster, `--force` or stale_seconds), `retry --failed` makes b and c pending, and
    `journalq slurm --submit` submits exactly b and c, which then run once more each."""
    cluster = cluster_project
    project = new_project(cluster, request, "resubmit", ["a", "b", "c", "d"])
    start = time.monotonic()
    _, first = submit(project, "--array-limit", "2", JOB_FAIL="b", JOB_LONG="c")
    cluster.wait_for("c to run", lambda: started_in_copies(project, "c")
                     and project.count("start")["c"], timeout=60)
    runner = started_in_copies(project, "c")
    assert runner is not None
    os.kill(runner["pid"], signal.SIGKILL)
    cluster.wait_all(timeout=120, job=first)
    state = project.status()
    assert {"done": 2, "failed": 1, "running": 1} == counts(state)

    recovered = project.command("recover")
    assert 0 == recovered.returncode, recovered.stderr
    retried = project.command("retry", "--failed")
    assert 0 == retried.returncode, retried.stderr
    script, second = submit(project)
    cluster.wait_all(timeout=120, job=second)
    TIMINGS["journalq slurm: fail, kill -9, recover, retry, resubmit"] = (
        time.monotonic() - start)

    assert ["b", "c"] == manifest(script)
    assert Counter(a=1, b=2, c=2, d=1) == project.count("start")
    assert Counter(a=1, b=1, c=1, d=1) == project.count("end")
    assert {"done": 4} == counts(project.status())
    again = project.slurm()
    assert "nothing pending" in again.stderr and "" == again.stdout


@pytest.mark.slow
def test_a_deleted_copy_leaves_status_right_from_the_rest_and_the_run_cards(
        cluster_project: SlurmCluster, request: pytest.FixtureRequest) -> None:
    """After an array of four jobs, each copy in the sync folder is deleted in turn: where
    the other copies hold its events, the merged status is still all done. A copy that was
    the only record of a job's finish (the last task's, typically) leaves that job running
    or pending in the status of the rest; the run card in its out_dir, on shared storage,
    then settles it: `journalq recover` (running) and `journalq slurm` (pending) record it
    done from the card, submit nothing, and no job runs twice."""
    cluster = cluster_project
    jobs = ["a", "b", "c", "d"]
    project = new_project(cluster, request, "lost", jobs)
    _, job = submit(project, "--array-limit", "2", JOB_SLEEP="1")
    cluster.wait_all(timeout=120, job=job)
    assert {"done": 4} == counts(project.status())

    lost: dict[Path, dict[str, int]] = {}
    for copy in project.copies():
        aside = copy.with_name(f".{copy.name}.aside")  # not a copy's name: not read
        copy.rename(aside)
        try:
            left = counts(project.status())
        finally:
            aside.rename(copy)
        if left != {"done": 4}:
            lost[copy] = left
    NOTES.append(f"deleted-copy scenario: {len(project.copies())} copies, "
                 f"{len(lost)} of them the only record of some job")
    if not lost:
        return  # every copy was covered by another: nothing more to show
    gone, left = next(iter(lost.items()))
    gone.unlink()
    assert {"done", "running", "pending"} >= set(left) and left["done"] < 4

    recovered = project.command("recover")
    assert 0 == recovered.returncode, recovered.stderr
    again = project.slurm("--submit")
    assert 0 == again.returncode, again.stderr
    assert "" == again.stdout  # nothing submitted
    assert {"done": 4} == counts(project.status())
    assert Counter(jobs) == project.count("start") == project.count("end")
    events = read_events(project.root / "runtime_state" / "q.jsonl")
    assert {"card"} == {e["reason"] for e in events if e["type"] == "job_recovered"}
