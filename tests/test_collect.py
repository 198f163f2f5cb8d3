"""`journalq collect` turns a finished sweep into one table: a row per (job x result row),
the job's facts and axis values beside each result row, in TSV, CSV or JSON Lines that
parse back to the same table. Over real sweeps of the test worker."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from conftest import journalq, write

CONFIG = "configs/sweep.yaml"
JOURNAL = "runtime_state/sweep.jsonl"
JOB_COLUMNS = ["id", "status", "attempt", "return_code", "duration", "out_dir"]
SUMMARY = ["result.model", "result.layer", "result.alpha", "result.score"]


def sweep(project: Path, *, fail: str | None = None) -> None:
    """A 2 x 2 x 2 matrix of the test worker (model x layers x alphas), run to the end;
    each job's summary has len(layers) x len(alphas) rows."""
    write(project / CONFIG, "\n".join([
        "queue: sweep",
        "matrix:",
        "  id: '{model}-L{layers}-a{alphas}'",
        "  axes:",
        "    model: [gpt2, gpt2-medium]",
        "    layers: ['1-2', [4, 6, 8]]",
        "    alphas: [[0.5, 1], [4]]",
    ]) + "\n")
    env = {"WORKER_FAIL_MATCH": fail} if fail else {}
    done = journalq("run", "--config", CONFIG, "--quiet", env=env)
    assert (1 if fail else 0) == done.returncode, done.stderr


def tsv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text), delimiter="\t", quoting=csv.QUOTE_NONE))


def test_a_finished_sweep_is_one_row_per_job_and_result_row(project: Path) -> None:
    """Each job's summary rows, each beside the job's columns and its axis values in config
    order; result columns prefixed `result.` so that the summary's own `model` never
    clashes with the axis `model`."""
    sweep(project)

    done = journalq("collect", "--config", CONFIG)

    assert 0 == done.returncode, done.stderr
    rows = tsv(done.stdout)
    header = done.stdout.splitlines()[0].split("\t")
    assert [*JOB_COLUMNS, "axis.model", "axis.layers", "axis.alphas", *SUMMARY] == header
    per_job = {"1-2": 2, "4,6,8": 3}
    expected = sum(per_job[layers] * len(alphas.split(","))
                   for layers in per_job for alphas in ("0.5,1", "4")) * 2
    assert expected == len(rows) == 30
    for row in rows:
        assert row["status"] == "done"
        assert row["return_code"] == "0"
        assert row["result.model"] == row["axis.model"]
        layers = row["axis.layers"]
        wanted = range(1, 3) if layers == "1-2" else [4, 6, 8]
        assert int(row["result.layer"]) in wanted
        assert float(row["result.alpha"]) in [float(a) for a in row["axis.alphas"].split(",")]
    first = rows[0]
    assert ("gpt2-L1-2-a0.5_1", "gpt2", "1-2", "0.5,1") == (
        first["id"], first["axis.model"], first["axis.layers"], first["axis.alphas"])


def test_csv_tsv_and_jsonl_parse_back_to_the_same_table(project: Path) -> None:
    """The three formats hold the same rows (JSON Lines with numbers as numbers)."""
    sweep(project)

    as_tsv = tsv(journalq("collect", "--state", JOURNAL).stdout)
    as_csv = list(csv.DictReader(io.StringIO(
        journalq("collect", "--state", JOURNAL, "--format", "csv").stdout)))
    as_jsonl = [json.loads(line) for line in journalq(
        "collect", "--state", JOURNAL, "--format", "jsonl").stdout.splitlines()]

    assert as_tsv == as_csv
    assert [{k: "" if v is None else str(v) for k, v in row.items()} for row in as_jsonl] \
        == as_tsv
    assert isinstance(as_jsonl[0]["attempt"], int)
    assert isinstance(as_jsonl[0]["duration"], float)


def test_without_the_config_the_axes_come_from_run_sweep_flags(project: Path) -> None:
    """`--state` alone: the axis columns are read back from each job's run_sweep.py argv,
    with the same names and values as from the config."""
    sweep(project)

    with_config = journalq("collect", "--config", CONFIG).stdout
    from_argv = journalq("collect", "--state", JOURNAL).stdout

    assert with_config == from_argv


