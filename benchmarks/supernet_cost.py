"""What a one-shot search costs: the supernet against one stand-alone candidate.

For each one-shot strategy, one child process runs a one-epoch
`OneShotTuner` search on digits (the supernet trains one epoch, then the
derived architecture trains one epoch as its trial, as `tfnas search
--strategy S --epochs 1` does), and reports:

- the first supernet step (tracing the train step and its first run), the
  median of the other supernet steps, the supernet phase's wall time and
  the process's peak resident memory at its end;
- the median training step of the derived (stand-alone) candidate and the
  wall and CPU time of the whole search, the process's max RSS.

`--tfnas-path DIR` runs the children on another checkout of tfnas (e.g. an
old commit unpacked with `git archive`), to quote before/after side by side.
The machine is shared: wall times move with its load; CPU times less so.

Usage: python benchmarks/supernet_cost.py [--space cell] [--strategies darts darts2]
    [--tfnas-path DIR ...] [--space-arg num_cells=3]
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def child(space_name, strategy, space_args):
    """Runs one search in this process; prints one JSON line of costs."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tempfile

    import keras
    import keras_tuner as kt

    import tfnas
    from tfnas.supernet.tuner import OneShotTuner

    class StepTimes(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.times = []

        def on_train_batch_begin(self, batch, logs=None):
            self.start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.times.append(time.perf_counter() - self.start)

    started, cpu_started = time.perf_counter(), time.process_time()
    data = tfnas.load_data("digits")
    space = tfnas.spaces.get(space_name, data.input_shape, data.num_classes, **space_args)
    result = {"strategy": strategy, "tfnas": os.path.dirname(tfnas.__file__)}
    with tempfile.TemporaryDirectory() as directory:
        tuner = OneShotTuner(space, strategy=strategy, seed=0, directory=directory,
                             progress=False, log_dir=None, spos_trials=3, enas_trials=3,
                             enas_steps=5)
        supernet_steps = StepTimes()
        own_callbacks = tuner.strategy.callbacks
        tuner.strategy.callbacks = lambda epochs: [*own_callbacks(epochs), supernet_steps]
        own_search = tuner.search_supernet

        def timed_search(*args):
            start = time.perf_counter()
            values = own_search(*args)
            result["supernet_s"] = time.perf_counter() - start
            result["supernet_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            return values

        tuner.search_supernet = timed_search
        tuner.search(data.train, validation_data=data.validation, epochs=1, verbose=0)
        result["search_s"] = time.perf_counter() - started
        result["search_cpu_s"] = time.process_time() - cpu_started
        times = supernet_steps.times
        result["first_step_s"] = times[0]
        result["supernet_step_s"] = statistics.median(times[1:]) if len(times) > 1 else None
        hp = kt.HyperParameters()
        hp.values.update(tuner.oracle.architecture)
        candidate = space.build(hp)
        candidate_steps = StepTimes()
        candidate.fit(data.train.take(12), epochs=1, verbose=0, callbacks=[candidate_steps])
        result["candidate_step_s"] = statistics.median(candidate_steps.times[2:])
    result["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(result), flush=True)


def run(space, strategy, tfnas_path, space_args):
    env = dict(os.environ, PYTHONPATH=tfnas_path)
    command = [sys.executable, os.path.abspath(__file__), "--child", "--space", space,
               "--strategies", strategy,
               *[f"--space-arg={k}={v}" for k, v in space_args.items()]]
    start = time.perf_counter()
    process = subprocess.run(command, env=env, capture_output=True, text=True, cwd="/")
    wall = time.perf_counter() - start
    lines = [line for line in process.stdout.splitlines() if line.startswith("RESULT ")]
    if process.returncode or not lines:
        return {"strategy": strategy, "tfnas": tfnas_path,
                "error": (process.stderr.strip().splitlines() or ["?"])[-1]}
    result = json.loads(lines[-1][len("RESULT "):])
    result["process_s"] = wall
    return result


def parse_space_args(items):
    values = {}
    for item in items:
        key, value = item.split("=", 1)
        values[key] = int(value) if value.lstrip("-").isdigit() else value
    return values


def table(rows, command):
    def cell(row, key, digits=1):
        value = row.get(key)
        return "-" if value is None else f"{value:.{digits}f}"

    lines = [
        "# Supernet cost: one-epoch one-shot search on digits",
        "",
        f"Command: `{command}`",
        "",
        "Times in seconds, memory in MB (peak resident). First step: tracing the",
        "train step and its first run. The machine is shared (2 cores, several",
        "processes): wall times move with its load, CPU time less so.",
        "",
        "| tfnas | strategy | first step | supernet step | candidate step | step ratio "
        "| supernet phase | search wall | search CPU | RSS after supernet | max RSS |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['tfnas']} | {row['strategy']} | error: {row['error']} "
                         "| | | | | | | | |")
            continue
        ratio = (row["supernet_step_s"] / row["candidate_step_s"]
                 if row.get("supernet_step_s") and row.get("candidate_step_s") else None)
        lines.append(
            f"| {row['label']} | {row['strategy']} | {cell(row, 'first_step_s')} "
            f"| {cell(row, 'supernet_step_s', 3)} | {cell(row, 'candidate_step_s', 3)} "
            f"| {cell({'r': ratio}, 'r')} | {cell(row, 'supernet_s')} "
            f"| {cell(row, 'search_s')} | {cell(row, 'search_cpu_s')} "
            f"| {cell(row, 'supernet_rss_mb', 0)} | {cell(row, 'max_rss_mb', 0)} |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="cell")
    parser.add_argument("--strategies", nargs="+", default=["darts", "darts2"])
    parser.add_argument("--tfnas-path", nargs="+", default=[ROOT],
                        help="checkouts of tfnas to compare (label=DIR or DIR)")
    parser.add_argument("--space-arg", action="append", default=[])
    parser.add_argument("--output", default=os.path.join(HERE, "results", "supernet_cost.md"))
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    space_args = parse_space_args(args.space_arg)
    if args.child:
        child(args.space, args.strategies[0], space_args)
        return
    rows = []
    for strategy in args.strategies:
        for entry in args.tfnas_path:
            label, _, path = entry.rpartition("=")
            row = run(args.space, strategy, os.path.abspath(path), space_args)
            row["label"] = label or os.path.basename(os.path.abspath(path))
            rows.append(row)
            print(json.dumps(row), flush=True)
    command = "python benchmarks/supernet_cost.py " + " ".join(sys.argv[1:])
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as handle:
        handle.write(table(rows, command))
    print(table(rows, command))


if __name__ == "__main__":
    main()
