"""Atomic writes and the full-disk error: the ground floor every writer shares.

No tfnas imports (only the standard library and KerasTuner's error class), so
the oracles, the tuner, the checkpoints and the CLI can write state files
without importing the spaces or the project record.
"""

import contextlib
import errno
import json
import os
import re
import threading

import keras_tuner as kt

_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


class DiskFullError(kt.errors.FatalError, OSError):
    """The disk (or the user's quota) is full; nothing was half-written.

    A `keras_tuner.errors.FatalError`: it stops the search (KerasTuner
    would otherwise record the trial as failed and go on) and leaves the
    trial to run again when the search is resumed.
    """

    def __str__(self):
        return self.args[1]


def is_disk_full(error):
    """Whether `error` (from Python, h5py or TensorFlow), or an error it was
    raised from, means a full disk."""
    while error is not None:
        if (getattr(error, "errno", None) in _DISK_FULL
                or "No space left on device" in str(error)
                or "Disk quota exceeded" in str(error)):
            return True
        error = error.__cause__ or error.__context__
    return False


def _written_file(error):
    """The file named in `error` or an error it was raised from, if any."""
    while error is not None:
        if getattr(error, "filename", None):
            return os.fspath(error.filename)
        match = re.search(r"filename = '([^']+)'", str(error))  # h5py's message
        if match:
            return match.group(1)
        error = error.__cause__ or error.__context__
    return None


def raise_if_disk_full(error, path):
    """Raises a `DiskFullError` when `error` means a full disk.

    Args:
        error: The exception caught.
        path: The file being written.
    """
    if not is_disk_full(error) or isinstance(error, DiskFullError):
        return
    raise DiskFullError(
        errno.ENOSPC,
        f"no space left on device writing {path} (the previous version of every "
        "state file is kept). Free some space, then run the same command again: "
        "a search resumes where it stopped.") from error


@contextlib.contextmanager
def fatal_when_disk_full(folder):
    """Turns any error that means a full disk, inside the block, into a
    `DiskFullError` naming the file (or else `folder`)."""
    try:
        yield
    except Exception as error:
        raise_if_disk_full(error, _written_file(error) or folder)
        raise


def write_atomically(path, record, indent=2):
    """Writes `record` as JSON to `path` through a temporary file and a rename.

    On any failure the temporary file is removed and `path` keeps its
    previous content; a full disk raises `DiskFullError` naming `path`.

    Args:
        path: The file to write.
        record: A JSON-serializable object.
        indent: JSON indentation, or None for one line. One line is written
            by the json module's C encoder, about 10 times faster than the
            Python one that indentation needs: for state rewritten at every
            trial, such as an oracle's.
    """
    text = json.dumps(record, indent=indent, sort_keys=True)  # fails before any file exists
    write_bytes_atomically(path, text.encode())


def write_bytes_atomically(path, data):
    """Writes `data` to `path` through a temporary file and a rename; see
    `write_atomically`."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    # Unique per process and thread: a chief and its workers share directories.
    temporary = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
    try:
        with open(temporary, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())  # the data is on disk before the rename makes it current
        os.replace(temporary, path)
    except BaseException as error:
        try:
            os.remove(temporary)
        except OSError:
            pass
        if isinstance(error, OSError):
            raise_if_disk_full(error, path)
        raise
