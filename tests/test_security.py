"""Security: a job writes only inside out_root and its logs folder, a command reaches a shell
only when the config says `shell: true`, and `run` executes only commands its config holds
unless the operator says which side to trust."""

from __future__ import annotations

import json
import os
from pathlib import Path

import attrs
import pytest

from conftest import events, journalq, write
from journalq import clock, codec, config, policy, timestamps
from journalq import events as ev
from journalq.errors import EXIT_CONFIG, EXIT_DECISION, EXIT_OK, ConfigError
from journalq.runner import resolve_argv
from journalq.state import JobSpec

CONFIG = "configs/sec.yaml"
JOURNAL = Path("runtime_state/sec.jsonl")
# The job leaves a mark in its out_dir saying which command ran: the config's or another.
MARK = "import pathlib, sys; pathlib.Path(sys.argv[1], 'ran').write_text(sys.argv[2])"


def sec_config(project: Path, *, word: str = "config", queue: str = "sec",
               name: str = CONFIG) -> Path:
    """A one-job queue whose job writes `word` to <out_dir>/ran."""
    return write(project / name, f"""\
queue: {queue}
out_root: runtime_state/outputs/sec
heartbeat_seconds: 1
jobs:
  - id: one
    command: [python, -c, "{MARK}", "{{out_dir}}", {word}]
""")


def spec_running(word: str) -> JobSpec:
    """The spec of job `one` with the command that writes `word` (as the config builds it)."""
    out_dir = "runtime_state/outputs/sec/one"
    return JobSpec.build(argv=("python", "-c", MARK, out_dir, word), shell=False, cwd=".",
                         env={}, out_dir=out_dir, max_attempts=1, timeout=None)


def append_event(path: Path, event: ev.Event) -> None:
    """Edit the journal as a person or another tool would: one more encoded line."""
    stamped = attrs.evolve(event, id="editor:1", session="editor",
                           ts=timestamps.format_ts(clock.now_micros()))
    with path.open("ab") as handle:
        handle.write(codec.encode(stamped))


def mark(project: Path) -> str | None:
    """Which command job `one` ran, if any."""
    ran = project / "runtime_state/outputs/sec/one/ran"
    return ran.read_text() if ran.exists() else None


def started(project: Path) -> list[dict[str, object]]:
    """The job_started events of the queue's journal."""
    return [e for e in events(project / JOURNAL) if e["type"] == "job_started"]


# ---- ids and out dirs ------------------------------------------------------------------------

@pytest.mark.parametrize("job_id", ["../x", "a/b", "", ".x", "-x", "..", "a..b", "/etc",
                                    "a\\b", "a b", "x" * 129])
def test_config_refuses_ids_that_are_not_plain_names(job_id: str) -> None:
    """An id is a file name and a log folder: no path separators, no '..', no leading '.'
    (hidden) or '-' (a flag), so it can never lead out of out_root or the logs folder."""
    text = f"queue: q\njobs: [{{id: {json.dumps(job_id)}, command: [x]}}]\n"

    with pytest.raises(ConfigError) as caught:
        config.parse(text.encode(), "q.yaml")

    assert caught.value.message.startswith("q.yaml: $.jobs[0].id: ")


@pytest.mark.parametrize("value", ["../x", "a/b", ".x", "-x", ".."])
def test_config_refuses_matrix_ids_that_are_not_plain_names(value: str) -> None:
    """An axis value cannot smuggle a path, a hidden name or a flag into a job id."""
    text = (f"queue: q\nmatrix: {{id: '{{v}}', axes: {{v: [ok, {json.dumps(value)}]}}, "
            "command: [x]}\n")

    with pytest.raises(ConfigError) as caught:
        config.parse(text.encode(), "q.yaml")

    assert "not a valid job id" in caught.value.message


