"""Weight sharing against full training on digits: time and test accuracy.

For each one-shot strategy, `OneShotTuner` on a chain space whose candidates
agree in shape (convolutions only): the supernet trains for `--epochs`, the
derived architecture is trained from scratch for `--epochs`; wall time of
the whole search and test accuracy of the derived model. Against it,
regularized evolution (`NASTuner`, every candidate trained for `--epochs`)
given `--budget-factor` times the median one-shot wall time. Then the time
of one training step of the supernet (DARTS, with its architecture step;
SPOS, one path) against one step of a standalone candidate, medians over
`--steps` steps.

Every found architecture (one-shot and evolution's best) is then trained
`--retrains` more times from scratch: the test accuracy of one training run
varies by a point or more on digits, so the mean tells the architectures
apart better than the search's own model does.

Usage: python benchmarks/oneshot_on_digits.py [--epochs 6] [--budget-factor 10]
    [--seeds 0 1 2] [--retrains 5]
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import tfnas  # noqa: E402
from tfnas import data as data_module  # noqa: E402
from tfnas.supernet.builder import build_supernet  # noqa: E402
from tfnas.supernet.oneshot import OneShotModel, paired  # noqa: E402
from tfnas.supernet.tuner import OneShotTuner  # noqa: E402

import report  # noqa: E402

OPERATIONS = ("conv3x3", "conv5x5", "sepconv3x3", "sepconv5x5", "dilconv3x3")


def space():
    """The decisions a supernet searches (op, depth, skip inputs) and nothing
    else: a supernet keeps a plain hyperparameter such as the width at one
    value, so a width choice would be searched by evolution only."""
    return tfnas.spaces.ChainSpace((8, 8, 1), 10, max_layers=4, filters=(32,),
                                   activations=("relu",), strides=(1,),
                                   operations=OPERATIONS)


def test_accuracy(model, data):
    return model.evaluate(data.test, verbose=0, return_dict=True)["accuracy"]


def one_shot(strategy, data, epochs, seed):
    with tempfile.TemporaryDirectory() as directory:
        start = time.perf_counter()
        tuner = OneShotTuner(space(), strategy=strategy, supernet_epochs=epochs,
                             directory=directory, seed=seed, progress=False,
                             log_dir=None, spos_trials=30, enas_trials=30, enas_steps=17)
        tuner.search(data.train, validation_data=data.validation, epochs=epochs, verbose=0)
        elapsed = time.perf_counter() - start
        return elapsed, test_accuracy(tuner.get_best_models(1)[0], data), \
            tuner.oracle.architecture


def evolution(data, epochs, budget_seconds, seed):
    """Evolution resumed with more trials until the wall-time budget is spent."""
    with tempfile.TemporaryDirectory() as directory:
        start, trials = time.perf_counter(), 0
        while time.perf_counter() - start < budget_seconds:
            trials += 2
            tuner = tfnas.NASTuner(space(), oracle="evolution", max_trials=trials, seed=seed,
                                   directory=directory, project_name="evolution",
                                   progress=False, log_dir=None)
            tuner.search(data.train, validation_data=data.validation, epochs=epochs,
                         verbose=0)
        elapsed = time.perf_counter() - start
        return (elapsed, trials, test_accuracy(tuner.get_best_models(1)[0], data),
                tuner.get_best_architectures(1)[0].values)


def step_times(data, steps):
    """Seconds per training step (`fit` over one repeated batch, after a
    warm-up fit that traces): supernet (DARTS, SPOS) and a standalone
    candidate of the same space."""
    batch = next(iter(paired(data.train, data.validation)))
    times = {}
    for label, strategy in (("supernet, DARTS step (architecture + weights)", "darts"),
                            ("supernet, SPOS step (one path)", "spos")):
        supernet, builder = build_supernet(space(), "darts" if strategy == "darts"
                                           else "single_path")
        model = OneShotModel(supernet, builder, strategy=strategy)
        model.compile(optimizer="adam", loss=supernet.loss, metrics=["accuracy"])
        times[label] = _step_time(model, tf.data.Dataset.from_tensors(batch), steps)
    standalone = space().build(tfnas.Architecture({
        "num_layers": 4, **{f"layer_{i}/op": "sepconv3x3" for i in range(4)},
        **{f"layer_{i}/stride": 1 for i in range(4)}}).to_hyperparameters())
    times["standalone candidate (4 x sepconv3x3)"] = _step_time(
        standalone, tf.data.Dataset.from_tensors(batch[0]), steps)
    return times


def _step_time(model, one_batch, steps, repeats=3):
    """Median over `repeats` of the seconds per step of a `steps`-step fit."""
    model.fit(one_batch.repeat(), steps_per_epoch=3, epochs=1, verbose=0)  # traces
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.fit(one_batch.repeat(), steps_per_epoch=steps, epochs=1, verbose=0)
        timings.append((time.perf_counter() - start) / steps)
    return statistics.median(timings)


def retrained_accuracies(values, data, epochs, repeats):
    """Test accuracies of `values` trained from scratch `repeats` times: the
    quality of the architecture, free of the luck of one initialization."""
    accuracies = []
    for _ in range(repeats):
        keras.backend.clear_session()
        model = space().build(tfnas.Architecture(values).to_hyperparameters())
        model.fit(data.train, epochs=epochs, verbose=0)
        accuracies.append(test_accuracy(model, data))
    return accuracies


def _within_a_point(accuracies, evolution_accuracies):
    """Seeds where the accuracy is at most 1 point below evolution's."""
    return sum(mine >= theirs - 0.01 for mine, theirs in zip(accuracies, evolution_accuracies))


