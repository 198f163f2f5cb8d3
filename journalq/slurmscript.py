"""The text of a Slurm job array that runs a queue: the sbatch script and its manifest.

Slurm is the engine; journalq only writes what it submits. Each array task is an ordinary
`journalq run` of a selection frozen at submission: line `i + 1` of the manifest is what
array task `i` runs (one job id, or a shard `K/N`), so editing the config later never moves
a task onto another job. Each task keeps its live journal on node-local disk (real fsync
and flock; the shared file system may have neither) and its copy in the shared sync folder,
where every other task and `journalq status --sync-dir` see it.

Pure: the shell passes in the paths, the interpreter and the time.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import attrs

SCRIPT_NAME = "array.sbatch"
MANIFEST_NAME = "manifest.txt"
_PLAIN = re.compile(r"[A-Za-z0-9@%+=:,./_-]+")
# sbatch options journalq sets itself: another value would break the task -> line mapping.
OWN_OPTIONS = ("--array", "-a")


@attrs.frozen
class ArrayPlan:
    """Everything one array script says: where to run, what each task runs, and how."""

    queue: str
    project: str  # absolute: the folder `journalq slurm` ran in; tasks run from it
    python: str  # the interpreter that wrote the script (`python -m journalq`)
    config: str  # absolute
    sync_dir: str  # absolute: the shared folder of journal copies
    folder: str  # absolute: where the script, the manifest and Slurm's output files go
    submission: str  # the id of the `journalq slurm` session that wrote it
    selections: tuple[str, ...]  # per task: a job id, or a shard `K/N`
    indices: tuple[int, ...]  # the array's task ids, one per selection
    shards: bool = False
    array_limit: int | None = None
    gpus_per_task: int | None = None
    sbatch_options: tuple[str, ...] = ()
    written: str = ""  # when, for the header
    version: str = ""  # journalq's version, for the header

    @property
    def script(self) -> str:
        """The script's path."""
        return f"{self.folder}/{SCRIPT_NAME}"

    @property
    def manifest(self) -> str:
        """The manifest's path."""
        return f"{self.folder}/{MANIFEST_NAME}"


def quote(word: str) -> str:
    """`word` as one shell word (and one word of an `#SBATCH` line, which sbatch splits
    with the same single quotes)."""
    if _PLAIN.fullmatch(word):
        return word
    return "'" + word.replace("'", "'\"'\"'") + "'"


def array_spec(indices: Sequence[int], limit: int | None) -> str:
    """`0-5%2`: the task ids as ranges, then the throttle."""
    runs: list[list[int]] = []
    for index in sorted(set(indices)):
        if runs and index == runs[-1][1] + 1:
            runs[-1][1] = index
        else:
            runs.append([index, index])
    text = ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)
    return text + (f"%{limit}" if limit else "")


def manifest_text(plan: ArrayPlan) -> str:
    """Line `i + 1` is what array task `i` runs; lines of ids not in the array are empty."""
    lines = [""] * (max(plan.indices) + 1 if plan.indices else 0)
    for index, selection in zip(plan.indices, plan.selections, strict=True):
        lines[index] = selection
    return "".join(f"{line}\n" for line in lines)


def bad_option(options: Sequence[str]) -> str | None:
    """Why extra sbatch options cannot go on an `#SBATCH` line, if they cannot."""
    for word in options:
        if "\n" in word or "'" in word:
            return f"{word!r} holds a newline or a quote"
        name = word.split("=", 1)[0]
        if name in OWN_OPTIONS or (name.startswith("-a") and not name.startswith("--")):
            return f"{word!r}: journalq sets --array itself (use --array-limit)"
    return None


def script_text(plan: ArrayPlan) -> str:
    """The sbatch script: Slurm options, then one `journalq run` of the task's selection."""
    q = quote
    count = len(plan.indices)
    what = "one shard K/N" if plan.shards else "one job"
    sbatch = [
        f"--job-name={q('journalq-' + plan.queue)}",
        f"--array={array_spec(plan.indices, plan.array_limit)}",
        # Preempted or requeued tasks come back; their rerun settles what the stopped
        # instance left running (reason `requeued`) at once.
        "--requeue",
        "--open-mode=append",  # a requeued task's output goes after the first run's
        f"--output={q(plan.folder + '/slurm-%A_%a.out')}",
    ]
    if plan.gpus_per_task:
        sbatch.append(f"--gres=gpu:{plan.gpus_per_task}")
    lines = [
        "#!/bin/bash",
        f"# journalq slurm: queue {plan.queue}, {count} array task(s), each running {what};",
        f"# written {plan.written} by journalq {plan.version}; submit it with",
        f"#     sbatch {q(plan.script)}",
        f"# Array task i runs line i+1 of {plan.manifest} (frozen at submission).",
        *(f"#SBATCH {option}" for option in sbatch),
    ]
    if plan.sbatch_options:
        lines.append("#SBATCH " + " ".join(q(word) for word in plan.sbatch_options))
    selector = '--shard "$selection"' if plan.shards else '-- "$selection"'
    lines += [
        "set -u",
        ': "${SLURM_ARRAY_TASK_ID:?is not set: submit this script with sbatch, it is a job '
        'array}"',
        f"cd {q(plan.project)} || exit 1",
        f"selection=$(sed -n \"$((SLURM_ARRAY_TASK_ID + 1))p\" {q(plan.manifest)})",
        'if [ -z "$selection" ]; then',
        f'    echo "journalq: error: array task $SLURM_ARRAY_TASK_ID has no line in '
        f'{plan.manifest}; submit the script journalq slurm wrote, unchanged" >&2',
        "    exit 2",
        "fi",
        "# The live journal on node-local disk ($SLURM_TMPDIR, else $TMPDIR, else /tmp), one",
        "# folder per task; a requeued task on the same node finds its journal again.",
        f'name="journalq-{plan.queue}-{plan.submission}-${{SLURM_ARRAY_JOB_ID}}_'
        '${SLURM_ARRAY_TASK_ID}"',
        'state=""',
        'for base in "${SLURM_TMPDIR:-}" "${TMPDIR:-}" /tmp; do',
        '    if [ -n "$base" ] && mkdir -p "$base/$name" 2>/dev/null; then',
        '        state="$base/$name"',
        "        break",
        "    fi",
        "done",
        'if [ -z "$state" ]; then',
        '    echo "journalq: error: no writable node-local folder for $name (tried '
        '\\$SLURM_TMPDIR, \\$TMPDIR, /tmp)" >&2',
        "    exit 4",
        "fi",
        "# Attempt logs go beside the journal: link them to the project's, on shared storage.",
        'mkdir -p runtime_state/logs && ln -sfn "$PWD/runtime_state/logs" "$state/logs"',
        f"exec {q(plan.python)} -m journalq run --config {q(plan.config)} "
        f"--sync-dir {q(plan.sync_dir)} --state \"$state/{plan.queue}.jsonl\" --resume "
        f"--trust journal {selector}",
        "",
    ]
    return "\n".join(lines)
