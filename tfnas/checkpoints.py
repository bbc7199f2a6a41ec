"""Trial checkpoints written whole or not at all.

KerasTuner saves a trial's best weights with `model.save_weights`, which
has HDF5 write straight into `checkpoint.weights.h5`. When the disk fills
up mid-write, HDF5 is left with a half-written file it can neither flush
nor close, and the process crashes at exit (segmentation fault); a process
killed mid-write leaves a corrupt checkpoint. Here the weights file is made
in memory, in the same format, then written through a temporary file and a
rename (`tfnas.atomic.write_bytes_atomically`).

The best epoch's weights are written once, when training ends, rather than
at every epoch that improves on the best: until then they are kept in memory
(a copy of the variables the file holds). Each write builds the HDF5 file and
waits for the disk (`fsync`); done at every improvement it cost 10-15 % of a
20-epoch trial on small models, most of it in the first epochs, which early
stopping keeps.
"""

import io

import keras
import numpy as np

from tfnas import atomic, compat


def build_optimizer(model):
    """Creates the optimizer's variables of a compiled `model` that has not
    trained yet (a no-op for an uncompiled model or a built optimizer).

    Keras builds an optimizer at the first training step. Unbuilt, it has
    no slots for a weights file's optimizer state to load into (Keras skips
    them with a warning), and a `.keras` file saved from it holds none, so
    that loading that file warns the same way.
    """
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and not optimizer.built:
        optimizer.build(model.trainable_variables)


def save_weights_atomically(model, path):
    """Writes `model`'s weights to `path` (a `.weights.h5` file) atomically.

    Raises:
        tfnas.atomic.DiskFullError: the disk is full; `path` keeps its
            previous content.
    """
    h5_store, save_state = compat.keras_weights_writer()
    buffer = io.BytesIO()
    store = h5_store(buffer, mode="w")
    try:
        save_state(model, weights_store=store, assets_store=None, inner_path="",
                   visited_saveables=set())
    finally:
        store.close()
    atomic.write_bytes_atomically(path, buffer.getvalue())


def saved_variables(model):
    """The variables whose values are all that `model.save_weights` writes
    (the model's and its optimizer's), or None when it writes anything else.

    Keras's optimizers write copies of their variables (`variable.numpy()`),
    layers write the variables themselves: a weights file holds these
    values exactly when the values written that are not variables are as
    many as the optimizer's variables and the variables written are the
    model's, as many as all of them together.
    """
    h5_store, save_state = compat.keras_weights_writer()

    class Recorder(h5_store):  # Keras's writer accepts only its own stores
        def __init__(self):  # no file
            self.values = []

        def __bool__(self):
            return True

        def make(self, path, metadata=None):
            return self

        def __setitem__(self, key, value):
            self.values.append(value)

    recorder = Recorder()
    save_state(model, weights_store=recorder, assets_store=None, inner_path="",
               visited_saveables=set())
    optimizer = getattr(model, "optimizer", None)
    optimizer_variables = list(getattr(optimizer, "variables", None) or [])
    candidates = {id(v): v for v in list(model.variables) + optimizer_variables}
    variables = [v for v in recorder.values if isinstance(v, keras.Variable)]
    if (len(recorder.values) - len(variables) != len(optimizer_variables)
            or len(recorder.values) != len(candidates)
            or any(id(v) not in candidates for v in variables)):
        return None
    return list(candidates.values())


def _values(variables):
    return [np.array(keras.ops.convert_to_numpy(v), copy=True) for v in variables]


def _assign(variables, values):
    for variable, value in zip(variables, values):
        variable.assign(value)


_UNKNOWN = object()


def _on_train_begin(self, logs=None):
    self._best_values = None  # this fit's best epoch so far, not yet written
    self._kept = _UNKNOWN  # found at the first improvement, the state all built


def _keep_best_epoch(self):
    """`SaveBestEpoch._save_model`, at an epoch that improves on the best:
    keeps the weights in memory (written by `on_train_end`)."""
    if getattr(self, "_kept", _UNKNOWN) is _UNKNOWN:
        self._kept = saved_variables(self.model)
    if self._kept is None:  # state that is not variables: written now
        _save_model_atomically(self)
    else:
        self._best_values = _values(self._kept)


def _on_train_end(self, logs=None):
    """Writes the best epoch's weights kept in memory (the model keeps its own)."""
    best, self._best_values = getattr(self, "_best_values", None), None
    if best is None:
        return
    current = _values(self._kept)
    _assign(self._kept, best)
    try:
        _save_model_atomically(self)
    finally:
        _assign(self._kept, current)


def _save_model_atomically(self):
    """`SaveBestEpoch._save_model`, written atomically."""
    io_module = compat.keras_tuner_io()
    write_path = io_module.write_filepath(self.filepath, self.model.distribute_strategy)
    save_weights_atomically(self.model, write_path)
    # Removes the temporary copy of non-chief MultiWorkerMirrored workers.
    io_module.remove_temp_dir_with_filepath(write_path, self.model.distribute_strategy)


_ATOMIC_CLASSES = {}


def atomic_save_best_epoch_class():
    """KerasTuner's best-epoch checkpoint callback class, written atomically
    (made on first use: its base class is a KerasTuner internal)."""
    if not _ATOMIC_CLASSES:
        _ATOMIC_CLASSES["class"] = type(
            "AtomicSaveBestEpoch", (compat.save_best_epoch_class(),),
            {"_save_model": _keep_best_epoch,
             "on_train_begin": _on_train_begin,
             "on_train_end": _on_train_end,
             "__doc__": ("KerasTuner's best-epoch checkpoint, written atomically, once "
                         "per fit (the best epoch's weights kept in memory until then)."),
             "__module__": __name__})
    return _ATOMIC_CLASSES["class"]


def make_atomic(callbacks):
    """Turns KerasTuner's checkpoint callback in `callbacks` into an
    `AtomicSaveBestEpoch`, in place (it keeps its best value so far, shared
    by the executions of a trial). The checkpoint is written when `fit`
    ends (an interrupted `fit` leaves the previous file, if any)."""
    save_best_epoch = compat.save_best_epoch_class()
    for callback in callbacks:
        if type(callback) is save_best_epoch:
            callback.__class__ = atomic_save_best_epoch_class()
