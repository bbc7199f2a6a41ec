"""`FusedBatchNormalization`: Keras's batch normalization on TensorFlow's fused kernel.

In training, Keras 3's `BatchNormalization` writes its normalization as
`moments` (mean, squared difference, mean) and a dozen arithmetic ops, and
its gradient as as many again: a supernet's 255 batch normalizations are
thousands of the shared gradient function's nodes, which TensorFlow traces,
optimizes and sets up kernels for before the first step (see
benchmarks/results/supernet_cost.md). This layer computes the same
training-mode normalization with one `FusedBatchNorm` op (and its
registered gradient, one `FusedBatchNormGrad`), and the same moving
statistics: the fused kernel returns the Bessel-corrected batch variance,
`n / (n - 1)` times the biased one that Keras's moving variance averages, so
it is corrected back.

Supernets only: `tfnas.spaces.ops` builds it instead of Keras's layer inside
`supernet_scope()` (`tfnas.supernet.build_supernet`). Its config and
variables (the same four, in the same order) are Keras's
`BatchNormalization`'s: `get_weights`/`set_weights` carry them between the
two layers both ways.
"""

import contextlib
import threading

import keras
import tensorflow as tf

_SCOPE = threading.local()


@contextlib.contextmanager
def supernet_scope():
    """Within it (on this thread), `in_supernet_scope()` is true."""
    depth = getattr(_SCOPE, "depth", 0)
    _SCOPE.depth = depth + 1
    try:
        yield
    finally:
        _SCOPE.depth = depth


def in_supernet_scope():
    """Whether a supernet is being built (see `supernet_scope`)."""
    return getattr(_SCOPE, "depth", 0) > 0


@keras.saving.register_keras_serializable(package="tfnas")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` whose training-mode call is one fused op.

    Same arguments, weights, config and results as Keras's layer (outputs,
    gradients and moving statistics agree to float32 rounding). The fused
    kernel runs in training mode on inputs of rank 3 (reshaped to rank 4)
    and 4 normalized along the last axis, computing in float32 as Keras does
    (float16 inputs are cast, as Keras casts them). Everything else (other
    ranks or axes, masks, `renorm`, `synchronized`, inference) is Keras's
    own computation.

    Args:
        See `keras.layers.BatchNormalization`.
    """

    def _fused(self, inputs, training, mask):
        rank = len(inputs.shape)
        return (training and self.trainable and mask is None and not self.renorm
                and not self.synchronized and self.scale and self.center
                and rank in (3, 4) and self.axis in (-1, rank - 1)
                and inputs.shape[-1] is not None)

    def call(self, inputs, training=None, mask=None):
        if not self._fused(inputs, training, mask):
            return super().call(inputs, training=training, mask=mask)
        x = tf.cast(inputs, "float32")  # as Keras: statistics in float32
        if len(inputs.shape) == 3:  # (batch, length, channels) -> (batch, length, 1, channels)
            x = tf.expand_dims(x, 2)
        # Version 1 of the op: the same kernel as V3, and the gradient tape
        # knows that its gradient needs no zeros for the unused statistics
        # outputs (for V3 it adds five dead nodes per batch norm).
        empty = tf.zeros([0])  # no population statistics in training
        y, mean, variance, _, _ = tf.raw_ops.FusedBatchNorm(
            x=x, scale=tf.cast(self.gamma, "float32"), offset=tf.cast(self.beta, "float32"),
            mean=empty, variance=empty, epsilon=self.epsilon,
            exponential_avg_factor=1.0, data_format="NHWC", is_training=True)
        # The kernel's variance is Bessel-corrected; Keras averages the biased one.
        # Values per channel: one `Size` op, not the shape's slice and product.
        count = tf.cast(tf.size(x), "float32") / float(inputs.shape[-1])
        variance = variance * tf.maximum(count - 1.0, 0.0) / tf.maximum(count, 1.0)
        self.moving_mean.assign(self.moving_mean * self.momentum
                                + mean * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum
                                    + variance * (1.0 - self.momentum))
        if len(inputs.shape) == 3:
            y = tf.squeeze(y, 2)
        return tf.cast(y, self.compute_dtype)
