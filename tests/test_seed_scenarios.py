"""The seed's five verification commands, as written (with `journalq` in place of
`python scripts/run_experiment_queue.py`), run end to end against the test worker."""

from __future__ import annotations

import json
from pathlib import Path

from test_run_support import SmallQueue, counts

from conftest import journalq

CONFIG = "configs/experiments/colab_batch_a.yaml"
STATE = "runtime_state/queue_state.json"


def test_seed_verification_commands(project: Path) -> None:
    """--help documents the commands and exit codes; init records the 12 jobs of batch A;
    `run --resume` does all 12 once, each writing results.jsonl and summary.tsv; status shows
    them done; recover finds nothing to recover and writes nothing."""
    runs = project / "worker-runs.log"
    env = {"WORKER_LOG": str(runs)}

    helped = journalq("--help", cwd=project)

    assert 0 == helped.returncode, helped.stderr
    for word in ("init", "run", "status", "recover", "retry", "cancel", "exit codes:"):
        assert word in helped.stdout

    init = journalq("init", "--config", CONFIG, "--state", STATE, cwd=project)

    assert 0 == init.returncode, init.stderr
    assert (f"{STATE}: queue colab_batch_a, 12 jobs; 12 jobs: 12 pending, 0 running, 0 done, "
            "0 failed, 0 cancelled") == init.stdout.strip()

    ran = journalq("run", "--config", CONFIG, "--state", STATE, "--resume", cwd=project,
                   env=env)

    assert 0 == ran.returncode, ran.stderr
    journal = project / STATE
    state = json.loads(journalq("status", "--state", STATE, "--json", cwd=project).stdout)
    assert {"done": 12} == counts(state)
    job_ids = [job["id"] for job in state["jobs"]]
    assert "gpt2-L4-8-a0.5_1_2" == job_ids[0]
    assert sorted(job_ids) == sorted(line.split()[0] for line in runs.read_text().splitlines())
    for job in state["jobs"]:
        out_dir = project / job["out_dir"]
        assert (out_dir / "results.jsonl").read_text().strip()
        assert (out_dir / "summary.tsv").read_text().startswith("model\tlayer\talpha\tscore\n")
        assert job["out_dir"].startswith("runtime_state/outputs/colab_batch_a/")

    shown = journalq("status", "--state", STATE, cwd=project)

    assert 0 == shown.returncode, shown.stderr
    assert ("queue colab_batch_a: 12 jobs: 0 pending, 0 running, 12 done, 0 failed, "
            "0 cancelled") == shown.stdout.splitlines()[0]
    assert 12 == sum(" done " in line for line in shown.stdout.splitlines())
    written = journal.read_bytes()

    recovered = journalq("recover", "--state", STATE, "--stale-seconds", "7200", cwd=project)

    assert 0 == recovered.returncode, recovered.stderr
    assert "nothing to recover" == recovered.stdout.strip()
    assert written == journal.read_bytes()


def test_seed_run_again_reruns_nothing(project: Path) -> None:
    """Running the seed's `run --resume` a second time starts no job: done is done."""
    with SmallQueue(project, ["x", "y"]) as queue:
        assert 0 == queue.run("--resume", "--quiet").returncode

        again = queue.run("--resume", "--quiet")

        assert 0 == again.returncode, again.stderr
        assert [("x", 1), ("y", 1)] == queue.runs()
        assert {"done": 2} == counts(queue.status())
