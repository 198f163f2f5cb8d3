"""Tables for programs rather than people: `status --format tsv` and `collect`'s TSV, CSV and
JSON Lines, what `cut -f`, `sort`, `jq` and pandas read.

TSV cells never hold a raw tab or newline: they are escaped as `\\t` and `\\n` (and a
backslash as `\\\\`, so the escapes read back unambiguously: the "linear TSV" convention),
and every row has every column. CSV is the `csv` module's (quoted where needed). JSON Lines
has one object per row, every column a key, `null` for what is unknown (and for NaN and
infinities, which JSON has no numbers for).
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence

from journalq.state import Job

FORMATS = ("tsv", "csv", "jsonl")

# Controls would drive a terminal or split a row; each is written as an escape instead.
_TSV = {code: f"\\x{code:02x}" for code in (*range(0x20), *range(0x7F, 0xA0))}
_TSV.update({ord("\\"): "\\\\", ord("\t"): "\\t", ord("\n"): "\\n", ord("\r"): "\\r"})


def tsv_cell(value: object) -> str:
    """One value as a TSV cell: empty for None, `true`/`false`, numbers as Python writes
    them, lists and objects as JSON, text with tabs, newlines, backslashes and control
    characters escaped."""
    return _text(value).translate(_TSV)


def _text(value: object) -> str:
    """One value as a CSV field (the csv module quotes it as needed)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


STATUS_COLUMNS = ("id", "status", "reason", "attempt", "tries", "max_attempts",
                  "return_code", "signal", "duration", "started", "finished",
                  "last_heartbeat", "host", "out_dir", "log")


def status_rows(jobs: Iterable[Job]) -> Iterator[tuple[object, ...]]:
    """One row per job, in `STATUS_COLUMNS` order: the latest attempt's facts, times as in
    the journal, durations in seconds, None for what is not known (yet)."""
    for job in jobs:
        last = job.last
        facts: tuple[object, ...] = (None,) * 8 if last is None else (
            last.return_code, last.signal, last.duration, last.started, last.finished,
            last.heartbeat, last.host, last.log)
        yield (job.id, job.status.value, job.reason, job.attempt, job.charged,
               job.spec.max_attempts, *facts[:7], job.spec.out_dir, facts[7])


def tsv_lines(columns: Sequence[str], rows: Iterable[Sequence[object]]) -> Iterator[str]:
    """A header line, then one line per row; each ends in a newline."""
    yield "\t".join(tsv_cell(column) for column in columns) + "\n"
    for row in rows:
        yield "\t".join(tsv_cell(cell) for cell in row) + "\n"


def table(fmt: str, columns: Sequence[str], rows: Iterable[Mapping[str, object]]) -> Iterator[str]:
    """Rows (dicts; a missing key is an empty cell) as `fmt` (tsv, csv or jsonl) text."""
    if fmt == "jsonl":
        for row in rows:
            yield json.dumps({column: _json_value(row.get(column)) for column in columns},
                             ensure_ascii=False, allow_nan=False) + "\n"
        return
    cells = ([row.get(column) for column in columns] for row in rows)
    if fmt == "tsv":
        yield from tsv_lines(columns, cells)
        return
    buffer = io.StringIO()
    import csv  # only for --format csv; `status` prints its table without it

    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    yield _taken(buffer)
    for values in cells:
        writer.writerow([_text(value) for value in values])
        yield _taken(buffer)


def _json_value(value: object) -> object:
    """`value` with NaN and infinities as null: Python's `json` reads and writes them, but
    they are not JSON, and jq, JavaScript and most JSON Lines readers refuse the line."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [_json_value(item) for item in value]
    if isinstance(value, dict):
        return {key: _json_value(item) for key, item in value.items()}
    return value


def _taken(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text
