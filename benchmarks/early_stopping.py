"""Early stopping rules against full training, in regularized evolution.

On each dataset and seed, the same regularized-evolution search (same
number of trials, same epochs, same seed) runs without early stopping, with
the median stopping rule and with learning-curve extrapolation, in an order
rotated with the seed (interleaved, side by side on the same machine). For
each run: the total training time (the sum of the trials' `model.fit`
times, per-epoch reports included), the number of trials stopped early,
and the test accuracy of the best trial's model. The table reports medians
over seeds; the saving is the median of the per-seed savings against the
run without a rule; the spread is the range over seeds of the best test
accuracy without a rule.

Usage: python benchmarks/early_stopping.py [--datasets digits mnist1d]
       [--trials 12] [--epochs 10] [--seeds 3]
"""

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

import tfnas  # noqa: E402
from tfnas import trials as trials_module  # noqa: E402
from tfnas.spaces import MLPSpace  # noqa: E402

import report  # noqa: E402

RULES = ("none", "median", "curve")


def run_search(data, rule, seed, trials, epochs, directory):
    """One evolution search; returns its training time, stops and test accuracy."""
    keras.utils.set_random_seed(seed)
    space = MLPSpace(data.input_shape, data.num_classes, max_layers=3,
                     units=(8, 16, 32, 64, 128), activations=("relu", "tanh", "elu"))
    tuner = tfnas.NASTuner(space, oracle="evolution", max_trials=trials, seed=seed,
                           early_stopping=None if rule == "none" else rule,
                           directory=directory, project_name=f"{rule}-{seed}",
                           measure_latency=False, count_flops=False, log_dir=None,
                           progress=False)
    start = time.perf_counter()
    tuner.search(data.train, validation_data=data.validation, epochs=epochs, verbose=0)
    wall = time.perf_counter() - start
    ended = [t for t in tuner.oracle.trials.values() if t.status == trials_module.COMPLETED]
    train_time = sum(t.metrics.get_last_value("train_time_s") for t in ended)
    epochs_trained = sum(t.metrics.get_last_value("epochs") for t in ended)
    stopped = sum(trials_module.is_stopped_early(t) for t in ended)
    best = tuner.oracle.get_best_trials(1)[0]
    model = tuner.load_model(best)
    test = model.evaluate(data.test, verbose=0, return_dict=True)["accuracy"]
    return {"train_time": train_time, "wall": wall, "epochs": epochs_trained,
            "stopped": stopped, "test": test, "best_stopped": trials_module.is_stopped_early(best)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["digits", "mnist1d"])
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--output", default=os.path.join(report.RESULTS, "early_stopping.md"))
    args = parser.parse_args()

    results = {}  # (dataset, rule) -> [run per seed]
    with tempfile.TemporaryDirectory(prefix="tfnas-early-stopping-") as root:
        for dataset in args.datasets:
            data = tfnas.load_data(dataset, batch_size=args.batch_size, seed=0)
            for seed in range(args.seeds):
                order = RULES[seed % len(RULES):] + RULES[:seed % len(RULES)]
                for rule in order:
                    run = run_search(data, rule, seed, args.trials, args.epochs,
                                     os.path.join(root, dataset))
                    results.setdefault((dataset, rule), []).append(run)
                    print(f"{dataset} seed {seed} {rule}: {run}", flush=True)

    rows = ["| dataset | rule | training time (s) | saving vs none | epochs trained | "
            "trials stopped | best test accuracy | spread of none (max-min) |",
            "|---|---|---|---|---|---|---|---|"]
    for dataset in args.datasets:
        baseline = results[(dataset, "none")]
        tests = [r["test"] for r in baseline]
        spread = max(tests) - min(tests)
        for rule in RULES:
            runs = results[(dataset, rule)]
            savings = [1 - r["train_time"] / b["train_time"] for r, b in zip(runs, baseline)]
            rows.append(
                f"| {dataset} | {rule} | {statistics.median(r['train_time'] for r in runs):.1f} | "
                f"{'' if rule == 'none' else f'{statistics.median(savings):.0%}'} | "
                f"{statistics.median(r['epochs'] for r in runs):.0f} | "
                f"{statistics.median(r['stopped'] for r in runs):.0f} / {args.trials} | "
                f"{statistics.median(r['test'] for r in runs):.4f} | "
                f"{f'{spread:.4f}' if rule == 'none' else ''} |")
    report.write_table(
        args.output, "Early stopping rules in regularized evolution",
        f"`python benchmarks/early_stopping.py --datasets {' '.join(args.datasets)} "
        f"--trials {args.trials} --epochs {args.epochs} --seeds {args.seeds}`: the MLP "
        f"space (1-3 layers of 8-128 units, relu/tanh/elu), {args.trials} trials of "
        f"{args.epochs} epochs (batch {args.batch_size}) per search, seeds 0-{args.seeds - 1}, "
        "the three runs of a seed interleaved in a rotated order. Rules at their defaults: "
        "median (min_epochs=3, min_completed=3), curve (min_epochs=4, min_completed=3, "
        "threshold=0.05). Training time: the sum of the trials' `model.fit` times; "
        "medians over seeds; saving: median of the per-seed savings against no rule; "
        "best test accuracy: the best trial's model (by validation accuracy) on the "
        "test split.", rows)


if __name__ == "__main__":
    main()
