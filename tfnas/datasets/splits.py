"""Seeded, stratified train/validation/test splits of labelled examples.

The test split is held out: a search trains on "train" and ranks candidates
on "validation"; only the final evaluation of the best model reads "test".
"""

import numpy as np

from tfnas import errors

TEST_FRACTION = 0.2
VALIDATION_FRACTION = 0.25  # of what the test split leaves: 60/20/20 overall
SPLITS = ("train", "validation", "test")


class DataError(errors.TfnasError, ValueError):
    """Data that cannot be searched on; the message names the file, column or folder."""


def stratified_indices(labels, class_names, seed, where):
    """Splits example indices 60/20/20 per class, by `seed`.

    Every class gets at least one example in each split, so each needs at
    least three examples.

    Args:
        labels: Integer class indices, one per example.
        class_names: The name of each class (for error messages).
        seed: The seed of the split; the same seed gives the same split.
        where: What holds the examples (e.g. the file), for error messages.

    Returns:
        A dict from "train", "validation" and "test" to sorted index arrays.

    Raises:
        DataError: when a class has fewer than three examples.
    """
    labels = np.asarray(labels)
    counts = np.bincount(labels, minlength=len(class_names))
    scarce = [(name, int(count)) for name, count in zip(class_names, counts)
              if count < len(SPLITS)]
    if scarce:
        listed = ", ".join(f"{name!r} has {count}" for name, count in scarce)
        raise DataError(
            f"{where}: too few examples of a class ({listed}); expected at least "
            f"{len(SPLITS)} per class (one each for the train, validation and test "
            "splits). Add examples or remove the class.")
    if len(class_names) < 2:
        raise DataError(f"{where}: expected at least 2 classes. Received: "
                        f"{list(class_names)}")
    rng = np.random.default_rng(seed)
    parts = {split: [] for split in SPLITS}
    for label in range(len(class_names)):
        members = rng.permutation(np.flatnonzero(labels == label))
        n_test = max(1, int(round(len(members) * TEST_FRACTION)))
        rest = len(members) - n_test
        n_validation = min(rest - 1, max(1, int(round(rest * VALIDATION_FRACTION))))
        parts["test"].append(members[:n_test])
        parts["validation"].append(members[n_test:n_test + n_validation])
        parts["train"].append(members[n_test + n_validation:])
    return {split: np.sort(np.concatenate(parts[split])) for split in SPLITS}


def record(source, seed, indices, class_names, **details):
    """The JSON record of a split: source, seed, sizes and classes."""
    return {
        "source": source,
        "seed": seed,
        "split_sizes": {split: int(len(indices[split])) for split in SPLITS},
        "class_names": [str(name) for name in class_names],
        **details,
    }
