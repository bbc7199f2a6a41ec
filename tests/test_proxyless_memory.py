"""ProxylessNAS keeps only the sampled paths' activations: elastic block
types compute only the values sampled in a step, with the gradients of the
full weighted sum, and a step's peak tensor memory shows it."""

import os
import statistics
import subprocess
import sys

import keras
import keras_tuner as kt
import numpy as np
import pytest
import tensorflow as tf

import tfnas
from tfnas.supernet import ARCHITECTURE_PHASE, WEIGHT_PHASE, elastic
from tfnas.supernet.builder import build_supernet
from tfnas.supernet.oneshot import OneShotModel

#: Six block types of one structure: paths of equal cost.
EQUAL_TYPES = {f"conv{i}": ("conv", 1) for i in range(6)}


class EqualPaths(kt.HyperModel):
    """One elastic mobile block whose six block types cost the same, on a
    large activation and a small head: a step's tensors are the paths'."""

    def build(self, hp):
        inputs = keras.Input((32, 32, 8))
        block_type = tfnas.choose_value(hp, "type", list(EQUAL_TYPES))
        x = elastic.mobile_block(32, 3, 1, block_type, EQUAL_TYPES, skip=False,
                                 name="block")(inputs)
        x = keras.layers.GlobalAveragePooling2D()(x)
        model = keras.Model(inputs, keras.layers.Dense(4)(x))
        model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        return model


def step_peak_mb(model, x, y, phase):
    """Median over 3 runs of the peak bytes TensorFlow's CPU allocator holds
    during one forward and backward pass of `model` (a `OneShotModel`) in
    `phase`, beyond what it held before (MB)."""
    model.set_phase(phase)
    step = tf.function(lambda: model._gradients(x, y)[0])
    step()  # traced
    peaks = []
    for _ in range(3):
        tf.config.experimental.reset_memory_stats("CPU:0")
        before = tf.config.experimental.get_memory_info("CPU:0")["current"]
        step().numpy()
        peaks.append(tf.config.experimental.get_memory_info("CPU:0")["peak"] - before)
    return statistics.median(peaks) / 2 ** 20


def cpu_memory_stats_available():
    """Whether TensorFlow's CPU allocator tracks its peak: only with
    TensorFlow's oneDNN optimizations on, which it turns on by default on
    some processors only (on an AMD EPYC, not on a 2.0 GHz Intel Xeon)."""
    try:
        tf.config.experimental.reset_memory_stats("CPU:0")
    except ValueError:
        return False
    return True


@pytest.mark.slow
def test_proxyless_step_keeps_only_the_sampled_paths_activations():
    if not cpu_memory_stats_available():
        if os.environ.get("TF_ENABLE_ONEDNN_OPTS") == "1":
            pytest.skip("TensorFlow tracks no CPU allocator peak here, even with "
                        "TF_ENABLE_ONEDNN_OPTS=1")
        # The option is read when TensorFlow starts: measure in a new process.
        test = f"{os.path.abspath(__file__)}::{sys._getframe().f_code.co_name}"
        run = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider", test],
            env={**os.environ, "TF_ENABLE_ONEDNN_OPTS": "1"}, capture_output=True, text=True,
            timeout=900)
        assert run.returncode == 0 and " passed" in run.stdout, run.stdout[-4000:]
        return
    x = tf.random.stateless_normal((64, 32, 32, 8), seed=(1, 2))
    y = tf.zeros((64,), tf.int32)
    peaks = {}
    for mode in ("darts", "proxyless"):
        supernet, builder = build_supernet(EqualPaths(), mode, seed=0)
        model = OneShotModel(supernet, builder, strategy=mode, seed=0)
        model.compile(optimizer="sgd", loss=supernet.loss)
        for phase in (WEIGHT_PHASE, ARCHITECTURE_PHASE):
            peaks[mode, phase] = step_peak_mb(model, x, y, phase)
    darts = peaks["darts", WEIGHT_PHASE]
    # DARTS keeps four paths' activations, ProxylessNAS one (weight phase)
    # or two (architecture phase); each path's are 64 x 32 x 32 x 32 floats
    # (8 MB) several times over, beside a small common part.
    assert peaks["proxyless", WEIGHT_PHASE] < darts / 2.5, peaks
    assert peaks["proxyless", ARCHITECTURE_PHASE] < darts / 1.5, peaks
    assert peaks["proxyless", WEIGHT_PHASE] < peaks["proxyless", ARCHITECTURE_PHASE], peaks


