"""`FusedAdam`: Keras's Adam, one TensorFlow op per variable.

Keras 3's `Adam.update_step` writes its update as ~35 small ops per
variable, the bias corrections (`beta ** step`) recomputed for each one. A
supernet has a thousand weight variables: its optimizer alone is ~36,000
of the train step's graph nodes, which TensorFlow traces, optimizes and
sets up kernels for before the first step (see
benchmarks/results/supernet_cost.md). `FusedAdam` computes the same update
with one `ResourceApplyAdam` op per variable, the scalar powers once per
step. `fused_updates(model)` runs a model's Keras Adam as a `FusedAdam` for
the length of a block (`NASTuner` trains every candidate under it).
"""

import contextlib

import keras
import tensorflow as tf

from tfnas import compat


@keras.saving.register_keras_serializable(package="tfnas")
class FusedAdam(keras.optimizers.Adam):
    """`keras.optimizers.Adam` with one fused update op per variable.

    The same update rule as Keras 3's Adam (the same arguments, slot
    variables and checkpoints): with `t` the step,
    `alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)`,
    `m += (g - m) * (1 - beta_1)`, `v += (g^2 - v) * (1 - beta_2)`,
    `var -= alpha * m / (sqrt(v) + epsilon)`; TensorFlow's
    `ResourceApplyAdam` kernel computes exactly this (epsilon added to
    `sqrt(v)`, as Keras does). Results agree with Keras's Adam to float32
    rounding (the kernel forms `1 - beta` in float32).

    Everything Keras applies around the update (loss scaling, clipping,
    weight decay, gradient accumulation, EMA, `tf.distribute`) is Keras's
    own. Keras's per-variable update is used where the fused op does not
    apply: `amsgrad=True`, sparse (`tf.IndexedSlices`) gradients, Keras
    versions outside the tested range (the fused path overrides a private
    Keras hook), and backends other than TensorFlow (which never call this
    path).

    Args:
        See `keras.optimizers.Adam`.
    """

    def _distributed_tf_update_step(self, distribution, grads_and_vars, learning_rate):
        # Keras's TensorFlow optimizer calls this with every (gradient,
        # variable) pair, inside the distribution's cross-replica context
        # (`TFOptimizer._backend_update_step`); overriding it is the one
        # place where the scalars can be shared by all variables. The
        # override is a private Keras hook: `tfnas.compat` guards it.
        slots = compat.keras_adam_slots(self)
        if self.amsgrad or slots is None:
            return super()._distributed_tf_update_step(
                distribution, grads_and_vars, learning_rate)
        # In the cross-replica context, before the per-device updates.
        scalars = {dtype: self._scalars(learning_rate, dtype)
                   for dtype in {variable.dtype for _, variable in grads_and_vars}}

        def update(variable, gradient):
            if isinstance(gradient, tf.IndexedSlices):
                return self.update_step(gradient, variable, learning_rate)
            momentum, velocity = slots(variable)
            return tf.raw_ops.ResourceApplyAdam(
                var=variable.handle,
                m=momentum.value.handle,
                v=velocity.value.handle,
                grad=tf.cast(gradient, variable.dtype), use_locking=False,
                **scalars[variable.dtype])

        for gradient, variable in grads_and_vars:
            distribution.extended.update(variable, update, args=(gradient,), group=False)

    def _scalars(self, learning_rate, dtype):
        """The op's scalar inputs in `dtype`, as Keras's Adam forms them."""
        step = tf.cast(self.iterations + 1, dtype)
        beta_1 = tf.cast(self.beta_1, dtype)
        beta_2 = tf.cast(self.beta_2, dtype)
        return {"lr": tf.cast(learning_rate, dtype),
                "beta1_power": tf.pow(beta_1, step), "beta2_power": tf.pow(beta_2, step),
                "beta1": beta_1, "beta2": beta_2, "epsilon": tf.cast(self.epsilon, dtype)}


@contextlib.contextmanager
def fused_updates(model):
    """Within the block, `model`'s Keras `Adam` (also inside a
    `LossScaleOptimizer`) updates its variables as a `FusedAdam`.

    A candidate's training step is traced anew for every model, and Keras's
    per-variable update is a third to a half of that trace: with it fused,
    the first training batch of a 3-layer chain candidate on digits costs
    0.19 s CPU instead of 0.33 s, the mobile space's default architecture's
    (161 variables) 2.2 s instead of 4.7 s, and its later epochs 5 % less
    (`benchmarks/results/trial_breakdown_*_fused*.md`). The optimizer is the
    same object with the same variables and configuration; after the block
    it is Keras's `Adam` again and the training step traced in the block is
    dropped, so later `fit` calls train, and the model is saved and
    exported, with Keras's own optimizer. A whole-model save inside the
    block (e.g. a `ModelCheckpoint` without `save_weights_only`) records
    `tfnas>FusedAdam`: load that file with tfnas imported. Any other
    optimizer (a subclass of Adam included), and a model whose training
    step was traced before the block, are left alone.

    Yields:
        Whether the optimizer runs fused.
    """
    optimizer = getattr(model, "optimizer", None)
    optimizer = getattr(optimizer, "inner_optimizer", optimizer)
    if (type(optimizer) is not keras.optimizers.Adam
            or getattr(model, "train_function", None) is not None):
        yield False
        return
    # FusedAdam adds no state to Adam: only the update differs.
    optimizer.__class__ = FusedAdam
    try:
        yield True
    finally:
        optimizer.__class__ = keras.optimizers.Adam
        model.train_function = None  # traced with the fused update
