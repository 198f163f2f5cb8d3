"""Profiles of journalq's hot paths, to find what holds a benchmark above its target.

What it measures (no targets: it explains the bench_*.py figures):

- `status`: cProfile (deterministic; inflates call-heavy code) and, when installed,
  pyinstrument (sampling) of `journalq status --state J --json` on the 1,000,000-event
  journal of `journal_gen.py`;
- `run`: the same for `journalq run --quiet` over 500 trivial jobs (`true`) on a fresh
  journal;
- `import`: `python -X importtime -m journalq status` on a small journal, summed per
  top-level package, with the heaviest single imports.

    python tests/bench/profile_hotpaths.py [--only status,run,import] [--top 25]
"""

from __future__ import annotations

import argparse
import importlib.util
import pstats
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from benchlib import bench_env, scratch, size_args
from journal_gen import config_text, generate

ENV: dict[str, str] = {}


def cprofile(argv: list[str], cwd: Path, out: Path, top: int, title: str) -> None:
    subprocess.run([sys.executable, "-m", "cProfile", "-o", str(out), "-m", "journalq",
                    *argv], cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   check=True, env=ENV)
    stats = pstats.Stats(str(out))
    print(f"\n==== cProfile: journalq {' '.join(argv[:1])} ({title}); "
          f"total {stats.total_tt:.2f} s (with profiler overhead) ====")
    for key in ("tottime", "cumulative"):
        print(f"\n-- top {top} by {key} --", flush=True)
        stats.sort_stats(key).print_stats(top)
        sys.stdout.flush()


def pyinstrument(argv: list[str], cwd: Path, title: str) -> None:
    if importlib.util.find_spec("pyinstrument") is None:
        print("\n(pyinstrument is not installed: pip install pyinstrument for a sampling "
              "profile)")
        return
    done = subprocess.run([sys.executable, "-m", "pyinstrument", "-r", "text",
                           "--show-all", "-m", "journalq", *argv], cwd=cwd,
                          capture_output=True, text=True, check=True, env=ENV)
    report = done.stdout
    start = report.find("Recorded:")
    print(f"\n==== pyinstrument: journalq {argv[0]} ({title}) ====", flush=True)
    lines = report[start:].splitlines() if start >= 0 else report.splitlines()
    # The tree; the job's own output (the status document) precedes it.
    print("\n".join(line for line in lines[:160] if line.strip()), flush=True)


_IMPORT = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)")


def importtime(journal: Path, top: int) -> None:
    argv = [sys.executable, "-X", "importtime", "-m", "journalq", "status", "--state",
            str(journal)]
    for _ in range(2):  # the first run fills the bytecode cache
        done = subprocess.run(argv, capture_output=True, text=True, check=True, env=ENV)
    rows = []
    for line in done.stderr.splitlines():
        match = _IMPORT.match(line)
        if match:
            self_us, cum_us, indent, name = match.groups()
            rows.append((int(self_us), int(cum_us), len(indent) // 2, name))
    by_package: dict[str, int] = defaultdict(int)
    for self_us, _, _, name in rows:
        by_package[name.split(".")[0]] += self_us
    total = sum(self_us for self_us, *_ in rows)
    print(f"\n==== python -X importtime -m journalq status (small journal): {len(rows)} "
          f"modules, {total / 1000:.1f} ms of imports ====")
    print("\n-- self time summed per top-level package --")
    for name, us in sorted(by_package.items(), key=lambda kv: -kv[1])[:top]:
        print(f"  {us / 1000:8.1f} ms  {name}")
    print(f"\n-- top {top} imports by cumulative time (depth 0 = imported by journalq or "
          "the interpreter) --")
    for self_us, cum_us, depth, name in sorted(rows, key=lambda r: -r[1])[:top]:
        print(f"  {cum_us / 1000:8.1f} ms cum  {self_us / 1000:7.1f} ms self  "
              f"depth {depth}  {name}")
    journalq_mods = [r for r in rows if r[3].startswith("journalq")]
    print("\n-- journalq's own modules (cumulative, in import order) --")
    for self_us, cum_us, _, name in journalq_mods:
        print(f"  {cum_us / 1000:8.1f} ms cum  {self_us / 1000:7.1f} ms self  {name}")
    sys.stdout.flush()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="status,run,import")
    parser.add_argument("--top", type=int, default=25)
    size_args(parser)
    parser.add_argument("--run-jobs", type=int, default=500)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    only = set(args.only.split(","))
    with scratch("profile", args.keep) as tmp:
        ENV.update(bench_env(tmp))
        if "status" in only:
            journal = tmp / "big.jsonl"
            generate(journal, args.jobs, args.events)
            argv = ["status", "--state", str(journal), "--json"]
            title = f"{args.events:,} events, {args.jobs:,} jobs"
            cprofile(argv, tmp, tmp / "status.prof", args.top, title)
            pyinstrument(argv, tmp, title)
        if "run" in only:
            config = tmp / "trivial.yaml"
            config.write_text(config_text(args.run_jobs, command=["true"], max_attempts=1))
            title = f"{args.run_jobs} x true"
            for name, profile in (("cprofile", True), ("pyinstrument", False)):
                work = tmp / f"run-{name}"
                work.mkdir()
                argv = ["run", "--quiet", "--config", str(config), "--state", "j.jsonl"]
                if profile:
                    cprofile(argv, work, tmp / "run.prof", args.top, title)
                else:
                    pyinstrument(argv, work, title)
        if "import" in only:
            small = tmp / "small.jsonl"
            generate(small, 6, 60)
            importtime(small, args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