class CountingDense(keras.layers.Layer):
    """`x @ kernel`, counting its runs in a variable (a branch that is not
    executed does not count)."""

    def __init__(self, seed, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed

    def build(self, input_shape):
        self.kernel = self.add_weight(
            name="kernel", shape=(input_shape[-1], 3),
            initializer=keras.initializers.RandomNormal(seed=self.seed))
        self.runs = self.add_weight(name="runs", shape=(), initializer="zeros",
                                    trainable=False)

    def call(self, x):
        self.runs.assign_add(1.0)
        return tf.matmul(x, self.kernel)


@pytest.mark.parametrize("support", [[0, 1, 0, 0], [0, 1, 0, 1], [1, 0, 0, 1]])
def test_proxyless_mix_runs_only_the_supported_branches_with_the_full_gradients(support):
    layers = [CountingDense(seed) for seed in range(4)]
    x = tf.random.stateless_normal((5, 2), seed=(3, 4))
    for layer in layers:
        layer(x)
    alpha = tf.Variable([0.3, -0.2, 0.5, 0.1])
    support = tf.constant(support, tf.float32)
    branches = [lambda layer=layer: layer(x) for layer in layers]
    variables = [alpha] + [layer.kernel for layer in layers]

    @tf.function
    def run(sparse):
        with tf.GradientTape() as tape:
            # As a ProxylessNAS selector: zero (without gradient) off the support.
            weights = tf.unstack(support * tf.nn.softmax(alpha))
            if sparse:
                output = elastic.mix(weights, branches, "proxyless", True,
                                     support=tf.unstack(support),
                                     zeros=lambda: tf.zeros((5, 3)))
            else:  # the weighted sum of every branch
                output = elastic.mix(weights, branches, "proxyless", True)
            loss = tf.reduce_sum(tf.sin(output))
        return output, tape.gradient(loss, variables)

    def runs():
        return np.array([layer.runs.numpy() for layer in layers])

    before = runs()
    output, gradients = run(True)
    np.testing.assert_array_equal(runs() - before, support.numpy())
    expected_output, expected_gradients = run(False)
    np.testing.assert_allclose(output.numpy(), expected_output.numpy(), rtol=1e-6)
    for gradient, expected in zip(gradients, expected_gradients):
        np.testing.assert_allclose(gradient.numpy(), expected.numpy(), rtol=1e-5, atol=1e-7)
    # The unsampled branches' kernels get zero gradients, the sampled ones not.
    for active, gradient in zip(support.numpy(), gradients[1:]):
        assert bool(np.any(gradient.numpy())) == bool(active)


def test_proxyless_records_the_sampled_values_in_its_support():
    supernet, builder = build_supernet(EqualPaths(), "proxyless", seed=0)
    layer = builder.mixed["type"]
    x = tf.random.stateless_normal((2, 32, 32, 8), seed=(5, 6))
    step = tf.function(lambda: supernet(x, training=True))
    for phase, paths in ((WEIGHT_PHASE, 1), (ARCHITECTURE_PHASE, 2)):
        layer.set_phase(phase)
        seen = set()
        for _ in range(8):
            step()
            support = layer.support.numpy()
            assert sorted(support.tolist()) == [0.0] * (6 - paths) + [1.0] * paths
            seen.add(tuple(support))
        assert len(seen) > 1  # sampled anew at every step
