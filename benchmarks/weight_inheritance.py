"""Time for regularized evolution to reach an accuracy, with and without
weight inheritance.

For each dataset and seed, runs regularized evolution over a small chain
space twice, side by side: plain (every candidate trains `--epochs` from
scratch) and with `inherit_weights=True` (a mutated child starts from its
parent's checkpoint and trains `--inherit-epochs`). Records after every
trial the best validation accuracy so far, the cumulative training time
(`train_time_s` of the trials, `model.fit` only) and the wall time since the
search started (building, loading the parent, bookkeeping included). For
each target accuracy, reports the median over seeds of the time to first
reach it ("never" when a run does not reach it; a median of runs that do not
all reach it can be "never"), and the ratio plain / inheritance.

The default targets are the lowest final best accuracy over all runs (so
every run reaches it) and `--targets` given as fractions.

Usage: python benchmarks/weight_inheritance.py [--datasets digits mnist1d]
    [--seeds 3] [--max-trials 12] [--epochs 4] [--inherit-epochs 1]
"""

import argparse
import math
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

import tfnas  # noqa: E402
from tfnas import oracles  # noqa: E402
from tfnas.spaces import ChainSpace  # noqa: E402

import report  # noqa: E402

CONFIGS = ("plain", "inherit")


class TimedTuner(tfnas.NASTuner):
    """Records each trial's end time (seconds since the search began)."""

    def on_search_begin(self):
        super().on_search_begin()
        self.began = time.perf_counter()
        self.ended_at = {}

    def on_trial_end(self, trial):
        self.ended_at[trial.trial_id] = time.perf_counter() - self.began
        super().on_trial_end(trial)


def image_data(data):
    """The dataset with image-shaped inputs: MNIST-1D's (40, 1) sequences
    become (40, 1, 1) images, which the chain space's convolutions take."""
    if len(data.input_shape) == 3:
        return data.train, data.validation, tuple(data.input_shape)

    def reshape(x, y):
        return tf.expand_dims(x, -1), y

    return (data.train.map(reshape), data.validation.map(reshape),
            tuple(data.input_shape) + (1,))


def run(dataset, seed, config, args, directory):
    data = tfnas.load_data(dataset, batch_size=args.batch_size, seed=seed)
    train, validation, shape = image_data(data)
    space = ChainSpace(shape, data.num_classes, max_layers=args.max_layers,
                       filters=(16, 32), operations=("conv3x3", "sepconv3x3", "maxpool3x3"))
    strategy = oracles.get(
        "evolution", "val_accuracy", args.max_trials, seed=seed, space=space,
        population_size=args.population, sample_size=args.sample_size,
        inherit_weights=config == "inherit", inherit_epochs=args.inherit_epochs)
    tuner = TimedTuner(space, oracle=strategy, directory=directory,
                       project_name=f"{dataset}-{seed}-{config}", progress=False,
                       measure_latency=False, count_flops=False, log_dir=None)
    tuner.search(train, validation_data=validation, epochs=args.epochs, verbose=0)
    curve, best, train_time = [], 0.0, 0.0
    ended = sorted(tuner.ended_at.items(), key=lambda item: item[1])
    for trial_id, wall in ended:
        trial = tuner.oracle.trials[trial_id]
        if trial.status == "COMPLETED":
            best = max(best, trial.score)
            train_time += trial.metrics.get_last_value("train_time_s")
        curve.append((best, train_time, wall))
    children = sum(1 for t in tuner.oracle.trials.values()
                   if t.metrics.exists("inherited_params"))
    return {"curve": curve, "final": best, "children": children}


def time_to(curve, target, column):
    """The time (column 1 training, 2 wall) at which `curve` first reaches `target`."""
    for point in curve:
        if point[0] >= target - 1e-9:
            return point[column]
    return math.inf


def show(seconds):
    return "never" if math.isinf(seconds) else f"{seconds:.1f}"


