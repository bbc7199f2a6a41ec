"""`npz:PATH`: a NumPy `.npz` file holding arrays `x` (inputs) and `y` (labels)."""

import zipfile

import keras
import numpy as np

from tfnas.datasets import common, splits
from tfnas.datasets.splits import DataError


def read_npz(path):
    """The `x` and `y` arrays of `path`, checked."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [key for key in ("x", "y") if key not in archive.files]
            if missing:
                raise DataError(
                    f"{path}: expected arrays named `x` (inputs) and `y` (labels). "
                    f"Missing: {missing}; received arrays: {sorted(archive.files)}. "
                    "Save them with np.savez(path, x=inputs, y=labels).")
            x, y = archive["x"], archive["y"]
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        if isinstance(error, DataError):
            raise
        raise DataError(f"{path}: cannot read it as a NumPy .npz file ({error}). Pass a "
                        "file written by np.savez(path, x=inputs, y=labels).") from error
    if x.dtype.kind not in "iuf" and x.dtype.kind != "b":
        raise DataError(f"{path}: expected numeric inputs in `x`. Received dtype {x.dtype}.")
    if x.ndim < 1 or len(x) != len(y):
        raise DataError(f"{path}: expected one label in `y` per example in `x`. "
                        f"Received x of shape {x.shape} and y of shape {y.shape}.")
    x = x.astype("float32")
    if not np.all(np.isfinite(x)):
        bad = np.argwhere(~np.isfinite(x))[0]
        raise DataError(f"{path}: `x` holds a non-finite value (NaN or infinity) at "
                        f"index {tuple(int(i) for i in bad)}; expected finite numbers.")
    return (x[:, np.newaxis] if x.ndim == 1 else x), y


def normalization_model(train_inputs):
    """Normalization per last-axis channel, adapted on the training inputs."""
    inputs = keras.Input(shape=train_inputs.shape[1:], name="x", dtype="float32")
    layer = keras.layers.Normalization(axis=-1, name="normalization")
    layer.adapt(train_inputs)
    return keras.Model(inputs, layer(inputs), name="preprocessing")


def load_npz(path, batch_size=32, seed=0):
    """`npz:PATH` as the parts of a `SearchData` (see `tfnas.datasets.load`)."""
    where = f"npz:{path}"
    x, y = read_npz(path)
    labels, class_names = common.encode_labels(y, f"{path} (array `y`)")
    indices = splits.stratified_indices(labels, class_names, seed, f"{path} (array `y`)")
    preprocessing = normalization_model(x[indices["train"]])
    features = {split: preprocessing.predict(x[index], batch_size=1024, verbose=0)
                for split, index in indices.items()}
    return dict(
        name=where, input_shape=tuple(x.shape[1:]), num_classes=len(class_names),
        preprocessing=preprocessing,
        record=splits.record(where, seed, indices, class_names,
                             input_shape=list(x.shape[1:]),
                             preprocessing="Normalization per last-axis channel"),
        **common.from_features(features, {s: labels[i] for s, i in indices.items()},
                               batch_size, seed))
