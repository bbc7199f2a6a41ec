"""Test set-up: quiet TensorFlow, and two logical CPU devices.

The CPU is split into two logical devices before TensorFlow initializes its
runtime, so `tf.distribute.MirroredStrategy` can be tested for real with two
replicas on a machine without GPUs. Tests that do not ask for a strategy
still run on the first device only.
"""

import gc
import os
import stat
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _temporary_files_in_memory(parent="/dev/shm", least_free=2 * 2**30):
    """Puts the tests' temporary files (pytest's `tmp_path`, `tempfile`, and
    the processes the tests start) in a memory-backed folder of this user's,
    `/dev/shm/tfnas-tests-UID`, unless TMPDIR is set.

    tfnas makes every state file durable (`fsync` before the rename), and a
    search writes several per trial: on this project's CI disk the waits
    took three quarters of a lookup-table search test's time (44.6 s against
    11.6 s on tmpfs). The calls are the same on tmpfs; they return at once.
    The default temporary folder stays when `parent` is missing or has less
    than `least_free` bytes free (a container's 64 MB /dev/shm), or when the
    folder is not a real folder of this user's that it can write to (a
    symbolic link planted there would otherwise steer pytest's clean-up of
    old runs).
    """
    if os.environ.get("TMPDIR") or not os.path.isdir(parent):
        return
    folder = os.path.join(parent, f"tfnas-tests-{os.getuid()}")
    try:
        disk = os.statvfs(parent)
        if disk.f_bavail * disk.f_frsize < least_free:
            return
        os.makedirs(folder, mode=0o700, exist_ok=True)
        own = os.lstat(folder)
    except OSError:
        return  # e.g. read-only
    if (not stat.S_ISDIR(own.st_mode) or own.st_uid != os.getuid()
            or own.st_mode & 0o077 or not os.access(folder, os.W_OK | os.X_OK)):
        return
    os.environ["TMPDIR"] = tempfile.tempdir = folder


_temporary_files_in_memory()

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

# Keeps `--dist loadgroup` honouring `xdist_group` under pytest >= 9.2.
from tests.xdist_groups import pytest_collection_modifyitems  # noqa: E402,F401

_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0],
    [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()],
)


# The garbage collector. A full collection (Keras's `clear_session` runs one,
# KerasTuner two per trial) walks every object Python tracks: after importing
# TensorFlow and Keras that is about 377,000 objects, 0.2 s, and each model
# built leaves about 9,000 more in TensorFlow's caches. As `tfnas.gc_scope`
# does for a search, each test starts with every object still alive set aside
# (`gc.freeze`): its collections walk only what it made. Objects set aside are
# still freed by reference counting; cyclic garbage among them (an object alive
# at one test's start, in a cycle, dropped later) waits for the next full
# collection, made when the objects set aside have doubled since the last
# one: such garbage stays below what is alive, and full collections are few.
# 36 % of test_inheritance.py's CPU time went to full collections
# (benchmarks/results/test_suite_time.md); test_gc_scope.py undoes this for
# its tests.
_set_aside_after_full_collection = [0]


@pytest.fixture(autouse=True)
def set_aside_survivors():
    """At each test's start: collect what the last test left, set the rest aside."""
    if gc.get_freeze_count() >= 2 * _set_aside_after_full_collection[0]:
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        _set_aside_after_full_collection[0] = gc.get_freeze_count()
    else:
        gc.collect()
        gc.freeze()


def pytest_unconfigure(config):
    """Exit without the interpreter's final garbage collections over
    TensorFlow's objects: seconds per process (see tfnas/__main__.py)."""
    gc.freeze()


@pytest.fixture(scope="session")
def mirrored():
    """One MirroredStrategy over the two logical CPUs for the whole session.

    Several MirroredStrategy objects in one process can hand out colliding
    collective-op keys (an all-reduce then meets a peer of another shape),
    so the tests share this one.
    """
    devices = [d.name for d in tf.config.list_logical_devices("CPU")][:2]
    assert len(devices) == 2, "the CPU is split into two logical devices above"
    return tf.distribute.MirroredStrategy(devices)


@pytest.fixture(scope="session")
def digits():
    """The embedded digits data, batched, as a `tfnas.data.SearchData`."""
    from tfnas import data

    return data.load_digits_data(batch_size=64, seed=0)


@pytest.fixture(scope="session")
def searched_project(tmp_path_factory, digits):
    """A finished random search of 6 trials x 2 epochs on digits.

    The space fails to build any candidate whose first layer is not
    conv3x3, so the project holds failed trials too. A latency lookup table,
    filled as operations appear, predicts each candidate's latency.

    Returns:
        The `NASTuner` (its `project_dir` and `log_dir` hold the results).
    """
    import tfnas
    from tfnas.latency import LatencyTable
    from tfnas.spaces import ChainSpace

    class FailingChainSpace(ChainSpace):
        def build_features(self, hp, inputs):
            features = super().build_features(hp, inputs)
            if hp.get("layer_0/op") != "conv3x3":
                raise ValueError("layer 0 must be conv3x3 in this test")
            return features

    space = FailingChainSpace((8, 8, 1), 10, max_layers=3, filters=(8, 16),
                              operations=("conv3x3", "sepconv3x3", "maxpool3x3"))
    tuner = tfnas.NASTuner(space, oracle="random", max_trials=6, seed=1,
                           latency_predictor=LatencyTable(space, repeats=5),
                           directory=tmp_path_factory.mktemp("searched"),
                           project_name="project", progress=False,
                           max_consecutive_failed_trials=6)
    tuner.search(digits.train, validation_data=digits.validation, epochs=2, verbose=0)
    return tuner
