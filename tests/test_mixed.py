"""Mixed layers: DARTS, GDAS, ProxylessNAS and single-path mixing."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfnas.supernet import ARCHITECTURE_PHASE, MixedOp


def _candidates():
    """Three dense layers with fixed, distinct kernels."""
    layers = []
    for scale in (1.0, -2.0, 3.0):
        layers.append(keras.layers.Dense(
            2, kernel_initializer=keras.initializers.Constant(scale), bias_initializer="zeros"))
    return layers


def _mixed(mode, **kwargs):
    layer = MixedOp(_candidates(), ["a", "b", "c"], mode=mode, seed=0, **kwargs)
    x = tf.constant([[1.0, 2.0, 0.5]])
    layer(x)  # builds
    outputs = [candidate(x).numpy() for candidate in layer.candidates]
    return layer, x, outputs


def _which(output, outputs):
    matches = [i for i, o in enumerate(outputs) if np.allclose(output, o, atol=1e-5)]
    assert len(matches) == 1, (output, outputs)
    return matches[0]


def _gradients(layer, x, training=True):
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(x, training=training) ** 2)
    variables = [layer.alpha] + [c.kernel for c in layer.candidates]
    return [None if g is None else tf.convert_to_tensor(g).numpy()
            for g in tape.gradient(loss, variables)]


def test_darts_is_the_softmax_weighted_sum():
    layer, x, outputs = _mixed("darts")
    alpha = np.array([0.5, -0.3, 1.0], dtype="float32")
    layer.alpha.assign(alpha)
    weights = np.exp(alpha) / np.exp(alpha).sum()
    expected = sum(w * o for w, o in zip(weights, outputs))
    np.testing.assert_allclose(layer(x).numpy(), expected, rtol=1e-5)
    alpha_gradient, *kernel_gradients = _gradients(layer, x)
    assert np.all(np.abs(alpha_gradient) > 0)
    assert all(np.any(g != 0) for g in kernel_gradients)


def test_single_path_computes_and_trains_only_the_chosen_branch():
    layer, x, outputs = _mixed("single_path")
    for index in (2, 0, 1):
        layer.set_index(index)
        assert _which(layer(x, training=True).numpy(), outputs) == index
        alpha_gradient, *kernel_gradients = _gradients(layer, x)
        for i, gradient in enumerate(kernel_gradients):
            assert (gradient is not None and np.any(gradient != 0)) == (i == index)
        assert alpha_gradient is None or not np.any(alpha_gradient)


def test_gdas_samples_one_hot_with_gradients_to_alpha():
    layer, x, outputs = _mixed("gdas", temperature=1.0)
    layer.alpha.assign([0.0, 0.0, 4.0])
    chosen = [_which(layer(x, training=True).numpy(), outputs) for _ in range(60)]
    assert set(chosen) <= {0, 1, 2} and chosen.count(2) > 40  # follows softmax(alpha)
    alpha_gradient, *_ = _gradients(layer, x)
    assert np.any(alpha_gradient != 0)
    # Outside training: the candidate of largest alpha.
    assert _which(layer(x, training=False).numpy(), outputs) == 2


def test_proxyless_weight_and_architecture_phases():
    layer, x, outputs = _mixed("proxyless")
    layer.alpha.assign([0.0, 1.0, 0.5])
    # Weight phase: one sampled path, no gradient to alpha.
    for _ in range(5):
        _which(layer(x, training=True).numpy(), outputs)
    alpha_gradient, *_ = _gradients(layer, x)
    assert alpha_gradient is None or not np.any(alpha_gradient)
    # Architecture phase: the output is one path; alpha gets a gradient on
    # the two sampled paths only.
    layer.set_phase(ARCHITECTURE_PHASE)
    for _ in range(10):
        _which(layer(x, training=True).numpy(), outputs)
        alpha_gradient, *_ = _gradients(layer, x)
        assert 1 <= np.count_nonzero(alpha_gradient) <= 2


def test_config_round_trip_and_saving(tmp_path):
    layer, x, _ = _mixed("darts")
    clone = MixedOp.from_config(layer.get_config())
    assert clone.get_config()["labels"] == ["a", "b", "c"]
    assert [type(c) for c in clone.candidates] == [keras.layers.Dense] * 3
    inputs = keras.Input((3,))
    model = keras.Model(inputs, MixedOp(_candidates(), ["a", "b", "c"])(inputs))
    model.layers[-1].alpha.assign([0.2, 0.1, -0.4])
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="mode"):
        MixedOp(_candidates(), ["a", "b", "c"], mode="enas")
    with pytest.raises(ValueError, match="labels"):
        MixedOp(_candidates(), ["a", "b"])


class _CountingDense(keras.layers.Dense):
    """A Dense layer that counts its calls (graph tracing included)."""

    calls = 0

    def call(self, inputs):
        type(self).calls += 1
        return super().call(inputs)


@pytest.mark.parametrize("mode", ["darts", "single_path"])
def test_symbolic_calls_use_the_candidates_output_shapes_not_a_trace(mode):
    # A supernet's build and fit's symbolic build call every mixed layer on
    # symbolic inputs: its output spec comes from the candidates' shapes,
    # without tracing their calls (41 % of a cell supernet's build).
    _CountingDense.calls = 0
    layer = MixedOp([_CountingDense(4), _CountingDense(4)], ["a", "b"], mode=mode)
    output = layer(keras.Input((3,)))
    assert tuple(output.shape) == (None, 4)
    assert _CountingDense.calls == 0
    # Shapes are still checked there.
    with pytest.raises(ValueError, match="outputs of one shape"):
        MixedOp([_CountingDense(4), _CountingDense(5)], ["a", "b"], mode=mode)(
            keras.Input((3,)))
    assert _CountingDense.calls == 0