def test_out_writes_the_file_whole_in_the_format_of_its_extension(project: Path) -> None:
    """--out results.csv: a CSV, in place by rename (no temp file left), and a line on
    stderr saying how many rows went where; stdout stays empty."""
    sweep(project)

    done = journalq("collect", "--state", JOURNAL, "--out", "results.csv")

    assert (0, "") == (done.returncode, done.stdout)
    assert "collect: 30 row(s) of 8 job(s) -> results.csv" in done.stderr
    rows = list(csv.DictReader((project / "results.csv").open()))
    assert 30 == len(rows)
    assert ["results.csv"] == [p.name for p in project.glob("*results.csv*")]


def test_jobs_without_results_appear_once_unless_done_only(project: Path) -> None:
    """A failed job wrote no summary: it appears once, with empty result columns;
    --done-only keeps the done jobs only."""
    sweep(project, fail="gpt2-medium-L4")

    every = tsv(journalq("collect", "--state", JOURNAL).stdout)
    done_only = tsv(journalq("collect", "--state", JOURNAL, "--done-only").stdout)

    failed = [row for row in every if row["status"] == "failed"]
    assert ["gpt2-medium-L4_6_8-a0.5_1", "gpt2-medium-L4_6_8-a4"] == [r["id"] for r in failed]
    assert all(row["return_code"] == "3" and row["result.score"] == "" for row in failed)
    assert len(every) - 2 == len(done_only)
    assert {"done"} == {row["status"] for row in done_only}


def test_file_picks_another_result_file_of_the_out_dir(project: Path) -> None:
    """--file results.jsonl joins the worker's JSON Lines instead of its summary, values
    keeping their JSON types in --format jsonl."""
    sweep(project)

    done = journalq("collect", "--state", JOURNAL, "--file", "results.jsonl",
                    "--format", "jsonl")

    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert 30 == len(rows)
    assert isinstance(rows[0]["result.layer"], int)
    assert isinstance(rows[0]["result.score"], float)


def test_matrix_command_axes_come_from_the_config(project: Path) -> None:
    """A matrix of raw commands (the example config's lr x seed): its axes are known only
    from the config; `--file result.json` (one object per job) joins each job's result."""
    assert 0 == journalq("run", "--config", "configs/experiments/example.local.yaml",
                         "--quiet").returncode

    with_config = tsv(journalq("collect", "--config", "configs/experiments/example.local.yaml",
                               "--file", "result.json").stdout)
    without = journalq("collect", "--state", "runtime_state/example_local.jsonl",
                       "--file", "result.json").stdout.splitlines()[0].split("\t")

    assert 6 == len(with_config)
    assert [(r["axis.lr"], r["axis.seed"]) for r in with_config] == [
        (r["result.lr"], r["result.seed"]) for r in with_config]
    assert [*JOB_COLUMNS, "result.lr", "result.seed", "result.loss"] == without


def test_tabs_and_newlines_in_values_stay_inside_their_cell(project: Path) -> None:
    """A result value holding a tab, a newline and a backslash is escaped in TSV (one
    line per row, every row as wide as the header) and quoted in CSV."""
    write(project / "configs/odd.yaml", "\n".join([
        "queue: odd",
        "jobs:",
        "  - id: a",
        "    command: [python, -c, \"import json, sys; open(sys.argv[1] + '/r.jsonl', 'w')"
        ".write(json.dumps({'note': 'x\\\\ty\\\\nz\\\\\\\\w'}) + '\\\\n')\", '{out_dir}']",
    ]) + "\n")
    assert 0 == journalq("run", "--config", "configs/odd.yaml", "--quiet").returncode

    as_tsv = journalq("collect", "--state", "runtime_state/odd.jsonl", "--file", "r.jsonl")
    as_csv = journalq("collect", "--state", "runtime_state/odd.jsonl", "--file", "r.jsonl",
                      "--format", "csv")

    lines = as_tsv.stdout.splitlines()
    assert 2 == len(lines)
    assert lines[1].endswith("\tx\\ty\\nz\\\\w")
    assert "x\ty\nz\\w" == next(csv.DictReader(io.StringIO(as_csv.stdout)))["result.note"]


def test_a_bad_file_name_is_a_usage_error(project: Path) -> None:
    """--file must be a name inside the out_dir with a known extension."""
    sweep(project)

    outside = journalq("collect", "--state", JOURNAL, "--file", "../x.tsv")
    unknown = journalq("collect", "--state", JOURNAL, "--file", "results.txt")

    assert 2 == outside.returncode and "inside each job's out_dir" in outside.stderr
    assert 2 == unknown.returncode and ".tsv, .csv, .jsonl or .json" in unknown.stderr
