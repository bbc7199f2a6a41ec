"""Test set-up: quiet TensorFlow, and two logical CPU devices.

The CPU is split into two logical devices before TensorFlow initializes its
runtime, so `tf.distribute.MirroredStrategy` can be tested for real with two
replicas on a machine without GPUs. Tests that do not ask for a strategy
still run on the first device only.
"""

import gc
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

# Keeps `--dist loadgroup` honouring `xdist_group` under pytest >= 9.2.
from tests.xdist_groups import pytest_collection_modifyitems  # noqa: E402,F401

_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0],
    [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()],
)


@pytest.fixture(scope="module", autouse=True)
def set_aside_survivors():
    """Sets aside every object still alive when a test module starts (after
    one collection) from the garbage collector's full scans, as
    `tfnas.gc_scope` does for a search. A full collection (Keras's
    `clear_session` runs one) otherwise walks TensorFlow's and Keras's
    long-lived objects, about 0.2 s each time, and what earlier tests left
    in their caches: 39 % of test_inheritance.py's CPU time. Objects set
    aside are still freed by reference counting (only cyclic garbage among
    them, rare since all were alive, waits); test_gc_scope.py undoes this
    for its tests."""
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
