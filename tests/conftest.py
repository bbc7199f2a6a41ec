"""Test set-up: quiet TensorFlow, and two logical CPU devices.

The CPU is split into two logical devices before TensorFlow initializes its
runtime, so `tf.distribute.MirroredStrategy` can be tested for real with two
replicas on a machine without GPUs. Tests that do not ask for a strategy
still run on the first device only.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0],
    [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()],
)


@pytest.fixture(scope="session")
def digits():
    """The embedded digits data, batched, as a `tfnas.data.SearchData`."""
    from tfnas import data

    return data.load_digits_data(batch_size=64, seed=0)
