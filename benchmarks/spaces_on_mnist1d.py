"""Best test accuracy of a default search of each space on MNIST-1D.

MNIST-1D (Greydanus, 2020) separates architectures well: its published test
accuracies are about 32 % (logistic regression), 68 % (MLP), 91 % (GRU) and
94 % (CNN). For each of the MLP, chain, sequence and Transformer spaces
with their default arguments, runs one regularized-evolution search of
`--trials` trials x `--epochs` epochs (the same seed and data split), then
evaluates the best trial's model (by validation accuracy) on the test split,
which the search never sees.

Usage: python benchmarks/spaces_on_mnist1d.py [--trials 12] [--epochs 20]
"""

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tfnas  # noqa: E402

import report  # noqa: E402

SPACES = ("mlp", "chain", "sequence", "transformer")
PUBLISHED = "logistic regression 32 %, MLP 68 %, GRU 91 %, CNN 94 %"


def search(name, data, args, directory):
    """One search of space `name`: (best test accuracy, best val, trials, seconds)."""
    space = tfnas.spaces.get(name, data.input_shape, data.num_classes)
    tuner = tfnas.NASTuner(space, oracle="evolution", objective="val_accuracy",
                           max_trials=args.trials, seed=args.seed, directory=directory,
                           project_name=name, measure_latency=False, count_flops=False,
                           progress="always", log_dir=None)
    start = time.perf_counter()
    tuner.search(data.train, validation_data=data.validation, epochs=args.epochs,
                 verbose=0)
    seconds = time.perf_counter() - start
    trials = [t for t in tuner.oracle.trials.values() if t.status == "COMPLETED"]
    best = tuner.oracle.get_best_trials(1)[0]
    model = tuner.get_best_models(1)[0]
    test_accuracy = model.evaluate(data.test, verbose=0)[1]
    description = space.describe(tfnas.Architecture.from_trial(best).values)
    return test_accuracy, best.score, len(trials), seconds, description


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--spaces", nargs="+", default=list(SPACES), choices=SPACES)
    parser.add_argument("--output",
                        default=os.path.join(report.RESULTS, "spaces_on_mnist1d.md"))
    args = parser.parse_args()

    data = tfnas.load_data("mnist1d", batch_size=64, seed=args.seed)
    rows = ["| space | best test accuracy | its val accuracy | trials | wall time (s) "
            "| best architecture |", "|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as directory:
        for name in args.spaces:
            test, val, trials, seconds, description = search(name, data, args, directory)
            rows.append(f"| {name} | {100 * test:.1f} % | {100 * val:.1f} % | {trials} "
                        f"| {seconds:.0f} | `{description}` |")
            print(rows[-1], flush=True)
    report.write_table(
        args.output, "Default searches of the spaces on MNIST-1D",
        f"`python benchmarks/spaces_on_mnist1d.py --trials {args.trials} --epochs "
        f"{args.epochs} --seed {args.seed}`: each space with its default arguments, "
        f"regularized evolution, {args.trials} trials x {args.epochs} epochs, batch 64, "
        "MNIST-1D's 4,000 training sequences split 3,000/1,000 into train/validation "
        "(seed 0), test accuracy on its 1,000 test sequences of the trial with the best "
        f"validation accuracy. Published baselines: {PUBLISHED}.", rows)


if __name__ == "__main__":
    main()