def test_symlinked_out_dir_is_refused_before_the_job_starts(
        project: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    """A job's out_dir that is a symlink leading out of out_root stops the run with one line
    (exit 3); the job is not started and nothing is written where the link points."""
    sec_config(project)
    outside = tmp_path_factory.mktemp("outside")
    (project / "runtime_state/outputs/sec").mkdir(parents=True)
    (project / "runtime_state/outputs/sec/one").symlink_to(outside)

    done = journalq("run", "--config", CONFIG, "--quiet", cwd=project)

    assert EXIT_CONFIG == done.returncode
    assert 1 == len(done.stderr.splitlines()), done.stderr
    assert "leads outside out_root" in done.stderr
    assert [] == started(project)
    assert [] == list(outside.iterdir())


def test_dangling_out_dir_symlink_is_refused_and_not_followed(
        project: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    """A symlink to a folder that does not exist yet is refused the same way, and the folder
    is not created through it."""
    sec_config(project)
    target = tmp_path_factory.mktemp("outside") / "not-yet"
    (project / "runtime_state/outputs/sec").mkdir(parents=True)
    (project / "runtime_state/outputs/sec/one").symlink_to(target)

    done = journalq("run", "--config", CONFIG, "--quiet", cwd=project)

    assert EXIT_CONFIG == done.returncode
    assert 1 == len(done.stderr.splitlines()), done.stderr
    assert "leads outside out_root" in done.stderr
    assert not target.exists()
    assert [] == started(project)


def test_symlinked_log_folder_is_refused_before_the_job_starts(
        project: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    """A job's log folder that is a symlink out of the queue's logs folder stops the run in
    one line; no log is written through it and the job is not started."""
    sec_config(project)
    outside = tmp_path_factory.mktemp("outside")
    (project / "runtime_state/logs/sec").mkdir(parents=True)
    (project / "runtime_state/logs/sec/one").symlink_to(outside)

    done = journalq("run", "--config", CONFIG, "--quiet", cwd=project)

    assert EXIT_CONFIG == done.returncode
    assert 1 == len(done.stderr.splitlines()), done.stderr
    assert "leads outside" in done.stderr
    assert [] == list(outside.iterdir())
    assert [] == started(project)
    assert mark(project) is None


def test_journal_job_ids_cannot_escape_the_logs_folder(
        project: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Even a trusted journal cannot use a job id to create folders outside logs/: the run
    is refused before anything is made there."""
    sec_config(project)
    assert EXIT_OK == journalq("init", "--config", CONFIG, cwd=project).returncode
    escape = "../../../escaped"
    spec = attrs.evolve(spec_running("x"), out_dir="runtime_state/outputs/sec/x")
    append_event(project / JOURNAL, ev.JobAdded(job=escape, **{
        **policy.spec_fields(spec), "spec_sha256": spec.sha256}))
    assert EXIT_OK == journalq("cancel", "--state", str(JOURNAL), "one", cwd=project).returncode

    done = journalq("run", "--config", CONFIG, "--trust", "journal", "--quiet", cwd=project)

    assert EXIT_CONFIG == done.returncode
    assert "leads outside" in done.stderr
    assert not (project / "escaped").exists()
    assert [] == started(project)


def test_out_root_itself_may_be_a_symlink(project: Path,
                                          tmp_path_factory: pytest.TempPathFactory) -> None:
    """Pointing out_root at a bigger disk is the operator's choice, not an escape: jobs run
    inside it."""
    sec_config(project)
    disk = tmp_path_factory.mktemp("disk")
    (project / "runtime_state/outputs").mkdir(parents=True)
    (project / "runtime_state/outputs/sec").symlink_to(disk)

    done = journalq("run", "--config", CONFIG, "--quiet", cwd=project)

    assert EXIT_OK == done.returncode, done.stderr
    assert "config" == (disk / "one" / "ran").read_text()


# ---- no shell unless asked -------------------------------------------------------------------

SHELL_WORDS = ["$(touch pwned1)", "; touch pwned2", "`touch pwned3`", "&& touch pwned4",
               "| touch pwned5", "$HOME", "*"]


def test_command_words_reach_the_program_literally(project: Path) -> None:
    """Without `shell: true`, `$(...)`, `;`, backquotes, `&&`, `|`, `$VAR` and globs are
    plain argument text: the program receives them unchanged and no shell runs them."""
    words = ", ".join(json.dumps(word) for word in SHELL_WORDS)
    write(project / CONFIG, f"""\
queue: sec
out_root: runtime_state/outputs/sec
jobs:
  - id: one
    command: [python, -c, "import json, sys; print(json.dumps(sys.argv[1:]))", {words}]
  - id: two
    args: {{model: "$(touch pwned6); touch pwned7", layers: 1, alphas: 1}}
    env: {{X: "$(touch pwned8)"}}
""")

    done = journalq("run", "--config", CONFIG, "--quiet", cwd=project)

    assert EXIT_OK == done.returncode, done.stderr
    assert [] == sorted(p.name for p in project.rglob("pwned*"))
    log = (project / "runtime_state/logs/sec/one/attempt-1.log").read_text()
    assert json.dumps(SHELL_WORDS) in log


def test_a_worker_string_is_split_into_words_not_run_by_a_shell(project: Path) -> None:
    """`worker:` as one string is split like a shell would split it, but never given to one:
    `$(touch pwned)` is just a (missing) file name for python."""
    write(project / CONFIG, """\
queue: sec
worker: "python $(touch pwned) scripts/run_sweep.py"
jobs:
  - {id: one, args: {model: m, layers: 1, alphas: 1}}
""")

    done = journalq("run", "--config", CONFIG, "--quiet", cwd=project)

    assert 1 == done.returncode  # python cannot open a script named '$(touch'
    assert [] == list(project.rglob("pwned*"))


def test_shell_runs_only_when_the_config_says_so(project: Path) -> None:
    """`shell: true` is the one way in; a string command without it is a config error."""
    write(project / CONFIG, """\
queue: sec
jobs:
  - {id: one, command: "touch made-by-shell && echo $((6 * 7))", shell: true}
""")
    assert EXIT_OK == journalq("run", "--config", CONFIG, "--quiet", cwd=project).returncode
    assert (project / "made-by-shell").exists()

    write(project / "configs/nosh.yaml", "queue: nosh\njobs: [{id: one, command: 'touch x'}]\n")
    refused = journalq("run", "--config", "configs/nosh.yaml", cwd=project)
    assert EXIT_CONFIG == refused.returncode
    assert "set shell: true" in refused.stderr
    assert not (project / "x").exists()


def test_values_filled_into_a_shell_command_stay_values(project: Path) -> None:
    """In a `shell: true` command, matrix values and paths are quoted where they are filled
    in: a value like `x; touch pwned` is printed, never run."""
    write(project / CONFIG, """\
queue: sec
matrix:
  id: "v{n}"
  axes: {n: [1], text: ["x; touch pwned"]}
  shell: true
  command: "echo {text} > {out_dir}/said.txt"
""")
    done = journalq("run", "--config", CONFIG, "--quiet", cwd=project)

    assert EXIT_OK == done.returncode, done.stderr
    assert not (project / "pwned").exists()
    said = project / "runtime_state/outputs/sec/v1/said.txt"
    assert "x; touch pwned\n" == said.read_text()


def test_resolve_argv_uses_a_shell_only_for_shell_specs() -> None:
    """The argv handed to the kernel starts with /bin/sh exactly when the spec says shell."""
    plain = spec_running("; rm -rf /")
    shell = JobSpec.build(argv=("echo hi",), shell=True, cwd=".", env={}, out_dir="o",
                          max_attempts=1, timeout=None)

    assert "/bin/sh" not in resolve_argv(plain)
    assert "; rm -rf /" == resolve_argv(plain)[-1]
    assert ["/bin/sh", "-c", "echo hi"] == resolve_argv(shell)


# ---- the config is the source of commands ----------------------------------------------------

def edited_journal(project: Path, spec: JobSpec) -> None:
    """A journal for the config, then an edit recording another spec for job `one`."""
    sec_config(project)
    assert EXIT_OK == journalq("init", "--config", CONFIG, cwd=project).returncode
    append_event(project / JOURNAL, ev.JobChanged(job="one", **policy.spec_fields(spec)))


def test_edited_journal_spec_is_refused(project: Path) -> None:
    """A journal that records another command than the config's for a job makes `run`
    stop with exit 6 and say so; nothing runs."""
    edited_journal(project, spec_running("journal"))

    done = journalq("run", "--config", CONFIG, "--quiet", cwd=project)

    assert EXIT_DECISION == done.returncode
    assert 1 == len(done.stderr.splitlines()), done.stderr
    assert "records other specs than configs/sec.yaml for 1 job(s) (one)" in done.stderr
    assert "--trust config / --trust journal" in done.stderr
    assert mark(project) is None
    assert [] == started(project)


def test_edited_journal_with_a_forged_hash_is_refused(project: Path) -> None:
    """Copying the config's spec_sha256 next to another command does not fool `run`: the
    hash is computed from the spec, never taken from the line."""
    forged = attrs.evolve(spec_running("forged"), sha256=spec_running("config").sha256)
    edited_journal(project, forged)

    done = journalq("run", "--config", CONFIG, "--quiet", cwd=project)

    assert EXIT_DECISION == done.returncode, done.stderr
    assert mark(project) is None


def test_journal_from_another_config_of_the_same_queue_is_refused(project: Path) -> None:
    """A journal started from a different config with the same queue name holds that
    config's commands; `run` with this config refuses to guess."""
    sec_config(project, word="other", name="configs/other.yaml")
    sec_config(project)
    assert EXIT_OK == journalq("init", "--config", "configs/other.yaml", cwd=project).returncode

    done = journalq("run", "--config", CONFIG, "--quiet", cwd=project)

    assert EXIT_DECISION == done.returncode
    assert "records other specs" in done.stderr
    assert mark(project) is None


def test_trust_config_runs_the_configs_command(project: Path) -> None:
    """--trust config records the config's spec in the journal and runs it."""
    edited_journal(project, spec_running("journal"))

    done = journalq("run", "--config", CONFIG, "--trust", "config", "--quiet", cwd=project)

    assert EXIT_OK == done.returncode, done.stderr
    assert "config" == mark(project)
    changed = [e for e in events(project / JOURNAL) if e["type"] == "job_changed"]
    assert spec_running("config").sha256 == changed[-1]["spec_sha256"]


def test_trust_journal_runs_the_journals_command(project: Path) -> None:
    """--trust journal runs what the journal records, as the operator asked."""
    edited_journal(project, spec_running("journal"))

    done = journalq("run", "--config", CONFIG, "--trust", "journal", "--quiet", cwd=project)

    assert EXIT_OK == done.returncode, done.stderr
    assert "journal" == mark(project)


def test_a_run_writes_only_under_runtime_state(project: Path) -> None:
    """A normal run adds nothing to the project but runtime_state/ (journal, logs, and the
    out_root inside it)."""
    sec_config(project)
    before = set(os.listdir(project))

    assert EXIT_OK == journalq("run", "--config", CONFIG, "--quiet", cwd=project).returncode

    assert {"runtime_state"} == set(os.listdir(project)) - before
