"""Shared helpers for the benchmarks: time a command, alternate cases, print a table.

Every figure is a whole process run from fork to exit (`perf_counter` around `os.wait4`),
so start-up counts; `wait4` also gives the child's own peak RSS and CPU times without a
wrapper process. Cases are run in ABBA order (A B, then B A, ...) after a warm-up round, so
a drift in machine load hits every case alike, and each figure is the median of the runs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent


@dataclass
class Sample:
    """One run of one command."""

    wall: float
    user: float
    sys: float
    maxrss_mb: float
    rc: int


TIME = "/usr/bin/time"


def measure(argv: Sequence[str], *, cwd: str | os.PathLike[str] | None = None,
            env: dict[str, str] | None = None, expect_rc: int | None = 0,
            rss: bool = False) -> Sample:
    """Run `argv` once (stdout and stderr discarded) and return its wall time and rusage.

    Peak RSS: Linux carries a process's high-water RSS across exec, so `wait4` reports at
    least this (Python) benchmark's own RSS for any child it forks. With `rss=True` the
    command runs under GNU `/usr/bin/time -f %M` (a small C program, so its floor is ~2 MB)
    and that figure is used; the wrapper's ~1 ms is then in every case's time alike.
    """
    wrap = rss and Path(TIME).exists()
    with tempfile.TemporaryFile() as err, tempfile.NamedTemporaryFile(mode="r") as peak:
        command = [TIME, "-f", "%M", "-o", peak.name, *argv] if wrap else list(argv)
        started = time.perf_counter()
        child = subprocess.Popen(command, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        if expect_rc is not None and child.returncode != expect_rc:
            err.seek(0)
            raise RuntimeError(f"{' '.join(argv)} exited {child.returncode}:\n"
                               f"{err.read().decode(errors='replace')[-2000:]}")
        maxrss_kb = usage.ru_maxrss
        if wrap:
            maxrss_kb = int(peak.read().split()[-1])
    return Sample(wall, usage.ru_utime, usage.ru_stime, maxrss_kb / 1024, child.returncode)


def bench_env(tmp: str | os.PathLike[str]) -> dict[str, str]:
    """The environment for every timed process: bytecode cached, as in a real install.

    A session may run with PYTHONDONTWRITEBYTECODE=1, which would make each journalq process
    compile every journalq module from source (~30 ms) while its baselines import
    third-party packages from their .pyc files. The cache goes under `tmp` (so nothing is
    written into the package); the warm-up round fills it.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = os.path.join(os.fspath(tmp), "pycache")
    return env


@dataclass
class Case:
    """A command to time; `prepare(run)` gives its argv and cwd for that run (untimed)."""

    name: str
    prepare: Callable[[int], tuple[list[str], str | None]]
    expect_rc: int | None = 0
    rss: bool = False
    env: dict[str, str] | None = None
    samples: list[Sample] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(s.wall for s in self.samples)

    @property
    def cpu_median(self) -> float:
        """Median user + system CPU time: steadier than wall time on a busy machine."""
        return statistics.median(s.user + s.sys for s in self.samples)

    @property
    def maxrss_mb(self) -> float:
        return max(s.maxrss_mb for s in self.samples)

    def spread(self) -> str:
        walls = sorted(s.wall for s in self.samples)
        return f"min {fmt_s(walls[0])}  max {fmt_s(walls[-1])}  n={len(walls)}"


def alternate(cases: Sequence[Case], runs: int, warmup: int = 1,
              progress: bool = True, env: dict[str, str] | None = None) -> None:
    """Run every case `warmup + runs` times in ABBA order; keep the timed runs' samples.

    `env` (see `bench_env`) is used by every case that has none of its own.
    """
    for case in cases:
        case.env = case.env or env
    for round_ in range(warmup + runs):
        order = list(cases) if round_ % 2 == 0 else list(reversed(cases))
        for case in order:
            argv, cwd = case.prepare(round_)
            sample = measure(argv, cwd=cwd, env=case.env, expect_rc=case.expect_rc,
                             rss=case.rss)
            if round_ >= warmup:
                case.samples.append(sample)
            if progress:
                tag = "warm-up" if round_ < warmup else f"run {round_ - warmup + 1}/{runs}"
                print(f"  {tag:>10}  {case.name:<44} {fmt_s(sample.wall):>9}  "
                      f"rss {sample.maxrss_mb:6.1f} MB", file=sys.stderr, flush=True)


def fmt_s(seconds: float) -> str:
    """Seconds as ms below 1 s."""
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


@dataclass
class Row:
    """One line of a results table: a figure, its baseline, their ratio and the target."""

    figure: str
    value: str
    baseline: str
    baseline_value: str
    ratio: float | None
    target: str
    ok: bool | None


def print_table(title: str, rows: Sequence[Row]) -> None:
    """A plain-text table with a PASS/FAIL column."""
    head = ("figure", "median", "baseline", "baseline median", "ratio", "target", "")
    body = [(r.figure, r.value, r.baseline, r.baseline_value,
             "-" if r.ratio is None else f"{r.ratio:.2f}x", r.target,
             "" if r.ok is None else ("PASS" if r.ok else "FAIL")) for r in rows]
    widths = [max(len(str(line[i])) for line in (head, *body)) for i in range(len(head))]
    sys.stderr.flush()
    print(f"\n{title}")
    for line in (head, tuple("-" * w for w in widths), *body):
        print("  " + "  ".join(str(cell).ljust(w) for cell, w in zip(line, widths,
                                                                         strict=True)).rstrip(),
              flush=True)


def save_json(path: str | None, title: str, rows: Sequence[Row], cases: Sequence[Case],
              extra: dict[str, object] | None = None) -> None:
    """Write the figures and every raw sample to `path` (for the README's table)."""
    if not path:
        return
    doc = {"title": title, "python": sys.version.split()[0], "machine": os.uname().machine,
           "cpus": os.cpu_count(), "rows": [asdict(r) for r in rows],
           "cases": {c.name: [asdict(s) for s in c.samples] for c in cases},
           **(extra or {})}
    Path(path).write_text(json.dumps(doc, indent=2))


def arg_parser(doc: str | None, runs: int) -> argparse.ArgumentParser:
    """The options every benchmark takes."""
    parser = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=runs,
                        help=f"timed runs per command (median reported; default {runs})")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (and say where)")
    return parser


def journalq_command() -> list[str]:
    """How to run journalq: the console script beside this interpreter, else `-m journalq`."""
    script = Path(sys.executable).with_name("journalq")
    return [str(script)] if script.exists() else [sys.executable, "-m", "journalq"]


@contextlib.contextmanager
def scratch(name: str, keep: bool) -> Iterator[Path]:
    """A temp folder for one benchmark's inputs; deleted afterwards unless `keep` (--keep)."""
    tmp = Path(tempfile.mkdtemp(prefix=f"journalq-bench-{name}-"))
    try:
        yield tmp
    finally:
        if keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def size_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """--jobs and --events: the size of the generated journal (10,000 jobs, 1,000,000)."""
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    return parser


def spread_rows(cases: Sequence[Case], show: Callable[[Case], str]) -> list[Row]:
    """One row per case with its median (`show`) and its min/max spread."""
    return [Row(f"  {case.name}", show(case), "", "", None, case.spread(), None)
            for case in cases]
