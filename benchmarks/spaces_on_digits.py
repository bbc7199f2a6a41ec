"""Build time and parameter range of every built-in space on digits input.

For each space with its default arguments, samples architectures with
KerasTuner's random oracle (seeded) and builds each one; reports the space's
size, the median build time and the range of parameter counts.

Usage: python benchmarks/spaces_on_digits.py [--samples 10]
"""

import argparse
import os
import platform
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from tfnas import spaces  # noqa: E402
from tfnas.testing import sample_architectures  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--output", default=os.path.join(
        os.path.dirname(__file__), "results", "spaces_on_digits.md"))
    args = parser.parse_args()

    rows = ["| space | size | median build (s) | params min | params median | params max |",
            "|---|---|---|---|---|---|"]
    for name, space_class in spaces.SPACES.items():
        space = space_class((8, 8, 1), 10)
        space_hp, samples = sample_architectures(space, args.samples, seed=0)
        seconds, params = [], []
        for values in samples:
            hp = space_hp.copy()
            hp.values = dict(values)
            start = time.perf_counter()
            model = space.build(hp)
            seconds.append(time.perf_counter() - start)
            params.append(model.count_params())
        rows.append(f"| {name} | {space.size():.3g} | {statistics.median(seconds):.2f} | "
                    f"{min(params):,} | {int(statistics.median(params)):,} | "
                    f"{max(params):,} |")
        print(rows[-1], flush=True)
    table = (
        "# Built-in spaces on digits input (8x8x1, 10 classes), default arguments\n\n"
        f"`python benchmarks/spaces_on_digits.py --samples {args.samples}`: "
        f"{args.samples} architectures per space sampled by KerasTuner's random "
        f"oracle (seed 0). Machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"TensorFlow {tf.__version__}.\n\n" + "\n".join(rows) + "\n")
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as file:
        file.write(table)
    print(table)


if __name__ == "__main__":
    main()
