"""Keras's TensorBoard callback against tfnas's EpochTensorBoard, in one fit.

Trains the same 3-layer candidate of the MNIST-1D table's space (weights
from seed 0, its training state built first, as NASTuner does) for
`--epochs` epochs with no TensorBoard callback, with Keras's
`TensorBoard(update_freq="epoch")` (what NASTuner used before stop 24) and
with `tfnas.epoch_logs.EpochTensorBoard` (the same event files, no batch
hooks), interleaved in a rotated order, `--repeats` times; reports the
median wall and CPU time of `fit`.

Usage: python benchmarks/tensorboard_callback.py [--epochs 10] [--repeats 3]
"""

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

import tfnas  # noqa: E402
from tfnas import epoch_logs, prebuild, proxies, spaces  # noqa: E402
from tfnas.bench import tables  # noqa: E402

import report  # noqa: E402

ARCHITECTURE = {"num_layers": 3, "layer_0/op": "conv5x5", "layer_0/filters": 32,
                "layer_1/op": "conv3x3", "layer_1/filters": 16,
                "layer_2/op": "maxpool3x3", "layer_2/filters": 16}
VARIANTS = {"no TensorBoard": None, "keras.callbacks.TensorBoard": keras.callbacks.TensorBoard,
            "tfnas EpochTensorBoard": epoch_logs.EpochTensorBoard}


def timed_fit(space, data, epochs, make_callback):
    keras.backend.clear_session()
    model = proxies.build(space, ARCHITECTURE, seed=0)
    prebuild.build_training_state(model, prebuild.data_spec(data.train))
    with tempfile.TemporaryDirectory(prefix="tfnas-tensorboard-") as folder:
        callbacks = [make_callback(log_dir=folder)] if make_callback else []
        wall, cpu = time.perf_counter(), time.process_time()
        model.fit(data.train, validation_data=data.validation, epochs=epochs, verbose=0,
                  callbacks=callbacks)
        return time.perf_counter() - wall, time.process_time() - cpu


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output",
                        default=os.path.join(report.RESULTS, "tensorboard_callback.md"))
    args = parser.parse_args()
    meta = tables.read_meta(tables.meta_path(tables.PACKAGED_TABLES["mnist1d"]))
    data = tfnas.load_data("mnist1d", batch_size=meta["batch_size"], seed=meta["data_seed"])
    space = spaces.get(meta["space"], data.input_shape, data.num_classes, **meta["space_args"])
    timed_fit(space, data, 1, None)  # warm-up
    names = list(VARIANTS)
    times = {name: [] for name in names}
    for repeat in range(args.repeats):
        for name in names[repeat % len(names):] + names[:repeat % len(names)]:
            times[name].append(timed_fit(space, data, args.epochs, VARIANTS[name]))
    rows = ["| callback | fit wall (s) | fit CPU (s) |", "|---|---:|---:|"]
    for name in names:
        rows.append(f"| {name} | {statistics.median(w for w, _ in times[name]):.2f} | "
                    f"{statistics.median(c for _, c in times[name]):.2f} |")
    load = os.getloadavg()
    report.write_table(
        args.output, "TensorBoard callbacks in a candidate's fit",
        f"`python benchmarks/tensorboard_callback.py --epochs {args.epochs} --repeats "
        f"{args.repeats}`: `{ARCHITECTURE}` of the MNIST-1D table's space, "
        f"{args.epochs} epochs (batch {meta['batch_size']}), medians of {args.repeats} "
        "interleaved runs; load average at the end "
        f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1 / 5 / 15 min).", rows)


if __name__ == "__main__":
    main()
