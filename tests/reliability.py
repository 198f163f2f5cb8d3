"""The reliability figures the README quotes, added up by the crash, kill and fuzz tests and
printed as a table at the end of a pytest run (a plugin: tests/conftest.py loads it).

Tests add to `FIGURES` with `count(name, n)`; the fuzz tests keep their per-loop counts in
`FUZZ_CASES`. A figure no test of this run touched is left out of the table, so a partial
run never shows a zero it did not measure.
"""

from __future__ import annotations

from typing import Any

CRASH_POINTS = "crash points tried"
KILLS = "kills survived"
TORN_TAILS = "torn tails seen and repaired"
FUZZ = "fuzz cases run"
EVENTS_LOST = "events lost"
DONE_RERUN = "done jobs rerun"
ORDER = (CRASH_POINTS, KILLS, TORN_TAILS, FUZZ, EVENTS_LOST, DONE_RERUN)

FIGURES: dict[str, int] = {}
DETAILS: dict[str, list[str]] = {}
FUZZ_CASES: dict[str, int] = {}


def count(name: str, n: int = 1, detail: str | None = None) -> None:
    """Add `n` to figure `name` (0 still makes it appear: it was measured), with an optional
    word on where the count comes from."""
    FIGURES[name] = FIGURES.get(name, 0) + n
    if detail:
        DETAILS.setdefault(name, []).append(detail)


def table() -> list[str]:
    """The figures as aligned lines, in the README's order."""
    figures = dict(FIGURES)
    if FUZZ_CASES:
        figures[FUZZ] = figures.get(FUZZ, 0) + sum(FUZZ_CASES.values())
    names = [name for name in ORDER if name in figures]
    names += sorted(set(figures) - set(ORDER))
    width = max(map(len, names), default=0)
    lines = []
    for name in names:
        detail = "; ".join(DETAILS.get(name, []))
        lines.append(f"{name:<{width}}  {figures[name]:>7,}" + (f"  ({detail})" if detail else ""))
    return lines


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the table after the test results, if any test counted anything."""
    lines = table()
    if lines:
        terminalreporter.section("reliability figures")
        for line in lines:
            terminalreporter.write_line(line)
