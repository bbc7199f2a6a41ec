import keras
import pytest

from tfnas import estimation


def _model():
    return keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(16, 3, padding="same", use_bias=False),
        keras.layers.SeparableConv2D(32, 5, padding="same", use_bias=False),
        keras.layers.Flatten(),
        keras.layers.Dense(10, use_bias=False),
    ])


def test_params_and_flops_match_hand_counts():
    model = _model()
    conv, depthwise, pointwise, dense = 9 * 16, 25 * 16, 16 * 32, 8 * 8 * 32 * 10
    assert estimation.count_params(model) == conv + depthwise + pointwise + dense
    # One multiply-accumulate (2 FLOPs) per weight per output position.
    macs = 64 * conv + 64 * depthwise + 64 * pointwise + dense
    assert estimation.count_flops(model) == 2 * macs


def test_latency_is_a_positive_median_in_milliseconds():
    model = _model()
    latency = estimation.measure_latency(model, batch_size=4, warmup=2, repeats=5)
    assert 0.0 < latency < 1000.0
    with pytest.raises(ValueError, match="positive"):
        estimation.measure_latency(model, repeats=0)


def test_models_without_fixed_input_shape_have_no_flops_or_latency():
    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(inputs))
    assert estimation.count_flops(model) is None
    assert estimation.measure_latency(model) is None
