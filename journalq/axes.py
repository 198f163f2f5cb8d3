"""Which point of a sweep each job is, as columns for `collect`: the matrix's axis values
(when the config is at hand) and run_sweep.py's flags (read back from the job's argv).

The journal records each job's argv, not the axes it came from. So with a config, a matrix
job's values are the config's, matched to job ids by the order `expand` documents
(explicit `jobs:` first, then every combination, first axis slowest); without one, only
what the argv says is known: `--model`, `--layers` and `--alphas` as run_sweep.py got them.
Both give the same text for run_sweep.py flags (lists joined by ','), so a table collected
with or without `--config` has the same values where both know them. Pure.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from journalq.schema import QueueConfig

SWEEP_FLAGS = ("model", "layers", "alphas")  # run_sweep.py's flags that name a sweep point
SUMMARY_FLAG = "summary-path"


def sweep_args(argv: Sequence[str]) -> dict[str, str]:
    """run_sweep.py's flags in an argv (`--model gpt2` or `--model=gpt2`), by name without
    the dashes: model, layers, alphas and summary-path, where present (the last one wins,
    as with argparse)."""
    wanted = {f"--{name}" for name in (*SWEEP_FLAGS, SUMMARY_FLAG)}
    found: dict[str, str] = {}
    for index, word in enumerate(argv):
        flag, equals, value = word.partition("=")
        if flag not in wanted:
            continue
        if equals:
            found[flag[2:]] = value
        elif index + 1 < len(argv):
            found[flag[2:]] = argv[index + 1]
    return found


def value_text(value: Any) -> str:
    """An axis value as a command line gets it: lists joined by ','."""
    if isinstance(value, list | tuple):
        return ",".join(value_text(item) for item in value)
    return str(value)


@attrs.frozen
class Axes:
    """The axis columns (in order) and each job's values for them, as text."""

    names: tuple[str, ...] = ()
    values: Mapping[str, Mapping[str, str]] = attrs.Factory(dict)  # job id -> name -> text


def matrix_values(written: QueueConfig, job_ids: Sequence[str]) -> dict[str, dict[str, str]]:
    """Each matrix job's axis values, by id; `job_ids` are the config's jobs in run order."""
    matrix = written.matrix
    if matrix is None:
        return {}
    names = list(matrix.axes)
    combos = itertools.product(*(matrix.axes[name] for name in names))
    matrix_ids = job_ids[len(written.jobs):]
    return {job_id: {name: value_text(value) for name, value in zip(names, combo, strict=True)}
            for job_id, combo in zip(matrix_ids, combos, strict=False)}


def axes(argvs: Mapping[str, Sequence[str] | None], written: QueueConfig | None = None,
         config_ids: Sequence[str] = ()) -> Axes:
    """The axis columns of jobs given as id -> argv (None for a shell command, whose words
    are not read): the config's matrix axes in config order, then run_sweep.py's flags that
    any job's argv has; each job's values from its argv where the flag is there, else from
    the config's matrix."""
    from_config = matrix_values(written, config_ids) if written is not None else {}
    config_axes = list(written.matrix.axes) if written is not None and written.matrix else []
    values: dict[str, dict[str, str]] = {}
    present: set[str] = set()
    for job_id, argv in argvs.items():
        flags = sweep_args(argv) if argv is not None else {}
        flags.pop(SUMMARY_FLAG, None)
        present.update(flags)
        values[job_id] = {**from_config.get(job_id, {}), **flags}
    extra = [flag for flag in SWEEP_FLAGS if flag in present and flag not in config_axes]
    return Axes((*config_axes, *extra), values)
