"""Cost of a candidate: parameters, FLOPs and measured inference latency."""

import logging
import statistics
import time

import numpy as np
import tensorflow as tf

logger = logging.getLogger(__name__)


def count_params(model):
    """Total number of parameters (trainable and not) of a built model."""
    return int(model.count_params())


def _input_specs(model, batch_size):
    inputs = getattr(model, "inputs", None)
    if not inputs:
        return None
    specs = []
    for tensor in inputs:
        shape = list(tensor.shape)
        if any(dim is None for dim in shape[1:]):
            return None
        specs.append(tf.TensorSpec([batch_size] + shape[1:], tensor.dtype))
    return specs


def forward_function(model):
    """The model's inference pass as a `tf.function`; `count_flops` and
    `measure_latency` given the same one trace the model once between them."""
    @tf.function
    def forward(*inputs):
        return model(list(inputs) if len(inputs) > 1 else inputs[0], training=False)

    return forward


def count_flops(model, forward=None):
    """Floating-point operations of one forward pass on one example.

    Counted by TensorFlow's profiler on the frozen inference graph, so every
    op TensorFlow implements is counted the way TensorFlow counts it (a
    multiply-accumulate is two FLOPs).

    Args:
        model: A built Keras model with fixed input shapes.
        forward: `forward_function(model)`, to share its trace; made here
            when None.

    Returns:
        An int, or None when the model has no fixed input shape or the graph
        cannot be profiled (a warning says why).
    """
    specs = _input_specs(model, batch_size=1)
    if specs is None:
        return None
    try:
        from tfnas import compat

        concrete = (forward or forward_function(model)).get_concrete_function(*specs)
        graph = compat.freeze_to_graph(concrete)
        builder = tf.compat.v1.profiler.ProfileOptionBuilder
        options = builder(builder.float_operation()).with_empty_output().build()
        tf_logger = tf.get_logger()
        level = tf_logger.level
        tf_logger.setLevel("ERROR")  # the v1 profiler logs deprecation notices
        try:
            profile = tf.compat.v1.profiler.profile(graph=graph, options=options)
        finally:
            tf_logger.setLevel(level)
        return int(profile.total_float_ops)
    except Exception as error:  # Profiling is best effort; training is not.
        logger.warning("Could not count FLOPs of %s: %s", model.name, error)
        return None


def measure_latency(model, batch_size=1, warmup=3, repeats=10, forward=None):
    """Median wall time of one inference batch, in milliseconds.

    The model runs as a compiled `tf.function` on random inputs; `warmup`
    calls (tracing included) are discarded, then `repeats` calls are timed.
    `forward` (`forward_function(model)`) shares a trace with `count_flops`.

    Returns:
        A float, or None when the model has no fixed input shape.
    """
    if warmup < 1 or repeats < 1:
        raise ValueError(
            "Expected `warmup` and `repeats` to be positive. "
            f"Received: warmup={warmup}, repeats={repeats}"
        )
    specs = _input_specs(model, batch_size=batch_size)
    if specs is None:
        return None
    rng = np.random.default_rng(0)
    inputs = [
        tf.constant(rng.random(spec.shape), dtype=spec.dtype)
        if spec.dtype.is_floating
        else tf.zeros(spec.shape, spec.dtype)
        for spec in specs
    ]
    forward = forward or forward_function(model)
    for _ in range(warmup):
        _block(forward(*inputs))
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        _block(forward(*inputs))
        timings.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(timings)


def _block(outputs):
    """Waits for the outputs to be computed (GPU kernels run asynchronously)."""
    for tensor in tf.nest.flatten(outputs):
        tensor.numpy()