def _mean_std(values):
    return f"{statistics.fmean(values):.4f} ± {statistics.pstdev(values):.4f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--budget-factor", type=float, default=10.0)
    parser.add_argument("--strategies", default="darts,darts2,gdas,proxyless,spos,enas")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--retrains", type=int, default=5,
                        help="times each found architecture is trained again from scratch")
    parser.add_argument("--output",
                        default=os.path.join(report.RESULTS, "oneshot_on_digits.md"))
    args = parser.parse_args()
    strategies = args.strategies.split(",")

    rows = ["| seed | strategy | search wall time (s) | test accuracy of the search's model "
            f"| test accuracy, {args.retrains} retrains (mean ± std) "
            "| found architecture |", "|---|---|---|---|---|---|"]
    single, retrained = {}, {}
    for seed in args.seeds:
        keras.utils.set_random_seed(seed)
        data = data_module.load_digits_data(batch_size=64, seed=seed)
        times = []
        found = []
        for strategy in strategies:
            elapsed, accuracy, values = one_shot(strategy, data, args.epochs, seed)
            times.append(elapsed)
            found.append((strategy, f"{elapsed:.0f}", accuracy, values))
        budget = args.budget_factor * statistics.median(times)
        elapsed, trials, accuracy, values = evolution(data, args.epochs, budget, seed)
        found.append((f"evolution, full training ({trials} trials, budget "
                      f"{args.budget_factor:g} x median one-shot time)", f"{elapsed:.0f}",
                      accuracy, values))
        for name, elapsed, accuracy, values in found:
            key = name.split(",")[0]
            repeats = retrained_accuracies(values, data, args.epochs, args.retrains)
            single.setdefault(key, []).append(accuracy)
            retrained.setdefault(key, []).append(statistics.fmean(repeats))
            rows.append(f"| {seed} | {name} | {elapsed} | {accuracy:.4f} "
                        f"| {_mean_std(repeats)} | {space().describe(values)} |")
            print(rows[-1], flush=True)

    rows += ["", "| strategy | seeds | test accuracy of the search's model, mean "
             "| retrained, mean of the seeds' means | seeds within 1 point of evolution "
             "(search's model / retrained) |", "|---|---|---|---|---|"]
    for key in single:
        within = [_within_a_point(figures[key], figures["evolution"])
                  for figures in (single, retrained)]
        rows.append(f"| {key} | {len(single[key])} | {statistics.fmean(single[key]):.4f} "
                    f"| {statistics.fmean(retrained[key]):.4f} "
                    f"| {within[0]} / {within[1]} of {len(single[key])} |")
        print(rows[-1], flush=True)

    rows += ["", "| training step (batch 64) | median ms | ratio to the standalone "
             "candidate |", "|---|---|---|"]
    steps = step_times(data, args.steps)
    base = steps["standalone candidate (4 x sepconv3x3)"]
    for label, seconds in steps.items():
        rows.append(f"| {label} | {1000 * seconds:.1f} | {seconds / base:.2f} |")
    report.write_table(
        args.output, "One-shot strategies against full training on digits",
        f"`python {' '.join(sys.argv)}`: chain space, convolutions only ({', '.join(OPERATIONS)}),"
        f" up to 4 layers, skip inputs, 32 filters, relu, stride 1; {args.epochs} epochs of "
        "supernet training, of retraining the derived architecture and of every evolution "
        "candidate. \"Search's model\": the model the search returns (one-shot: the "
        "derived architecture trained once; evolution: its best trial by validation "
        f"accuracy). \"Retrained\": the found architecture trained {args.retrains} more "
        "times from scratch, test accuracy averaged.", rows)


if __name__ == "__main__":
    main()
