"""A stand-in for scripts/run_sweep.py: same flags, real output files, tunable misbehaviour.

Flags: --model M --layers 10-14|8,12,16 --alphas 0.5,1,2 --output-dir D --summary-path F.
It writes one JSON line per (layer, alpha) to D/results.jsonl and a TSV summary to F.

Environment knobs (all optional), so tests can make it slow, fail or misbehave:
  WORKER_LOG          append "<job> <attempt> <pid>" here at start (counts real runs)
  WORKER_SLEEP        seconds to sleep before writing results
  WORKER_SLEEP_MATCH  only sleep when JOURNALQ_JOB contains this text
  WORKER_FAIL_MATCH   exit 3 when JOURNALQ_JOB contains this text
  WORKER_IGNORE_TERM  1: ignore SIGTERM (journalq must SIGKILL it)
  WORKER_GRANDCHILD   1: spawn a sleeping grandchild, pid written to D/grandchild.pid
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time


def layers(text: str) -> list[int]:
    if "-" in text:
        low, high = (int(part) for part in text.split("-"))
        return list(range(low, high + 1))
    return [int(part) for part in text.split(",")]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--layers", required=True, type=layers)
    parser.add_argument("--alphas", required=True,
                        type=lambda t: [float(a) for a in t.split(",")])
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--summary-path", required=True)
    args = parser.parse_args()
    job = os.environ.get("JOURNALQ_JOB", "?")
    attempt = os.environ.get("JOURNALQ_ATTEMPT", "?")
    if os.environ.get("WORKER_LOG"):
        with open(os.environ["WORKER_LOG"], "a") as log:
            log.write(f"{job} {attempt} {os.getpid()}\n")
    if os.environ.get("WORKER_IGNORE_TERM") == "1":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    os.makedirs(args.output_dir, exist_ok=True)
    if os.environ.get("WORKER_GRANDCHILD") == "1":
        grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        with open(os.path.join(args.output_dir, "grandchild.pid"), "w") as f:
            f.write(str(grandchild.pid))
    print(f"steering {args.model} layers={args.layers} alphas={args.alphas}", flush=True)
    match = os.environ.get("WORKER_SLEEP_MATCH")
    if os.environ.get("WORKER_SLEEP") and (not match or match in job):
        time.sleep(float(os.environ["WORKER_SLEEP"]))
    fail = os.environ.get("WORKER_FAIL_MATCH")
    if fail and fail in job:
        print(f"failing on purpose ({job})", file=sys.stderr, flush=True)
        return 3
    rows = [{"model": args.model, "layer": layer, "alpha": alpha,
             "score": round(1.0 / (1 + layer * alpha), 6)}
            for layer in args.layers for alpha in args.alphas]
    with open(os.path.join(args.output_dir, "results.jsonl"), "w") as out:
        out.writelines(json.dumps(row) + "\n" for row in rows)
    with open(args.summary_path, "w") as summary:
        summary.write("model\tlayer\talpha\tscore\n")
        summary.writelines(f"{r['model']}\t{r['layer']}\t{r['alpha']}\t{r['score']}\n"
                           for r in rows)
    print(f"wrote {len(rows)} results", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