def ratio(plain, inherit):
    if math.isinf(plain) or math.isinf(inherit):
        return "n/a"
    return f"{plain / inherit:.2f}x"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["digits"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--max-trials", type=int, default=12)
    parser.add_argument("--population", type=int, default=4)
    parser.add_argument("--sample-size", type=int, default=2)
    parser.add_argument("--max-layers", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--inherit-epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--targets", type=float, nargs="*", default=[])
    parser.add_argument("--output",
                        default=os.path.join(report.RESULTS, "weight_inheritance.md"))
    args = parser.parse_args()

    rows = ["| dataset | target val. accuracy | config | median training time to target "
            "(s) | median wall time to target (s) | reached | training-time ratio | "
            "wall-time ratio |", "|---|---|---|---|---|---|---|---|"]
    finals = []
    with tempfile.TemporaryDirectory(prefix="tfnas-inheritance-") as directory:
        for dataset in args.datasets:
            results = {config: [] for config in CONFIGS}
            for seed in range(args.seeds):
                for config in CONFIGS:  # side by side, alternating
                    result = run(dataset, seed, config, args, directory)
                    results[config].append(result)
                    print(f"{dataset} seed {seed} {config}: final best {result['final']:.4f}, "
                          f"training {result['curve'][-1][1]:.1f} s, wall "
                          f"{result['curve'][-1][2]:.1f} s, {result['children']} "
                          "children inherited", flush=True)
            lowest = min(r["final"] for runs in results.values() for r in runs)
            for target in sorted({lowest, *args.targets}):
                medians = {}
                for config in CONFIGS:
                    runs = results[config]
                    medians[config] = [statistics.median(time_to(r["curve"], target, column)
                                                         for r in runs) for column in (1, 2)]
                    reached = sum(1 for r in runs if r["final"] >= target - 1e-9)
                    extra = ("", "") if config == "plain" else (
                        ratio(medians["plain"][0], medians[config][0]),
                        ratio(medians["plain"][1], medians[config][1]))
                    rows.append(f"| {dataset} | {target:.4f} | {config} | "
                                f"{show(medians[config][0])} | {show(medians[config][1])} | "
                                f"{reached}/{len(runs)} | {extra[0]} | {extra[1]} |")
            for config in CONFIGS:
                runs = results[config]
                finals.append(
                    f"| {dataset} | {config} | "
                    f"{statistics.median(r['final'] for r in runs):.4f} | "
                    f"{statistics.median(r['curve'][-1][1] for r in runs):.1f} | "
                    f"{statistics.median(r['curve'][-1][2] for r in runs):.1f} | "
                    f"{statistics.median(r['children'] for r in runs)} |")
    rows += ["", "Whole searches (medians over seeds):", "",
             "| dataset | config | final best val. accuracy | training time (s) | "
             "wall time (s) | children that inherited |", "|---|---|---|---|---|---|"] + finals
    command = (f"`python benchmarks/weight_inheritance.py --datasets {' '.join(args.datasets)} "
               f"--seeds {args.seeds} --max-trials {args.max_trials} --population "
               f"{args.population} --sample-size {args.sample_size} --max-layers "
               f"{args.max_layers} --epochs {args.epochs} "
               f"--inherit-epochs {args.inherit_epochs} --batch-size {args.batch_size}"
               + (f" --targets {' '.join(map(str, args.targets))}" if args.targets else "")
               + "`")
    report.write_table(
        args.output, "Regularized evolution with and without weight inheritance",
        f"{command}: a chain space (up to {args.max_layers} layers of conv3x3, sepconv3x3 "
        f"or maxpool3x3, 16 or 32 filters, skips), regularized evolution ({args.max_trials} "
        f"trials, population {args.population}, tournaments of {args.sample_size}); plain "
        f"trains every candidate {args.epochs} epochs, inherit trains a mutated child "
        f"{args.inherit_epochs} epoch(s) from its parent's checkpoint "
        "(random ones the full epochs). "
        "Times to "
        "reach each target best validation accuracy are medians over seeds 0.."
        f"{args.seeds - 1}; the runs of a seed ran one after the other on a shared, "
        "noisy machine. Ratio = plain / inherit (> 1: inheritance is faster).", rows)


if __name__ == "__main__":
    main()
