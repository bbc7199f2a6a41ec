"""Hands the memory a supernet's first train step freed back to the system.

The first step of a supernet's `fit` prepares its traced graph: TensorFlow
instantiates it (the shared gradient function inlined at each call),
optimizes it (grappler) and sets up its kernels, several copies of a
graph of tens of thousands of nodes alive at once. Once the step has run,
the copies are freed, but glibc's allocator keeps most of their pages
(~400 MB on the cell supernet): the process's resident memory stays at the
first step's peak, and the later steps' own allocations, spread over the
runtime's threads, add to it. `ReleaseAfterFirstStep` returns them
(`malloc_trim`) after the first step, so that the rest of the search runs
well below that peak. It changes nothing the search computes (`tfnas.allocator`).
"""

import keras

from tfnas.allocator import release_free_memory


class ReleaseAfterFirstStep(keras.callbacks.Callback):
    """Calls `release_free_memory` once, after the first training batch of
    the first `fit` it serves (`released` counts the calls)."""

    def __init__(self):
        super().__init__()
        self.released = 0

    def on_train_batch_end(self, batch, logs=None):
        if not self.released:
            release_free_memory()
            self.released += 1
