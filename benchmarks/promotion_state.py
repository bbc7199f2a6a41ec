"""What a promoted trial gains from its parent's optimizer state (successive halving).

A promotion trains a parent's architecture on from its checkpoint: epochs
1 -> E after the parent's first epoch. For each architecture of the chain
space and each seed, the parent trains one epoch on digits and is saved as
KerasTuner saves a trial's checkpoint (`save_weights`: weights and optimizer
variables). Then three models train epochs 1 -> E:

- uninterrupted: the parent itself, its optimizer state still in memory
  (what training without a promotion would have done);
- with state: a new model that builds its optimizer before loading the
  checkpoint, as `NASTuner` promotes now (`checkpoints.build_optimizer`);
- weights only: a new model that loads the checkpoint into an unbuilt
  optimizer, which Keras skips (KerasTuner's Hyperband, and `NASTuner`
  before): Adam restarts from zero moments at step 0.

Reports the validation accuracy and loss after epoch E, and each arm's
distance to the uninterrupted run, medians over architectures and seeds.

Usage: python benchmarks/promotion_state.py [--architectures 8] [--seeds 3] [--epochs 3]
"""

import argparse
import os
import statistics
import tempfile
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

import tfnas  # noqa: E402
from tfnas import checkpoints  # noqa: E402
from tfnas.architecture import Architecture  # noqa: E402
from tfnas.sampling import sample_architectures  # noqa: E402

import report  # noqa: E402

ARMS = ("uninterrupted", "with state", "weights only")


def continue_training(space, values, data, checkpoint, seed, epochs, arm, parent):
    keras.utils.set_random_seed(seed)
    if arm == "uninterrupted":
        model = parent
    else:
        model = space.build(Architecture(values).to_hyperparameters())
        if arm == "with state":
            checkpoints.build_optimizer(model)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
            model.load_weights(checkpoint)
    keras.utils.set_random_seed(seed + 1000)  # the same batches for every arm
    history = model.fit(data.train, validation_data=data.validation, initial_epoch=1,
                        epochs=epochs, verbose=0)
    return (history.history["val_accuracy"][-1], history.history["val_loss"][-1],
            int(model.optimizer.iterations.numpy()))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--architectures", type=int, default=8)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--output", default=os.path.join(report.RESULTS, "promotion_state.md"))
    args = parser.parse_args()

    data = tfnas.load_data("digits")
    space = tfnas.spaces.ChainSpace(data.input_shape, data.num_classes, max_layers=3)
    runs = []
    with tempfile.TemporaryDirectory() as scratch:
        _, samples = sample_architectures(space, args.architectures, seed=0)
        for index, values in enumerate(samples):
            for seed in range(args.seeds):
                checkpoint = os.path.join(scratch, f"{index}-{seed}.weights.h5")
                keras.utils.set_random_seed(seed)
                parent = space.build(Architecture(values).to_hyperparameters())
                parent.fit(data.train, epochs=1, verbose=0)
                parent.save_weights(checkpoint)
                run = {arm: continue_training(space, values, data, checkpoint, seed,
                                              args.epochs, arm, parent) for arm in ARMS}
                runs.append(run)
                print(index, seed, {arm: tuple(round(v, 4) for v in result)
                                    for arm, result in run.items()}, flush=True)

    def median(arm, position):
        return statistics.median(run[arm][position] for run in runs)

    def median_gap(arm, position):
        return statistics.median(abs(run[arm][position] - run["uninterrupted"][position])
                                 for run in runs)

    rows = ["| arm | val accuracy (median) | val loss (median) | distance in accuracy to uninterrupted "
            "(median) | distance in loss (median) | optimizer steps at the end "
            "(median) |", "|---|---|---|---|---|---|"]
    for arm in ARMS:
        rows.append(f"| {arm} | {median(arm, 0):.4f} | {median(arm, 1):.4f} | "
                    f"{median_gap(arm, 0):.4f} | {median_gap(arm, 1):.4f} | "
                    f"{median(arm, 2):.0f} |")
    better = sum(run["with state"][1] < run["weights only"][1] for run in runs)
    rows += ["", f"Runs where 'with state' ends at a lower validation loss than "
             f"'weights only': {better} of {len(runs)}."]
    report.write_table(
        args.output, "Promotion: the parent's optimizer state",
        f"{args.architectures} chain-space architectures (max_layers=3) x {args.seeds} "
        f"seeds on digits; the parent trains 1 epoch, each arm epochs 1 -> {args.epochs}. "
        f"Command: python benchmarks/promotion_state.py --architectures "
        f"{args.architectures} --seeds {args.seeds} --epochs {args.epochs}.", rows)


if __name__ == "__main__":
    main()
