"""Training curves in TensorBoard, per epoch, without per-batch work.

Keras's `TensorBoard` callback has batch hooks. With `update_freq="epoch"`
(its default, what `NASTuner` uses), no profiling and no steps-per-second,
they write nothing (their batch scalars have no default writer), yet they
run at every batch (a `tf.summary.scalar` call per logged metric): in a
10-epoch fit of a small MNIST-1D candidate, 5.1 s wall / 3.5 s CPU against
4.5 s / 3.3 s without them (`benchmarks/results/tensorboard_callback.md`).
`EpochTensorBoard` is Keras's callback without these hooks: the same event
files (the model's summary, the epoch scalars of the training and
validation runs, the evaluation scalars by iteration), no work per batch.
"""

import keras


class EpochTensorBoard(keras.callbacks.TensorBoard):
    """Keras's `TensorBoard` callback for per-epoch logs only.

    Args:
        log_dir: Where to write the logs.
        **kwargs: Other `keras.callbacks.TensorBoard` arguments, except
            those that need per-batch hooks (`update_freq` other than
            "epoch", `profile_batch`, `write_steps_per_second`).
    """

    # Keras's no-op hooks: with the arguments allowed here, Keras's own
    # TensorBoard hooks only count batches and record nothing.
    on_train_batch_begin = keras.callbacks.Callback.on_train_batch_begin
    on_train_batch_end = keras.callbacks.Callback.on_train_batch_end
    on_test_batch_begin = keras.callbacks.Callback.on_test_batch_begin
    on_test_batch_end = keras.callbacks.Callback.on_test_batch_end

    def __init__(self, log_dir="logs", **kwargs):
        needs_batches = {name: kwargs[name] for name, default in (
            ("update_freq", "epoch"), ("profile_batch", 0),
            ("write_steps_per_second", False)) if kwargs.get(name, default) != default}
        if needs_batches:
            raise ValueError(
                "EpochTensorBoard writes per-epoch logs only. Received arguments that "
                f"need per-batch hooks: {needs_batches}; use "
                "keras.callbacks.TensorBoard for those.")
        super().__init__(log_dir=log_dir, **kwargs)
