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

# Keras's own writer of `.weights.h5` files: `model.save_weights` takes only
# paths, and these two are what it runs on the file it opens.
from keras.src.saving.saving_lib import H5IOStore, _save_state
from keras_tuner.src import backend as kt_backend
from keras_tuner.src.engine.tuner_utils import SaveBestEpoch

from tfnas import atomic


def save_weights_atomically(model, path):
    """Writes `model`'s weights to `path` (a `.weights.h5` file) atomically.

    Raises:
        tfnas.atomic.DiskFullError: the disk is full; `path` keeps its
            previous content.
    """
    buffer = io.BytesIO()
    store = H5IOStore(buffer, mode="w")
    try:
        _save_state(model, weights_store=store, assets_store=None, inner_path="",
                    visited_saveables=set())
    finally:
        store.close()
    atomic.write_bytes_atomically(path, buffer.getvalue())


class AtomicSaveBestEpoch(SaveBestEpoch):
    """KerasTuner's best-epoch checkpoint, written atomically."""

    def _save_model(self):
        write_path = kt_backend.io.write_filepath(self.filepath,
                                                  self.model.distribute_strategy)
        save_weights_atomically(self.model, write_path)
        # Removes the temporary copy of non-chief MultiWorkerMirrored workers.
        kt_backend.io.remove_temp_dir_with_filepath(write_path,
                                                    self.model.distribute_strategy)


def make_atomic(callbacks):
    """Turns KerasTuner's checkpoint callback in `callbacks` into an
    `AtomicSaveBestEpoch`, in place (it keeps its best value so far, shared
    by the executions of a trial)."""
    for callback in callbacks:
        if type(callback) is SaveBestEpoch:
            callback.__class__ = AtomicSaveBestEpoch
