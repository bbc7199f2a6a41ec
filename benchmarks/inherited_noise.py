"""How noisy is SPOS's inherited-weight accuracy, and does it decide the pick?

On a `tfnas table` (the truth), SPOS supernets are trained (uniform single
paths, `--epochs` epochs, Adam `--learning-rate`) with a constant learning
rate and with SPOS's linear decay to zero (`SPOS(learning_rate_decay=...)`).
Every architecture of the space is then scored with inherited weights
(`tfnas.supernet.paths.PathAccuracy`: batch norm recalibrated per path on
`--calibration-examples` training examples, accuracy on the validation split) under
`--calibrations` different calibration batches, and on each half of the
validation split. Reported: the spread of one path's accuracy over the
calibration batches, the gaps between the best inherited scores, and where
the inherited top-1 falls in the table ("top %") under each calibration and
each validation half.

Usage: python benchmarks/inherited_noise.py --table tfnas/bench/data/mnist1d.csv
    [--seeds 5] [--epochs 30] [--calibrations 5]
    [--calibration-examples 512 2048]
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import ranking_quality as rq  # noqa: E402
import report  # noqa: E402
from tfnas.supernet import oneshot, paths  # noqa: E402
from tfnas.supernet.builder import build_supernet  # noqa: E402
from tfnas.supernet.strategies.spos import SPOS  # noqa: E402


def trained_supernet(space, data, seed, epochs, learning_rate, decay):
    keras.utils.set_random_seed(seed)
    strategy = SPOS(learning_rate_decay=decay)
    supernet, builder = build_supernet(space, strategy.mode, seed=seed)
    model = oneshot.OneShotModel(supernet, builder, strategy=strategy, seed=seed)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=supernet.loss,
                  metrics=["accuracy"])
    model.fit(oneshot.paired(data.train, data.validation), epochs=epochs, verbose=0,
              callbacks=strategy.callbacks(epochs))
    return model


def halves(validation):
    examples = validation.unbatch()
    size = int(examples.reduce(0, lambda count, _: count + 1))
    return [examples.take(size // 2).batch(512), examples.skip(size // 2).batch(512)]


def calibration_batch(train, examples):
    """Inputs of `examples` training examples (another draw per call: the
    training split reshuffles per pass)."""
    return next(iter(train.unbatch().batch(examples)))[0]


def scored_row(model, table, keys, values, data, examples, calibrations, prefix):
    """The markdown row of `model`'s inherited scores of `values`, batch norm
    recalibrated on `calibrations` draws of `examples` training examples."""
    runs = [np.array(paths.PathAccuracy(model, calibration_batch(data.train, examples),
                                        data.validation)(values))
            for _ in range(calibrations)]
    calibration = calibration_batch(data.train, examples)
    by_half = [np.array(paths.PathAccuracy(model, calibration, half)(values))
               for half in halves(data.validation)]
    spread = float(np.median(np.std(np.stack(runs), axis=0)))
    gaps = float(np.median(-np.diff(np.sort(runs[0])[::-1][:5])))
    tops = [rq.top_percent(table, values[int(np.argmax(r))]) for r in runs]
    half_tops = [rq.top_percent(table, values[int(np.argmax(r))]) for r in by_half]
    tau, _ = rq.correlations(dict(zip(keys, runs[0].tolist())), table)
    return (f"{prefix}| {examples} | {statistics.fmean(runs[0]):.3f} | {spread:.4f} "
            f"| {gaps:.4f} | {' '.join(f'{t:.1f}' for t in tops)} "
            f"| {' '.join(f'{t:.1f}' for t in half_tops)} | {tau:.3f} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", default="tfnas/bench/data/mnist1d.csv")
    parser.add_argument("--seeds", type=int, nargs="+", default=[5])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--learning-rate", type=float, default=0.01)
    parser.add_argument("--calibrations", type=int, default=5)
    parser.add_argument("--calibration-examples", type=int, nargs="+", default=[512, 2048])
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    table, _, data = rq.load(args.table)
    architectures = rq.space_architectures(table.space)
    keys = [key for key in architectures if key in table.rows]
    values = [architectures[key] for key in keys]
    rows = ["| seed | learning rate | calibration examples | mean inherited acc "
            "| spread of one path over calibrations (std, median over paths) "
            "| gaps between the 5 best (median) "
            "| inherited top-1's top % per calibration | per validation half "
            "| tau (calibration 0) |", "|---|---|---|---|---|---|---|---|---|"]
    for seed in args.seeds:
        for decay in (None, "linear"):
            start = time.perf_counter()
            keras.backend.clear_session()
            model = trained_supernet(table.space, data, seed, args.epochs, args.learning_rate,
                                     decay)
            for examples in args.calibration_examples:
                rows.append(scored_row(model, table, keys, values, data, examples,
                                       args.calibrations, f"| {seed} | {decay or 'constant'} "))
                print(rows[-1], flush=True)
            print(f"{time.perf_counter() - start:.0f} s", flush=True)
    name = os.path.splitext(os.path.basename(args.table))[0]
    report.write_table(
        args.output or os.path.join(report.RESULTS, f"inherited_noise_{name}.md"),
        f"Noise of SPOS's inherited-weight accuracy on {name}",
        f"`python benchmarks/inherited_noise.py --table {args.table} --seeds "
        f"{' '.join(map(str, args.seeds))} --epochs {args.epochs} --calibrations "
        f"{args.calibrations} --calibration-examples "
        f"{' '.join(map(str, args.calibration_examples))}`: SPOS supernets, "
        f"{args.epochs} epochs, Adam "
        f"{args.learning_rate:g}; every architecture of the table scored with inherited "
        "weights, batch norm recalibrated per path on `--calibration-examples` training examples "
        "(another draw per calibration), accuracy on the validation split (1,000 examples on "
        "MNIST-1D), or on each half of it. 'top %': the inherited top-1's place in the "
        "table (100 * rank / size by its stand-alone test accuracy).", rows)


if __name__ == "__main__":
    main()
