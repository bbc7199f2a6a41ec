"""Training-free proxies against stand-alone accuracy, and proxy-screened evolution.

1. Ground truth: every architecture of a small chain space (`--ground-truth
   build`: depth 1-2, conv3x3 / sepconv3x3 / maxpool3x3, 8 or 16 filters,
   stride 1 or 2, no skips: 110 architectures) trained from scratch on
   digits for `--epochs` epochs, its validation and test accuracy written to
   benchmarks/results/proxies_ground_truth.csv (reused when it exists); or a
   table of another run (`--table PATH --space S --space-arg K=V`, a CSV with
   an `arch` column of Architecture JSON and the accuracy columns).
2. Every proxy of `tfnas.proxies` computed for every architecture of the
   table (one batch of 64 training examples, weights from seed 0), and its
   Spearman and Kendall rank correlation with the test accuracy, beside the
   parameter count's own.
3. Regularized evolution with and without proxy screening (the best of
   `--candidates` proposals by proxy is trained), at the same number of
   trained architectures (`--budget`), answered by table lookup: the test
   accuracy of the architecture with the best validation accuracy, median
   over `--seeds` seeds.

Usage: python benchmarks/proxies.py [--epochs 5] [--budget 15] [--seeds 20]
    [--candidates 5] [--table PATH --space S --space-arg K=V --final test_accuracy]
"""

import argparse
import csv
import json
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import tfnas  # noqa: E402
from tfnas import proxies, spaces  # noqa: E402
from tfnas.architecture import Architecture  # noqa: E402

import report  # noqa: E402

GROUND_TRUTH = os.path.join(report.RESULTS, "proxies_ground_truth.csv")


def small_chain(input_shape=(8, 8, 1), num_classes=10):
    return spaces.ChainSpace(input_shape, num_classes, min_layers=1, max_layers=2,
                             operations=("conv3x3", "sepconv3x3", "maxpool3x3"),
                             filters=(8, 16), activations=("relu",), strides=(1, 2),
                             skips=False)


def build_ground_truth(path, epochs, seed=0):
    """Trains every architecture of `small_chain` on digits; writes a CSV."""
    data = tfnas.load_data("digits", batch_size=32, seed=seed)
    space = small_chain(data.input_shape, data.num_classes)
    architectures = proxies.sample_space(space)
    rows = []
    for index, values in enumerate(architectures):
        start = time.perf_counter()
        keras.backend.clear_session()
        model = proxies.build(space, values, seed)
        history = model.fit(data.train, validation_data=data.validation, epochs=epochs,
                            verbose=0, shuffle=False)
        test = model.evaluate(data.test, verbose=0, return_dict=True)["accuracy"]
        rows.append({"arch": Architecture(values).to_json(),
                     "val_accuracy": history.history["val_accuracy"][-1],
                     "test_accuracy": test, "params": model.count_params(),
                     "train_time_s": time.perf_counter() - start})
        print(f"{index + 1}/{len(architectures)} val {rows[-1]['val_accuracy']:.3f} "
              f"test {test:.3f} {space.describe(values)}", flush=True)
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def read_table(path):
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ground-truth", default="build", choices=["build"])
    parser.add_argument("--table", default=GROUND_TRUTH)
    parser.add_argument("--space", default=None)
    parser.add_argument("--space-arg", action="append", default=[])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--final", default="test_accuracy")
    parser.add_argument("--signal", default="val_accuracy")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--budget", type=int, default=15)
    parser.add_argument("--candidates", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--output", default=os.path.join(report.RESULTS, "proxies.md"))
    args = parser.parse_args(argv)
    if args.table == GROUND_TRUTH and not os.path.exists(GROUND_TRUTH):
        build_ground_truth(GROUND_TRUTH, args.epochs)
    print("ground truth:", args.table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
