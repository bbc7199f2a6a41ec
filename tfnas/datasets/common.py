"""What every source shares: class names from labels, batched splits."""

import numpy as np
import tensorflow as tf

from tfnas.datasets.splits import SPLITS, DataError


def encode_labels(values, where):
    """Class indices and sorted class names of raw label values.

    Numbers sort as numbers, anything else as text.
    """
    values = np.asarray(values)
    if values.ndim != 1:
        raise DataError(f"{where}: expected one label per example (a 1-D array). "
                        f"Received labels of shape {values.shape}")
    if values.dtype.kind in "iub":
        names = np.unique(values)
        return np.searchsorted(names, values).astype("int32"), [str(n) for n in names]
    if values.dtype.kind == "f":
        raise DataError(f"{where}: expected integer or text class labels. Received "
                        f"floating-point labels (dtype {values.dtype}); a search "
                        "here classifies, it does not regress.")
    texts = [str(v) for v in values]
    try:
        names = sorted(set(texts), key=float)
    except ValueError:
        names = sorted(set(texts))
    index = {name: i for i, name in enumerate(names)}
    return np.array([index[t] for t in texts], dtype="int32"), names


def batched(dataset, batch_size, split, seed, cache=False):
    """The split's dataset, cached, shuffled (train only, by `seed`) and batched."""
    if cache:
        dataset = dataset.cache()
    if split == "train":
        dataset = dataset.shuffle(4096, seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def from_features(features, labels, batch_size, seed):
    """Batched datasets of per-split `(features, labels)` arrays."""
    return {split: batched(tf.data.Dataset.from_tensor_slices((features[split], labels[split])),
                           batch_size, split, seed)
            for split in SPLITS}
