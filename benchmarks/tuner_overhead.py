"""Per-trial overhead of NASTuner against a plain `model.fit` and KerasTuner.

Trains the same architecture of the chain space on the same digits data
`--trials` times: with `keras.Model.fit` (build, compile, fit), as a
KerasTuner `RandomSearch` of that many trials (its `clear_session` and
`gc.collect`, best-epoch checkpoint, trial and oracle JSON), and as a
NASTuner search (the same, plus params/FLOPs/latency and the project
record), with and without the cost measurements. The variants run
interleaved (each repeat in a rotated order), `--repeats` times each; the
table reports medians and the
median of the per-repeat ratios to the plain fits and to KerasTuner.

Usage: python benchmarks/tuner_overhead.py [--repeats 3] [--epochs 1] [--trials 3]
"""

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras_tuner as kt  # noqa: E402

import tfnas  # noqa: E402
from tfnas.spaces import ChainSpace  # noqa: E402

import report  # noqa: E402

ARCHITECTURE = tfnas.Architecture({
    "num_layers": 3,
    "layer_0/op": "conv3x3", "layer_0/filters": 32, "layer_0/activation": "relu",
    "layer_0/stride": 1,
    "layer_1/op": "sepconv3x3", "layer_1/filters": 32, "layer_1/activation": "relu",
    "layer_1/stride": 1, "layer_1/skip/0": False,
    "layer_2/op": "conv5x5", "layer_2/filters": 64, "layer_2/activation": "relu",
    "layer_2/stride": 2, "layer_2/skip/0": False, "layer_2/skip/1": True,
})


class FixedArchitecture(kt.HyperModel):
    def __init__(self, space, architecture):
        super().__init__()
        self.space, self.architecture = space, architecture

    def build(self, hp):
        # An unused decision, so that every trial is a distinct (new) one.
        hp.Int("repetition", 0, 10**6)
        return self.space.build(self.architecture.to_hyperparameters())


def plain_fit(space, data, epochs, trials):
    start = time.perf_counter()
    for _ in range(trials):
        model = space.build(ARCHITECTURE.to_hyperparameters())
        model.fit(data.train, validation_data=data.validation, epochs=epochs, verbose=0)
    return time.perf_counter() - start


def _timed_search(make_tuner, data, epochs, trials):
    """Seconds to make a tuner in a fresh directory and run its search."""
    with tempfile.TemporaryDirectory() as directory:
        start = time.perf_counter()
        tuner = make_tuner(directory)
        tuner.search(data.train, validation_data=data.validation, epochs=epochs,
                     verbose=0)
        elapsed = time.perf_counter() - start
        statuses = [t.status for t in tuner.oracle.trials.values()]
        assert statuses == ["COMPLETED"] * trials, statuses
    return elapsed


def keras_tuner_search(space, data, epochs, trials):
    return _timed_search(lambda directory: kt.RandomSearch(
        FixedArchitecture(space, ARCHITECTURE), objective="val_accuracy",
        max_trials=trials, seed=0, directory=directory), data, epochs, trials)


def tuner_search(space, data, epochs, trials, measure_costs):
    return _timed_search(lambda directory: tfnas.NASTuner(
        FixedArchitecture(space, ARCHITECTURE), max_trials=trials, seed=0,
        directory=directory, measure_latency=measure_costs, count_flops=measure_costs,
        progress=False), data, epochs, trials)


def search_setting(description, output_name):
    """The arguments shared with trial_breakdown.py, and its data and space:
    a parser (`--epochs`, `--trials`, `--output`), digits and the chain space."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--output", default=os.path.join(report.RESULTS, output_name))
    data = tfnas.load_data("digits", batch_size=32, seed=0)
    return parser, data, ChainSpace(data.input_shape, data.num_classes)


def main():
    parser, data, space = search_setting(__doc__.splitlines()[0], "tuner_overhead.md")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    n = args.trials
    variants = {
        f"{n} x plain model.fit": lambda: plain_fit(space, data, args.epochs, n),
        f"KerasTuner RandomSearch, {n} trials": lambda: keras_tuner_search(
            space, data, args.epochs, n),
        f"NASTuner, {n} trials": lambda: tuner_search(space, data, args.epochs, n, True),
        f"NASTuner, {n} trials, no FLOPs/latency": lambda: tuner_search(
            space, data, args.epochs, n, False),
    }
    for run in variants.values():  # warm-up: first tracing, imports
        run()
    times = {name: [] for name in variants}
    names = list(variants)
    for repeat in range(args.repeats):
        # Each repeat starts with another variant: none always follows the same one.
        for name in names[repeat % len(names):] + names[:repeat % len(names)]:
            times[name].append(variants[name]())
        print(f"repeat {repeat + 1}/{args.repeats}: "
              + ", ".join(f"{n}={t[-1]:.2f}s" for n, t in times.items()), flush=True)

    baseline = times[f"{n} x plain model.fit"]
    keras_tuner = times[f"KerasTuner RandomSearch, {n} trials"]
    rows = ["| variant | median wall time (s) | median ratio to plain fits "
            "| median ratio to KerasTuner |", "|---|---|---|---|"]
    for name, samples in times.items():
        ratio = statistics.median(s / b for s, b in zip(samples, baseline))
        to_kt = statistics.median(s / k for s, k in zip(samples, keras_tuner))
        rows.append(f"| {name} | {statistics.median(samples):.2f} | {ratio:.2f} "
                    f"| {to_kt:.2f} |")
    report.write_table(
        args.output, "NASTuner per-trial overhead",
        f"`python benchmarks/tuner_overhead.py --repeats {args.repeats} "
        f"--epochs {args.epochs} --trials {n}`; digits, chain architecture "
        f"`{ARCHITECTURE.to_json()}`, batch 32, CPU only; load average "
        f"{os.getloadavg()[0]:.2f} at the end.", rows)


if __name__ == "__main__":
    main()
