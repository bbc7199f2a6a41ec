"""Cheaper garbage collections between trials.

Before each trial KerasTuner clears the Keras session and runs a full
garbage collection (twice: `keras.backend.clear_session` collects, then
KerasTuner's `_try_build` collects again). With TensorFlow loaded, a full
collection walks millions of long-lived objects (modules, the data
pipeline, the tuner) and costs about half a second, more than the rest of
a 1-epoch trial's overhead. When the search begins, after one full
collection, every object still alive is set aside (`gc.freeze`): the
trials' collections walk only what the search made since, and still free
every trial's models and graphs. The objects set aside return to the
collector when the search ends.
"""

import gc


class SearchCollections:
    """A context around one search (see the module docstring).

    Only the collector's scans change: objects set aside were alive after a
    full collection; cyclic garbage among them (rare: they are the search's
    own long-lived objects) waits for the search's end, and reference
    counting frees everything as usual. A search inside another, or a
    process that froze objects itself, keeps the freeze it has.
    """

    def __init__(self):
        self._froze = False

    def __enter__(self):
        if gc.get_freeze_count() == 0:
            gc.collect()
            gc.freeze()
            self._froze = True
        return self

    def __exit__(self, *exc_info):
        if self._froze:
            gc.unfreeze()
            self._froze = False
        return False
