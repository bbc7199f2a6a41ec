"""Build time and parameter range of every built-in space on digits input.

For each space with its default arguments, samples architectures with
tfnas's random oracle (seeded) and builds each one; reports the space's
size, the median build time and the range of parameter counts.

Usage: python benchmarks/spaces_on_digits.py [--samples 10]
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tfnas import spaces  # noqa: E402
from tfnas.testing import sample_architectures  # noqa: E402

import report  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--output",
                        default=os.path.join(report.RESULTS, "spaces_on_digits.md"))
    args = parser.parse_args()

    rows = ["| space | size | median build (s) | params min | params median | params max |",
            "|---|---|---|---|---|---|"]
    for name, space_class in spaces.SPACES.items():
        ranks = space_class.input_rank
        if ranks is not None and 3 not in (ranks if isinstance(ranks, tuple) else (ranks,)):
            continue  # a space for sequences (see spaces_on_mnist1d.py)
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
    report.write_table(
        args.output, "Built-in spaces on digits input (8x8x1, 10 classes)",
        f"`python benchmarks/spaces_on_digits.py --samples {args.samples}`: default "
        f"arguments, {args.samples} architectures per space sampled by tfnas's "
        "random oracle (seed 0).", rows)


if __name__ == "__main__":
    main()
