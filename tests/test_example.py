"""The portable example runs end to end in a real process, and resumes without rerunning."""

from __future__ import annotations

from pathlib import Path

from conftest import events, journalq, status_json

EXAMPLE = "configs/experiments/example.local.yaml"


def test_example_runs_every_job_once(project: Path) -> None:
    """A fresh run does all six jobs; a second run starts none of them again."""
    first = journalq("run", "--config", EXAMPLE, "--quiet", cwd=project)
    assert 0 == first.returncode, first.stderr
    journal = project / "runtime_state" / "example_local.jsonl"
    state = status_json(journal, cwd=project)
    assert {"done": 6} == {k: v for k, v in state["counts"].items() if v}
    for job in state["jobs"]:
        assert (project / job["out_dir"] / "result.json").exists()
        assert (project / job["out_dir"] / "journalq-run.toml").exists()
    before = len(events(journal))

    second = journalq("run", "--config", EXAMPLE, "--quiet", cwd=project)

    assert 0 == second.returncode, second.stderr
    started = [e for e in events(journal)[before:] if e["type"] == "job_started"]
    assert [] == started
