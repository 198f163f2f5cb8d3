"""A job's result file, read as rows: TSV, CSV, JSON Lines or JSON, told by the extension.

What a worker writes is not journalq's to police: a bad row is skipped with one warning
naming the file and line, and the rest is read. A file still being written (a running job)
may end in half a line; for JSON Lines that last line is skipped, not warned about twice.
"""

from __future__ import annotations

import csv
import io
import json
import posixpath
from collections.abc import Callable, Iterator
from typing import Any

FORMATS = {".tsv": "tsv", ".tab": "tsv", ".csv": "csv", ".jsonl": "jsonl",
           ".ndjson": "jsonl", ".json": "json"}

Row = dict[str, Any]


def format_of(name: str) -> str | None:
    """`tsv`, `csv`, `jsonl` or `json` by the name's extension; None if it says none."""
    return FORMATS.get(posixpath.splitext(name)[1].lower())


def read_rows(path: str, warn: Callable[[str], None]) -> list[Row] | None:
    """The rows of the result file at `path` (each a dict, in file order); None if there
    is no such file. Text is read as UTF-8 (a leading byte-order mark, which Excel and
    PowerShell write, is not text), undecodable bytes replaced."""
    fmt = format_of(path)
    if fmt is None:
        warn(f"{path}: cannot tell its format by its extension (.tsv, .csv, .jsonl, .json); "
             "it is skipped")
        return None
    try:
        with open(path, encoding="utf-8-sig", errors="replace", newline="") as handle:
            text = handle.read()
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        warn(f"{path} is a folder, not a result file; it is skipped")
        return None
    if fmt == "jsonl":
        return _jsonl(path, text, warn)
    if fmt == "json":
        return _json(path, text, warn)
    return _delimited(path, text, "\t" if fmt == "tsv" else ",", warn)


def _delimited(path: str, text: str, delimiter: str, warn: Callable[[str], None]) -> list[Row]:
    """A header row, then rows; a TSV is split on newlines and tabs only (no quoting), a
    CSV as `csv` reads it, so a quoted cell may hold a newline. Never `str.splitlines`,
    which also splits at form feeds and U+2028, and cuts a quoted cell in two. A row with
    more cells than the header has them named `column<n>`."""
    lines: Iterator[list[str]]
    if delimiter == "\t":
        lines = (line.removesuffix("\r").split("\t") for line in text.split("\n"))
    else:
        lines = csv.reader(io.StringIO(text, newline=""))
    rows: list[Row] = []
    try:
        header = next(lines, None)
        if header is None:
            return []
        for cells in lines:
            if not any(cells):
                continue  # a blank line
            names = [*header, *(f"column{n}" for n in range(len(header) + 1,
                                                            len(cells) + 1))]
            rows.append({name: cell for name, cell in zip(names, cells, strict=False)})
    except csv.Error as exc:
        warn(f"{path}: not CSV past row {len(rows) + 1} ({exc}); the rows before are read")
    return rows


def _jsonl(path: str, text: str, warn: Callable[[str], None]) -> list[Row]:
    rows: list[Row] = []
    lines = text.split("\n")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError:
            if number == len(lines):
                continue  # no newline after it: still being written
            warn(f"{path}:{number}: not a JSON line; skipped")
            continue
        if not isinstance(value, dict):
            warn(f"{path}:{number}: a JSON {type(value).__name__}, not an object; skipped")
            continue
        rows.append(value)
    return rows


def _json(path: str, text: str, warn: Callable[[str], None]) -> list[Row]:
    """A JSON file holding one object (one row) or a list of objects."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        warn(f"{path}: not JSON ({exc}); skipped")
        return []
    items = value if isinstance(value, list) else [value]
    rows = [item for item in items if isinstance(item, dict)]
    if len(rows) != len(items):
        warn(f"{path}: holds {len(items) - len(rows)} value(s) that are not objects; skipped")
    return rows
