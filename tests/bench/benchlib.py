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


def print_table(title: str, rows: Sequence[Row], value: str = "median") -> None:
    """A plain-text table with a PASS/FAIL column; `value` heads the figures' column."""
    head = ("figure", value, "baseline", f"baseline {value}", "ratio", "target", "")
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


# ---- helpers for the issue-10/12 benchmarks: journals, quick mode, /proc, strace ----------


def quick_arg(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """--quick: small sizes and one run, to check that a benchmark works (figures are noise)."""
    parser.add_argument("--quick", action="store_true",
                        help="small sizes, one run: checks the script, not the figures")
    return parser


def journal_events(path: str | os.PathLike[str]) -> list[dict[str, object]]:
    """Every whole, parseable line of a journal as a dict (a torn tail is skipped)."""
    events = []
    with open(path, "rb") as handle:
        for line in handle:
            if line.endswith(b"\n"):
                with contextlib.suppress(ValueError):
                    events.append(json.loads(line))
    return events


def epoch(ts: object) -> float:
    """A journal timestamp (`2026-01-01T00:00:00.000000Z`) as seconds since the epoch."""
    from datetime import datetime

    return datetime.fromisoformat(str(ts).replace("Z", "+00:00")).timestamp()


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) the process `pid` itself has used so far: nanoseconds from
    /proc/<pid>/schedstat where the kernel has it, else clock ticks from /proc/<pid>/stat.
    Its reaped children are not counted (they are in stat's cutime/cstime, not read here)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_size(path: str | os.PathLike[str]) -> int:
    """Bytes in the regular files under `path` (0 if it does not exist)."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


@dataclass
class FileIO:
    """Bytes moved to and from each file by a traced process tree, from strace."""

    read: dict[str, int] = field(default_factory=dict)
    written: dict[str, int] = field(default_factory=dict)
    opens: dict[str, int] = field(default_factory=dict)
    mmaps: dict[str, int] = field(default_factory=dict)
    copied: dict[str, int] = field(default_factory=dict)  # of `read`: kernel copies out of it
    rc: int = 0

    def read_from(self, path: str | os.PathLike[str]) -> int:
        return self.read.get(os.path.realpath(path), 0)

    def written_under(self, folder: str | os.PathLike[str]) -> int:
        root = os.path.realpath(folder) + os.sep
        return sum(n for p, n in self.written.items() if p.startswith(root))


# Syscalls that move file bytes, and which of their `fd<path>` arguments (in order of
# appearance, strace -y) is read from and which written to.
_READS = {"read": 0, "pread64": 0, "readv": 0, "preadv": 0, "preadv2": 0,
          "sendfile": 1, "copy_file_range": 0, "splice": 0}
_WRITES = {"write": 0, "pwrite64": 0, "writev": 0, "pwritev": 0, "pwritev2": 0,
           "sendfile": 0, "copy_file_range": 1, "splice": 1}
_KERNEL_COPIES = {"sendfile", "copy_file_range", "splice"}  # file to file, never in Python
_TRACED = sorted({*_READS, *_WRITES, "mmap", "open", "openat", "openat2"})


def strace_available() -> str | None:
    """The strace binary, or None (`apt-get install -y strace`)."""
    return shutil.which("strace")


def trace_io(argv: Sequence[str], *, cwd: str | os.PathLike[str] | None = None,
             env: dict[str, str] | None = None, expect_rc: int | None = 0) -> FileIO:
    """Run `argv` under `strace -f -y` and add up, per file path, the bytes its whole process
    tree read and wrote through every syscall that moves file bytes (read/write and their
    vectored and positional forms, sendfile, copy_file_range, splice), plus its opens and
    file-backed mmaps (bytes read through a mapping cannot be counted: they are reported
    so that a figure is never silently low).

    Why strace: it sees every byte whatever the code path (buffered files, os.write,
    shutil's sendfile), attributes it to the file by path (/proc/<pid>/io cannot split by
    file), and needs no change to journalq. It slows the traced process, so its wall time
    is never used; `--seccomp-bpf` stops only on the traced calls. One output file per
    process (-ff) means no interleaved `<unfinished ...>` lines to stitch.
    """
    import re

    strace = strace_available()
    if strace is None:
        raise SystemExit("strace is not installed (apt-get install -y strace)")
    call = re.compile(r"^(\w+)\((.*)\)\s+=\s+(-?\d+|0x[0-9a-f]+)(?:<([^<>]*)>)?")
    fdpath = re.compile(r"\b\d+<([^<>]*)>")
    io = FileIO()
    with tempfile.TemporaryDirectory(prefix="journalq-strace-") as out:
        prefix = os.path.join(out, "t")
        done = subprocess.run([strace, "-f", "-ff", "-qq", "-y", "-s", "0", "--seccomp-bpf",
                               "-e", "signal=none", "-e", f"trace={','.join(_TRACED)}",
                               "-o", prefix, *argv], cwd=cwd, env=env,
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
        io.rc = done.returncode
        if expect_rc is not None and done.returncode != expect_rc:
            raise RuntimeError(f"{' '.join(argv)} exited {done.returncode} under strace:\n"
                               f"{done.stderr.decode(errors='replace')[-2000:]}")
        for name in os.listdir(out):
            with open(os.path.join(out, name), errors="replace") as trace:
                for line in trace:
                    match = call.match(line)
                    if match is None:
                        continue
                    name_, args, result, result_path = match.groups()
                    if name_ in ("open", "openat", "openat2"):
                        if result_path and not result.startswith("-"):
                            io.opens[result_path] = io.opens.get(result_path, 0) + 1
                        continue
                    paths = fdpath.findall(args)
                    if name_ == "mmap":
                        if paths and not result.startswith("-"):
                            io.mmaps[paths[0]] = io.mmaps.get(paths[0], 0) + 1
                        continue
                    if not result.isdigit():
                        continue  # -1 (an error) or a pointer
                    moved = int(result)
                    for table, totals in ((_READS, io.read), (_WRITES, io.written)):
                        index = table.get(name_)
                        if index is not None and index < len(paths):
                            totals[paths[index]] = totals.get(paths[index], 0) + moved
                    if name_ in _KERNEL_COPIES and paths:
                        source = paths[_READS[name_]]
                        io.copied[source] = io.copied.get(source, 0) + moved
    return io


def verdict(value: float, limit: float) -> bool:
    """value <= limit (a small helper so that every bar reads the same way)."""
    return value <= limit
