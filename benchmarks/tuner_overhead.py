"""Per-trial overhead of NASTuner against a plain `model.fit`.

Trains the same architecture of the chain space on the same digits data,
once with `keras.Model.fit` and once as a one-trial NASTuner search (build,
fit, best-epoch checkpoint, params/FLOPs/latency, trial records), and once
more as a NASTuner search with the cost measurements off. The variants run
interleaved, `--repeats` times each; the table reports medians and the
median of the per-repeat ratios.

Usage: python benchmarks/tuner_overhead.py [--repeats 5] [--epochs 5]
"""

import argparse
import os
import platform
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import keras_tuner as kt  # noqa: E402
import tensorflow as tf  # noqa: E402

import tfnas  # noqa: E402
from tfnas.spaces import ChainSpace  # noqa: E402

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
        return self.space.build(self.architecture.to_hyperparameters())


def plain_fit(space, data, epochs):
    start = time.perf_counter()
    model = space.build(ARCHITECTURE.to_hyperparameters())
    model.fit(data.train, validation_data=data.validation, epochs=epochs, verbose=0)
    return time.perf_counter() - start


def tuner_trial(space, data, epochs, measure_costs):
    with tempfile.TemporaryDirectory() as directory:
        start = time.perf_counter()
        tuner = tfnas.NASTuner(
            FixedArchitecture(space, ARCHITECTURE), max_trials=1, directory=directory,
            measure_latency=measure_costs, count_flops=measure_costs, progress=False,
        )
        tuner.search(data.train, validation_data=data.validation, epochs=epochs,
                     verbose=0)
        elapsed = time.perf_counter() - start
        assert [t.status for t in tuner.oracle.trials.values()] == ["COMPLETED"]
    return elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--output", default=os.path.join(
        os.path.dirname(__file__), "results", "tuner_overhead.md"))
    args = parser.parse_args()

    data = tfnas.load_data("digits", batch_size=32, seed=0)
    space = ChainSpace(data.input_shape, data.num_classes)
    variants = {
        "plain model.fit": lambda: plain_fit(space, data, args.epochs),
        "NASTuner trial": lambda: tuner_trial(space, data, args.epochs, True),
        "NASTuner trial, no FLOPs/latency": lambda: tuner_trial(
            space, data, args.epochs, False),
    }
    for run in variants.values():  # warm-up: first tracing, imports
        run()
    times = {name: [] for name in variants}
    for repeat in range(args.repeats):
        for name, run in variants.items():
            times[name].append(run())
        print(f"repeat {repeat + 1}/{args.repeats}: "
              + ", ".join(f"{n}={t[-1]:.2f}s" for n, t in times.items()), flush=True)

    baseline = times["plain model.fit"]
    rows = ["| variant | median wall time (s) | median ratio to plain fit |",
            "|---|---|---|"]
    for name, samples in times.items():
        ratio = statistics.median(s / b for s, b in zip(samples, baseline))
        rows.append(f"| {name} | {statistics.median(samples):.2f} | {ratio:.2f} |")
    header = (
        f"# NASTuner per-trial overhead\n\n"
        f"`python benchmarks/tuner_overhead.py --repeats {args.repeats} "
        f"--epochs {args.epochs}`; digits, chain architecture "
        f"`{ARCHITECTURE.to_json()}`, batch 32, CPU only.\n"
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, TensorFlow {tf.__version__}, "
        f"Keras {keras.__version__}.\n\n"
    )
    table = header + "\n".join(rows) + "\n"
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as file:
        file.write(table)
    print(table)


if __name__ == "__main__":
    main()
