"""Final training on digits: `tfnas train` of a search's best vs the search's own model.

For each seed: `tfnas search` (chain space, random strategy, a few short
trials), then `tfnas train` of its best architecture for more epochs on
train+validation, with augmentation (by default translations by up to 10 %:
flips would turn digits into other shapes, and on 8x8 images rotations and
zooms blur more than they teach) and a cosine schedule with warm-up.
Both models are evaluated on the same held-out test split, which the search
never saw. Reports each seed and the medians.

Usage: python benchmarks/final_training.py [--seeds 3] [--max-trials 5]
       [--search-epochs 3] [--final-epochs 30] [--augment translate]
"""

import argparse
import json
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tfnas import cli, final_training  # noqa: E402

import report  # noqa: E402


def run_seed(directory, seed, args):
    project = os.path.join(directory, "chain-random-digits")
    start = time.perf_counter()
    code = cli.main(["search", "--space", "chain", "--strategy", "random",
                     "--max-trials", str(args.max_trials), "--epochs", str(args.search_epochs),
                     "--seed", str(seed), "--directory", directory])
    assert code == 0, f"the search of seed {seed} failed"
    search_seconds = time.perf_counter() - start
    start = time.perf_counter()
    code = cli.main(["train", project, "--epochs", str(args.final_epochs), "--augment",
                     args.augment, "--formats", "keras", "--no-progress"])
    assert code == 0, f"the final training of seed {seed} failed"
    train_seconds = time.perf_counter() - start
    record = final_training.read_record(project)
    return {"seed": seed, "search": record["search_test"]["accuracy"],
            "final": record["test"]["accuracy"], "params": record["params"],
            "search_s": search_seconds, "train_s": train_seconds,
            "architecture": json.dumps(record["architecture"], sort_keys=True)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--max-trials", type=int, default=5)
    parser.add_argument("--search-epochs", type=int, default=3)
    parser.add_argument("--final-epochs", type=int, default=30)
    parser.add_argument("--augment", default="translate")
    parser.add_argument("--output", default=os.path.join(report.RESULTS, "final_training.md"))
    args = parser.parse_args()

    results = []
    for seed in range(args.seeds):
        with tempfile.TemporaryDirectory(prefix="tfnas-final-bench-") as directory:
            results.append(run_seed(directory, seed, args))
        print(results[-1], flush=True)

    rows = ["| seed | params | search's model: test accuracy | final training: test accuracy "
            "| gain (points) | search (s) | final training (s) |",
            "|---|---|---|---|---|---|---|"]
    for r in results:
        rows.append(f"| {r['seed']} | {r['params']:,} | {r['search']:.4f} | {r['final']:.4f} | "
                    f"{100 * (r['final'] - r['search']):+.1f} | {r['search_s']:.0f} | "
                    f"{r['train_s']:.0f} |")
    median = {k: statistics.median(r[k] for r in results) for k in ("search", "final")}
    gains = [100 * (r["final"] - r["search"]) for r in results]
    rows.append(f"| **median** | | **{median['search']:.4f}** | **{median['final']:.4f}** | "
                f"**{statistics.median(gains):+.1f}** | | |")
    wins = sum(r["final"] > r["search"] for r in results)
    report.write_table(
        args.output, "Final training on digits: `tfnas train` vs the search's own model",
        f"`python benchmarks/final_training.py --seeds {args.seeds} --max-trials "
        f"{args.max_trials} --search-epochs {args.search_epochs} --final-epochs "
        f"{args.final_epochs} --augment {args.augment}`: per seed, `tfnas search --space "
        f"chain --strategy random "
        f"--max-trials {args.max_trials} --epochs {args.search_epochs} --seed SEED` "
        f"(train split only), then `tfnas train` of its best architecture for "
        f"{args.final_epochs} epochs on train+validation with `--augment {args.augment}` and "
        "the default cosine schedule (peak 1e-3, 5 % warm-up). Both are evaluated on the "
        f"same held-out test split (360 digits). The final training wins on {wins} of "
        f"{len(results)} seeds.", rows)


if __name__ == "__main__":
    main()
