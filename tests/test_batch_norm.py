"""A supernet's batch normalization on the fused kernel computes what
Keras's `BatchNormalization` computes, and only supernets use it."""

import keras
import keras_tuner as kt
import numpy as np
import pytest
import tensorflow as tf

from tfnas import spaces
from tfnas.supernet.batch_norm import FusedBatchNormalization
from tfnas.supernet.builder import build_supernet


def _train_side_by_side(shape, steps=4, momentum=0.9, **call_kwargs):
    """Keras's layer and the fused one from the same weights, trained for
    `steps` SGD steps on the same batches; returns every step's outputs,
    input and weight gradients and moving statistics of both."""
    rng = np.random.default_rng(0)
    keras_layer = keras.layers.BatchNormalization(momentum=momentum, epsilon=1e-5)
    fused = FusedBatchNormalization(momentum=momentum, epsilon=1e-5)
    keras_layer.build(shape)
    fused.build(shape)
    keras_layer.set_weights([rng.normal(size=w.shape).astype("float32") + (i == 3)
                             for i, w in enumerate(keras_layer.get_weights())])
    fused.set_weights(keras_layer.get_weights())
    history = {id(keras_layer): [], id(fused): []}
    for _ in range(steps):
        x = tf.constant(rng.normal(size=shape).astype("float32") * 3 + 1)
        for layer in (keras_layer, fused):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = layer(x, training=True, **call_kwargs)
                loss = tf.reduce_sum(y * tf.sin(y))
            gradients = tape.gradient(loss, [x, layer.gamma, layer.beta])
            for weight, gradient in zip((layer.gamma, layer.beta), gradients[1:]):
                weight.assign_sub(0.01 * gradient)
            history[id(layer)].append(
                [y.numpy(), *[g.numpy() for g in gradients],
                 layer.moving_mean.numpy(), layer.moving_variance.numpy()])
    return history[id(keras_layer)], history[id(fused)]


@pytest.mark.parametrize("shape", [(8, 5, 5, 6), (8, 7, 6), (2, 1, 1, 3)],
                         ids=["2-D", "1-D", "one-pixel"])
def test_matches_keras_batch_normalization_in_training(shape):
    expected, received = _train_side_by_side(shape)
    names = ["outputs", "input gradient", "gamma gradient", "beta gradient", "moving mean",
             "moving variance"]
    for step, (want, got) in enumerate(zip(expected, received)):
        for name, a, b in zip(names, want, got):
            scale = max(1.0, float(np.abs(a).max()))
            np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5 * scale,
                                       err_msg=f"{name} at step {step}")
    # Inference reads the moving statistics, as Keras's layer does.
    assert not np.allclose(expected[-1][-1], 1.0)


def test_runs_the_fused_kernel_and_keras_path_elsewhere():
    layer = FusedBatchNormalization()
    graph = tf.function(lambda x: layer(x, training=True)).get_concrete_function(
        tf.TensorSpec((None, 4, 4, 3))).graph
    kinds = {op.type for op in graph.get_operations()}
    assert "FusedBatchNorm" in kinds and "SquaredDifference" not in kinds
    # Rank 2 (after a Dense layer) and masks: Keras's own computation.
    dense = FusedBatchNormalization()
    graph = tf.function(lambda x: dense(x, training=True)).get_concrete_function(
        tf.TensorSpec((None, 5))).graph
    assert "FusedBatchNorm" not in {op.type for op in graph.get_operations()}
    expected, received = _train_side_by_side((6, 5), steps=2)
    for want, got in zip(expected, received):
        for a, b in zip(want, got):
            np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)


def test_mixed_precision_computes_in_float32_like_keras():
    x = tf.constant(np.random.default_rng(1).normal(size=(4, 3, 3, 2)) * 5, "float16")
    keras_layer = keras.layers.BatchNormalization(dtype="mixed_float16")
    fused = FusedBatchNormalization(dtype="mixed_float16")
    expected = keras_layer(x, training=True)
    received = fused(x, training=True)
    assert received.dtype == expected.dtype == tf.float16
    np.testing.assert_allclose(received.numpy(), expected.numpy(), atol=2e-3)
    np.testing.assert_allclose(fused.moving_variance.numpy(),
                               keras_layer.moving_variance.numpy(), rtol=1e-5)


def test_config_round_trips_and_is_registered():
    layer = FusedBatchNormalization(momentum=0.8, epsilon=1e-3, name="norm")
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(restored) is FusedBatchNormalization
    assert restored.get_config() == layer.get_config()
    # Keras's own validation in __init__.
    with pytest.raises(ValueError, match="renorm_clipping"):
        FusedBatchNormalization(renorm=True, renorm_clipping={"rmax": 1, "bad": 2})


def _cell():
    return spaces.get("cell", (8, 8, 1), 10, num_cells=3, num_blocks=1, filters=4,
                      operations=("sep_conv_3x3", "max_pool_3x3", "identity"))


def test_only_supernets_use_it_and_derived_models_keep_keras_layers():
    supernet, _ = build_supernet(_cell(), "darts", seed=0)
    normalizations = [layer for layer in supernet._flatten_layers()
                      if isinstance(layer, keras.layers.BatchNormalization)]
    assert normalizations
    assert all(type(layer) is FusedBatchNormalization for layer in normalizations)
    standalone = _cell().build(kt.HyperParameters())
    kinds = {type(layer) for layer in standalone._flatten_layers()
             if isinstance(layer, keras.layers.BatchNormalization)}
    assert kinds == {keras.layers.BatchNormalization}


def _model(normalization):
    return keras.Sequential([keras.Input((6, 6, 2)), keras.layers.Conv2D(3, 3, name="conv"),
                             normalization(momentum=0.5, name="norm")])


def test_saved_model_loads_and_weights_transfer_to_keras_batch_normalization(tmp_path):
    x = np.random.default_rng(0).normal(size=(4, 6, 6, 2)).astype("float32")
    fused = _model(FusedBatchNormalization)
    fused(x, training=True)  # moving statistics away from their start
    folder = tmp_path / "nested"
    folder.mkdir()
    fused.save(str(folder / "model.keras"))
    restored = keras.saving.load_model(str(folder / "model.keras"))
    assert type(restored.get_layer("norm")) is FusedBatchNormalization
    np.testing.assert_allclose(restored(x), fused(x), atol=1e-6)
    # The same variables, in the same order, as Keras's layer.
    plain = _model(keras.layers.BatchNormalization)
    plain.set_weights(fused.get_weights())
    np.testing.assert_allclose(plain(x), fused(x), atol=1e-6)
