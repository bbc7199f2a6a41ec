"""Cheaper garbage collections between trials.

Before each trial KerasTuner clears the Keras session and runs a full
garbage collection (twice: `keras.backend.clear_session` collects, then
KerasTuner's `_try_build` collects again). With TensorFlow loaded, a full
collection walks millions of long-lived objects (modules, the data
pipeline, the tuner) and costs about half a second, more than the rest of
a 1-epoch trial's overhead. Right after the first trial's collection,
every object still alive is set aside (`gc.freeze`): the next collections
walk only what the search made since, and still free every trial's models
and graphs. The objects set aside return to the collector when the search
ends.
"""

import gc


class SearchCollections:
    """A context for one search; `set_aside()` right after a full collection.

    Only the collector's scans change: objects set aside were alive after a
    full collection; cyclic garbage among them (rare: they are the search's
    own long-lived objects) waits for the search's end, and reference
    counting frees everything as usual.
    """

    def __init__(self):
        self._froze = False

    def __enter__(self):
        return self

    def set_aside(self):
        """Sets every object alive now aside, once per search (a search
        inside another, or a process that froze already, keeps its own)."""
        if not self._froze and gc.get_freeze_count() == 0:
            gc.freeze()
            self._froze = True

    def __exit__(self, *exc_info):
        if self._froze:
            gc.unfreeze()
            self._froze = False
        return False
