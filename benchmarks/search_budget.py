"""Where the whole `tfnas search` command spends its CPU time and memory.

Runs the command in this process (`tfnas.cli.main`, e.g. `search --strategy
darts --space cell --max-trials 3 --epochs 1` on digits) with timers around
its phases: imports, data, the supernet's build, compile, `fit` (its first
step: tracing the train step and its first run; the later steps;
validation), derivation, the derived architecture's trial (build, `fit`,
the cost estimates: FLOPs and latency), the best model's reload, its test
evaluation and export. Times are inclusive (a phase includes the phases
called inside it); each phase's CPU seconds (user + sys of the process),
wall seconds, calls, and the RSS after its last call are written as a
markdown table.

Usage: python benchmarks/search_budget.py [--tfnas-path DIR] [--output FILE]
    [-- tfnas search arguments]
"""

import argparse
import functools
import json
import os
import resource
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_COMMAND = ["search", "--strategy", "darts", "--space", "cell", "--max-trials", "3",
                   "--epochs", "1"]


def rss_mb():
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


class Budget:
    """Inclusive CPU and wall seconds per named phase."""

    def __init__(self):
        self.rows = {}  # name -> {"cpu", "wall", "calls", "rss"}
        self.order = []

    def add(self, name, cpu, wall):
        if name not in self.rows:
            self.rows[name] = {"cpu": 0.0, "wall": 0.0, "calls": 0}
            self.order.append(name)
        row = self.rows[name]
        row["cpu"] += cpu
        row["wall"] += wall
        row["calls"] += 1
        row["rss"] = rss_mb()

    def wrap(self, owner, attribute, name):
        function = getattr(owner, attribute)

        @functools.wraps(function)
        def timed(*args, **kwargs):
            cpu, wall = time.process_time(), time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.add(name, time.process_time() - cpu, time.perf_counter() - wall)

        setattr(owner, attribute, timed)


def instrument(budget):
    """Timers around the phases of a one-shot search (see the docstring)."""
    import keras

    from tfnas import estimation, tuner
    from tfnas.supernet import oneshot
    from tfnas.supernet import tuner as oneshot_tuner

    budget.wrap(oneshot_tuner, "build_supernet", "supernet: build")
    budget.wrap(oneshot.OneShotModel, "compile", "supernet: compile")
    budget.wrap(oneshot.OneShotModel, "fit", "supernet: fit (all epochs)")
    budget.wrap(oneshot, "derive", "supernet: derive (largest alphas)")
    budget.wrap(oneshot_tuner.OneShotTuner, "derived_architecture",
                "supernet: derived architecture's values")
    budget.wrap(oneshot_tuner.OneShotTuner, "search_supernet", "supernet phase (total)")
    budget.wrap(tuner.NASTuner, "run_trial", "trials: run_trial (total)")
    budget.wrap(tuner.NASTuner, "_try_build", "trials: build")
    budget.wrap(tuner.NASTuner, "_costs", "trials: params, FLOPs, latency")
    budget.wrap(estimation, "forward_function", "trials: costs: trace forward")
    budget.wrap(estimation, "count_flops", "trials: costs: FLOPs")
    budget.wrap(estimation, "measure_latency", "trials: costs: latency")
    budget.wrap(tuner.NASTuner, "load_model", "after: load best model")
    budget.wrap(tuner.NASTuner, "export_best", "after: export best")

    own_fit = keras.Model.fit

    def fit(model, *args, **kwargs):
        # Per training step: the first (trace and first run) and the others.
        clock = {}

        class Steps(keras.callbacks.Callback):
            def on_train_batch_begin(self, batch, logs=None):
                clock.update(cpu=time.process_time(), wall=time.perf_counter())

            def on_train_batch_end(self, batch, logs=None):
                kind = "supernet" if isinstance(model, oneshot.OneShotModel) else "trials"
                first = "first step" if batch == 0 and not clock.get(kind) else "later steps"
                budget.add(f"{kind}: fit: {first}", time.process_time() - clock["cpu"],
                           time.perf_counter() - clock["wall"])
                clock[kind] = True

            def on_test_begin(self, logs=None):
                clock.update(test_cpu=time.process_time(), test_wall=time.perf_counter())

            def on_test_end(self, logs=None):
                kind = "supernet" if isinstance(model, oneshot.OneShotModel) else "trials"
                budget.add(f"{kind}: fit: validation", time.process_time() - clock["test_cpu"],
                           time.perf_counter() - clock["test_wall"])

        kwargs["callbacks"] = [*(kwargs.get("callbacks") or []), Steps()]
        cpu, wall = time.process_time(), time.perf_counter()
        try:
            return own_fit(model, *args, **kwargs)
        finally:
            if not isinstance(model, oneshot.OneShotModel):
                budget.add("trials: fit (total)", time.process_time() - cpu,
                           time.perf_counter() - wall)

    keras.Model.fit = fit
    own_evaluate = keras.Model.evaluate

    def evaluate(model, *args, **kwargs):
        cpu, wall = time.process_time(), time.perf_counter()
        try:
            return own_evaluate(model, *args, **kwargs)
        finally:
            kind = "supernet" if isinstance(model, oneshot.OneShotModel) else "other"
            budget.add(f"{kind}: evaluate", time.process_time() - cpu,
                       time.perf_counter() - wall)

    keras.Model.evaluate = evaluate


def table(budget, command, total_cpu, total_wall, max_rss, load):
    lines = [f"Command: `{command}`", "",
             f"Whole command: {total_cpu:.1f} s CPU, {total_wall:.1f} s wall, max RSS "
             f"{max_rss:.0f} MB; load average {load}.", "",
             "| phase (inclusive) | calls | CPU s | wall s | RSS after (MB) |",
             "|---|---|---|---|---|"]
    for name in budget.order:
        row = budget.rows[name]
        lines.append(f"| {name} | {row['calls']} | {row['cpu']:.1f} | {row['wall']:.1f} "
                     f"| {row['rss']:.0f} |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tfnas-path", default=os.path.dirname(HERE))
    parser.add_argument("--output", default=os.path.join(HERE, "results", "search_budget.md"))
    parser.add_argument("command", nargs="*", default=DEFAULT_COMMAND)
    args = parser.parse_args()
    sys.path.insert(0, os.path.abspath(args.tfnas_path))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    budget = Budget()
    cpu, wall = time.process_time(), time.perf_counter()
    import keras  # noqa: F401
    import keras_tuner  # noqa: F401
    import tensorflow  # noqa: F401

    import tfnas
    from tfnas import cli
    budget.add("imports (TensorFlow, Keras, KerasTuner, tfnas)", time.process_time() - cpu,
               time.perf_counter() - wall)
    print("tfnas from", tfnas.__file__, flush=True)
    instrument(budget)
    with tempfile.TemporaryDirectory() as directory:
        status = cli.main([*args.command, "--directory", directory])
    total_cpu, total_wall = time.process_time() - cpu, time.perf_counter() - wall
    max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    text = table(budget, "python benchmarks/search_budget.py " + " ".join(sys.argv[1:]),
                 total_cpu, total_wall, max_rss, load)
    print(text)
    print("RESULT " + json.dumps({"status": status, "cpu": total_cpu, "wall": total_wall,
                                  "max_rss_mb": max_rss, "rows": budget.rows}), flush=True)
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as handle:
        handle.write(text)


if __name__ == "__main__":
    main()
