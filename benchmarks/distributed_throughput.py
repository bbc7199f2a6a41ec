"""Throughput of a distributed search with 1, 2 and 4 worker processes.

Each run is `tfnas search --workers N` (a chief and N workers on this
machine, regularized evolution on the MLP space and digits). Throughput is
measured between the first and the last finished trial, from the chief's
trial lines, so process start-up is left out; the oracle's share is the
time the chief's oracle spent in create_trial and end_trial (its
`busy_seconds`) over that same span. Two trial sizes: tiny (1 epoch,
well under a second of training) and about 10 seconds (60 epochs); the
median trial's training time (its `train_time_s`) is reported with them.

Usage: python benchmarks/distributed_throughput.py [--repeats 3] [--workers 1 2 4]
    [--sizes tiny '10 s']
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import report
from tfnas import project

SIZES = {"tiny": ["--epochs", "1"], "10 s": ["--epochs", "60"]}


def run(workers, size, trials, directory):
    """(trials per minute, oracle share of the span, median seconds of
    training per trial) of one search."""
    command = [sys.executable, "-m", "tfnas", "search", "--space", "mlp",
               "--strategy", "evolution", "--max-trials", str(trials), *SIZES[size],
               "--directory", directory, "--project-name", "p",
               "--workers", str(workers)]
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True, env=environment)
    ends = [time.perf_counter() for line in process.stdout if line.startswith("[trial ")]
    if process.wait() != 0 or len(ends) != trials:
        raise RuntimeError(f"the search with {workers} workers failed ({len(ends)} trials)")
    with open(os.path.join(directory, "p", "oracle.json")) as file:
        busy = json.load(file)["busy_seconds"]
    span = ends[-1] - ends[0]
    train_seconds = statistics.median(
        trial.metrics.get_last_value("train_time_s")
        for trial in project.load_trials(os.path.join(directory, "p")))
    return 60 * (trials - 1) / span, busy / span, train_seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", nargs="+", choices=list(SIZES), default=list(SIZES))
    parser.add_argument("--tiny-trials", type=int, default=24)
    parser.add_argument("--long-trials", type=int, default=9)
    parser.add_argument("--output",
                        default=os.path.join(report.RESULTS, "distributed_throughput.md"))
    args = parser.parse_args()

    trials = {"tiny": args.tiny_trials, "10 s": args.long_trials}
    rows = ["| trials | workers | training per trial (s, median) | trials per minute "
            "(median) | speed-up over 1 worker | oracle share of wall time |",
            "|---|---|---|---|---|---|"]
    for size in args.sizes:
        results = {}
        # Interleaved repeats: a slow minute of the machine hits every setting.
        for _ in range(args.repeats):
            for workers in args.workers:
                with tempfile.TemporaryDirectory() as directory:
                    results.setdefault(workers, []).append(
                        run(workers, size, trials[size], directory))
        base = statistics.median(r[0] for r in results[args.workers[0]])
        for workers in args.workers:
            rate = statistics.median(r[0] for r in results[workers])
            share = statistics.median(r[1] for r in results[workers])
            train = statistics.median(r[2] for r in results[workers])
            rows.append(f"| {size} ({trials[size]}) | {workers} | {train:.1f} | {rate:.1f} | "
                        f"{rate / base:.2f}x | {100 * share:.2f}% |")
            print(rows[-1], flush=True)
    report.write_table(
        args.output, "Distributed search throughput",
        f"`python {' '.join(sys.argv)}`: `tfnas search --workers N` (evolution, MLP "
        f"space, digits); medians over {args.repeats} interleaved repeats. Trials per "
        "minute between the first and the last finished trial (start-up excluded); "
        "oracle share: the chief oracle's time in create_trial + end_trial over that span.",
        rows)


if __name__ == "__main__":
    main()
