"""What one full garbage collection costs in a process that imported tfnas.

Measures `gc.collect()` (CPU seconds, objects the collector tracks) after the
imports, after `gc.freeze()`, and after each of a few small models built,
trained one epoch on digits and cleared, as the tests do. Writes
benchmarks/results/gc_scan_cost.md.

    python benchmarks/gc_scan_cost.py [--models 4]
"""

import argparse
import gc
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import keras_tuner as kt  # noqa: E402

import tfnas  # noqa: E402,F401
from tfnas import data, spaces  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                       "gc_scan_cost.md")


def full_collection(label, rows):
    start = time.process_time()
    gc.collect()
    rows.append((label, time.process_time() - start, len(gc.get_objects())))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=4)
    args = parser.parse_args()
    rows = []
    full_collection("after importing tfnas (TensorFlow, Keras, KerasTuner)", rows)
    full_collection("again", rows)
    gc.freeze()
    full_collection("after gc.freeze()", rows)
    digits = data.load_digits_data(batch_size=64, seed=0)
    for index in range(args.models):
        model = spaces.ChainSpace((8, 8, 1), 10, max_layers=2, filters=(8,)).build(
            kt.HyperParameters())
        model.fit(digits.train, epochs=1, verbose=0)
        del model
        keras.backend.clear_session()
        full_collection(f"after model {index + 1} (built, fit 1 epoch, cleared)", rows)
    lines = ["# One full garbage collection after importing tfnas", "",
             "`python benchmarks/gc_scan_cost.py --models "
             f"{args.models}` (CPU seconds of `gc.collect()`; objects the collector "
             "tracks after it, frozen ones excluded).", "",
             "| moment | collection CPU s | tracked objects |", "|---|---|---|"]
    lines += [f"| {label} | {seconds:.3f} | {objects:,} |" for label, seconds, objects in rows]
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as file:
        file.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    gc.freeze()  # exit without the final collections


if __name__ == "__main__":
    main()
