"""Creating a model's training state before `fit`, so its step traces once.

Without a `tf.distribute` strategy, Keras 3 (TensorFlow backend) creates the
optimizer's slots, the compiled metrics' and the loss tracker's variables
lazily, inside the first trace of the training step. A `tf.function` that
creates variables on its first trace is traced a second time, so every new
model pays for tracing its training step twice: about a third of a small
model's first epoch, and a fixed cost per trial of a search. With a
strategy, Keras itself builds that state symbolically at the start of `fit`
(`Trainer._symbolic_build`); `build_training_state` runs the same build
beforehand when there is no strategy. Training is unchanged: the same
variables, zero-initialised, are created, only earlier.
"""

import tensorflow as tf

from tfnas import compat


def data_spec(x, y=None, sample_weight=None):
    """The structure of one training batch, from `fit`'s `x`, `y` and
    `sample_weight`, or None when it cannot be read without iterating (e.g.
    a Python generator or a `keras.utils.PyDataset`)."""
    if isinstance(x, tf.data.Dataset):
        return x.element_spec
    arrays = (x, y, sample_weight)
    if x is None or not all(a is None or _is_array(a) for a in arrays):
        return None
    return tuple(a for a in arrays if a is not None) if y is not None else (x,)


def fit_data_spec(args, kwargs):
    """`data_spec` of the data of a `fit(*args, **kwargs)` call."""
    names = ("x", "y", "batch_size", "epochs", "verbose", "callbacks",
             "validation_split", "validation_data", "shuffle", "class_weight",
             "sample_weight")
    given = {**dict(zip(names, args)), **kwargs}
    return data_spec(given.get("x"), given.get("y"), given.get("sample_weight"))


def _is_array(value):
    return hasattr(value, "shape") and hasattr(value, "dtype")


def build_training_state(model, spec):
    """Creates `model`'s optimizer, metric and loss variables for batches
    like `spec` (see `data_spec`), when Keras would create them inside the
    first trace of the training step.

    Does nothing when the model trains under a distribution strategy (Keras
    builds the state itself then), is not compiled or not built, when `spec`
    is None, or when the state exists already. Returns whether it built.
    """
    build = compat.keras_symbolic_build(model)
    if (build is None or spec is None or tf.distribute.has_strategy()
            or getattr(model, "_distribute_strategy", None) is not None
            or getattr(model, "optimizer", None) is None or not model.built
            or model.optimizer.built):
        return False
    try:
        build(data_batch=spec)
    except Exception:  # noqa: BLE001 - an optimisation only: fit builds lazily then
        return False
    return True
