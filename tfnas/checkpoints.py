"""Trial checkpoints written whole or not at all.

KerasTuner saves a trial's best weights with `model.save_weights`, which
has HDF5 write straight into `checkpoint.weights.h5`. When the disk fills
up mid-write, HDF5 is left with a half-written file it can neither flush
nor close, and the process crashes at exit (segmentation fault); a process
killed mid-write leaves a corrupt checkpoint. Here the weights file is made
in memory, in the same format, then written through a temporary file and a
rename (`tfnas.atomic.write_bytes_atomically`).
"""

import io

from tfnas import atomic, compat


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
            {"_save_model": _save_model_atomically,
             "__doc__": "KerasTuner's best-epoch checkpoint, written atomically.",
             "__module__": __name__})
    return _ATOMIC_CLASSES["class"]


def make_atomic(callbacks):
    """Turns KerasTuner's checkpoint callback in `callbacks` into an
    `AtomicSaveBestEpoch`, in place (it keeps its best value so far, shared
    by the executions of a trial)."""
    save_best_epoch = compat.save_best_epoch_class()
    for callback in callbacks:
        if type(callback) is save_best_epoch:
            callback.__class__ = atomic_save_best_epoch_class()
