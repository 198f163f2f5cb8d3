"""The run card says when an attempt started and finished in one format, the journal's
(RFC 3339 UTC with microseconds): `finished` used to be cut to whole seconds, so a card could
read as finishing before it started plus its duration."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from test_run_support import SmallQueue

from journalq.timestamps import parse_ts_micros

JOURNAL_TS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


def test_a_cards_times_are_the_journals_and_add_up(project: Path) -> None:
    """Both times have the journal's fixed-width form, and finished >= started + duration."""
    with SmallQueue(project, ["a"]) as queue:
        assert 0 == queue.run("--quiet").returncode
        card = tomllib.loads((queue.out_dir("a") / "journalq-run.toml").read_text())

    assert JOURNAL_TS.fullmatch(card["started"]), card["started"]
    assert JOURNAL_TS.fullmatch(card["finished"]), card["finished"]
    took = parse_ts_micros(card["finished"]) - parse_ts_micros(card["started"])
    assert took >= round(card["duration"] * 1e6)
