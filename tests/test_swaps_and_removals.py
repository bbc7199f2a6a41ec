"""Weight inheritance's starts for a convolution swapped for a pooling (and
back) and for a removed layer (tfnas.op_swap, tfnas.layer_removal)."""

import keras
import keras_tuner as kt
import numpy as np
import pytest

from tfnas import inheritance, layer_removal
from tfnas.spaces import ChainSpace

OPERATIONS = ("conv3x3", "conv5x5", "sepconv3x3", "maxpool3x3", "avgpool3x3")
PARENT = {"num_layers": 2,
          "layer_0/stride": 1, "layer_0/op": "conv3x3", "layer_0/filters": 8,
          "layer_0/activation": "relu",
          "layer_1/stride": 1, "layer_1/op": "conv3x3", "layer_1/filters": 16,
          "layer_1/activation": "relu", "layer_1/skip/0": False}
SPACE = ChainSpace((8, 8, 1), 10, max_layers=3, filters=(8, 16), operations=OPERATIONS)


def build(values):
    hp = kt.HyperParameters()
    hp.values.update(values)
    keras.backend.clear_session()
    return SPACE.build(hp)


def layer_values(op):
    """PARENT with layer 1's operation `op` (and its activation only for a convolution)."""
    values = {**PARENT, "layer_1/op": op}
    if "pool" in op:
        del values["layer_1/activation"]
    return values


def random_parent(values, seed=0):
    """A parent whose weights, batch-normalization statistics included, are
    all random (as trained ones are: none of Keras's initial ones and zeros)."""
    model = build(values)
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        value = rng.normal(size=variable.shape).astype("float32")
        if "variance" in variable.path or "gamma" in variable.path:
            value = np.abs(value) + 0.5
        variable.assign(value)
    donor = inheritance.Donor("0", inheritance.weights_by_key(model), 1,
                              convolutions=inheritance.conv_configs(model),
                              upstream=layer_removal.upstream_keys(model))
    return model, donor


def pre_activation(conv_bn, x):
    return np.asarray(conv_bn.norm(conv_bn.conv(x), training=False))


def logits(dense, features):
    """The head's pre-softmax outputs: its softmax saturates on random
    weights, which would hide a wrong fold."""
    return np.asarray(features) @ np.asarray(dense.kernel) + np.asarray(dense.bias)


def features(seed=1):
    """A batch of layer 0's (non-negative) outputs: 2 images, 8x8, 8 channels."""
    return np.abs(np.random.default_rng(seed).normal(size=(2, 8, 8, 8))).astype("float32")


@pytest.mark.parametrize("parent_op", ["conv3x3", "conv5x5", "sepconv3x3"])
@pytest.mark.parametrize("child_op", ["maxpool3x3", "avgpool3x3"])
def test_a_pooling_for_a_convolution_computes_it_on_constant_inputs(parent_op, child_op):
    """The pooling's projection starts as the convolution's response to a
    locally constant input: on such an input, away from the borders, the
    child's layer computes the parent's (before its activation)."""
    parent, donor = random_parent(layer_values(parent_op))
    child = build(layer_values(child_op))
    report = inheritance.inherit(child, donor)
    assert report["fresh_layers"] == 0 and report["pruned_layers"] == 1

    constant = np.broadcast_to(features()[:, :1, :1, :], (2, 8, 8, 8))
    expected = pre_activation(parent.get_layer(f"layer_1.{parent_op}"), constant)
    got = np.asarray(child.get_layer(f"layer_1.{child_op}")(constant, training=False))
    np.testing.assert_allclose(got[:, 2:-2, 2:-2], expected[:, 2:-2, 2:-2], rtol=1e-4,
                               atol=1e-4)


@pytest.mark.parametrize("child_op", ["conv3x3", "conv5x5", "sepconv3x3"])
def test_a_convolution_for_an_average_pooling_computes_it_inside_the_borders(child_op):
    """An average pooling followed by its projection is a convolution with
    the projection spread evenly over the window: the child's convolution
    computes exactly the parent's layer on any input, away from the borders
    (before its activation)."""
    parent, donor = random_parent(layer_values("avgpool3x3"))
    child = build(layer_values(child_op))
    report = inheritance.inherit(child, donor)
    assert report["fresh_layers"] == 0 and report["pruned_layers"] == 1

    x = features()
    expected = np.asarray(parent.get_layer("layer_1.avgpool3x3")(x, training=False))
    got = pre_activation(child.get_layer(f"layer_1.{child_op}"), x)
    np.testing.assert_allclose(got[:, 2:-2, 2:-2], expected[:, 2:-2, 2:-2], rtol=1e-4,
                               atol=1e-4)


def test_a_narrower_pooling_for_a_convolution_keeps_the_heads_main_channels():
    parent, donor = random_parent(layer_values("conv3x3"))  # 16 filters
    child = build({**layer_values("maxpool3x3"), "layer_1/filters": 8})
    report = inheritance.inherit(child, donor)
    assert report["fresh_layers"] == 0 and report["pruned_layers"] == 2  # it and the head
    head = donor.weights["head.dense"][0]
    kept = np.sort(np.argsort(-np.abs(head).sum(axis=1), kind="stable")[:8])
    np.testing.assert_array_equal(np.asarray(child.get_layer("head.dense").kernel), head[kept])
    response = donor.weights["layer_1.conv3x3"][0].sum(axis=(0, 1))
    np.testing.assert_allclose(
        np.asarray(child.get_layer("layer_1.maxpool3x3").weights[0])[0, 0], response[:, kept],
        rtol=1e-6)


@pytest.mark.parametrize("removed_op", ["maxpool3x3", "avgpool3x3", "conv3x3"])
def test_a_removed_layer_is_folded_into_the_head(removed_op):
    """A shallower child's head reads layer 0, which the parent's removed
    layer 1 read: the head starts as layer 1's linear part followed by the
    parent's head. On a constant input a pooling is exact: the child's head
    gives the parent's outputs for any features; for a convolution, the
    parent's head on the convolution's pre-activation."""
    parent, donor = random_parent(layer_values(removed_op))
    child = build({key: value for key, value in PARENT.items()
                   if not key.startswith("layer_1")} | {"num_layers": 1})
    report = inheritance.inherit(child, donor)
    assert report["fresh_layers"] == 0 and report["pruned_layers"] == 1

    x = features()
    constant = np.broadcast_to(x[:, :1, :1, :], x.shape)
    removed = parent.get_layer(f"layer_1.{removed_op}")
    after = (pre_activation(removed, constant) if removed_op == "conv3x3"
             else np.asarray(removed(constant, training=False)))
    expected = logits(parent.get_layer("head.dense"), after[:, 4, 4, :])
    got = logits(child.get_layer("head.dense"), x[:, 0, 0, :])
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_two_removed_layers_fold_in_turn():
    values = {**layer_values("avgpool3x3"), "num_layers": 3, "layer_2/stride": 1,
              "layer_2/op": "maxpool3x3", "layer_2/filters": 8, "layer_2/skip/0": False,
              "layer_2/skip/1": False}
    parent, donor = random_parent(values)
    child = build({key: value for key, value in PARENT.items()
                   if not key.startswith("layer_1")} | {"num_layers": 1})
    assert inheritance.inherit(child, donor)["pruned_layers"] == 1
    x = features()
    constant = np.broadcast_to(x[:, :1, :1, :], x.shape)
    after = parent.get_layer("layer_2.maxpool3x3")(
        parent.get_layer("layer_1.avgpool3x3")(constant, training=False), training=False)
    expected = logits(parent.get_layer("head.dense"), np.asarray(after)[:, 4, 4, :])
    got = logits(child.get_layer("head.dense"), x[:, 0, 0, :])
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_a_removed_layer_after_a_skip_is_folded_into_the_head():
    """The head of a child whose last layer adds a skip reads that sum, as
    the parent's removed layer did: the removed layer still folds in."""
    skip = {**PARENT, "layer_1/skip/0": True}
    values = {**skip, "num_layers": 3, "layer_2/stride": 1, "layer_2/op": "conv3x3",
              "layer_2/filters": 8, "layer_2/activation": "relu",
              "layer_2/skip/0": False, "layer_2/skip/1": False}
    parent, donor = random_parent(values)
    assert donor.upstream["layer_2.conv3x3"] == "layer_1.conv3x3+layer_1_skip_0.shortcut"
    child = build(skip)
    report = inheritance.inherit(child, donor)
    assert report["fresh_layers"] == 0 and report["pruned_layers"] == 1

    z = np.abs(np.random.default_rng(2).normal(size=(2, 8, 8, 16))).astype("float32")
    constant = np.broadcast_to(z[:, :1, :1, :], z.shape)
    after = pre_activation(parent.get_layer("layer_2.conv3x3"), constant)
    expected = logits(parent.get_layer("head.dense"), after[:, 4, 4, :])
    got = logits(child.get_layer("head.dense"), z[:, 0, 0, :])
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_upstream_keys_name_the_layer_each_layer_reads():
    model = build(PARENT)
    assert layer_removal.upstream_keys(model) == {
        "layer_0.conv3x3": None, "layer_1.conv3x3": "layer_0.conv3x3",
        "head.dense": "layer_1.conv3x3"}


def test_a_child_with_an_unchanged_input_still_inherits_its_head_as_it_is():
    parent, donor = random_parent(PARENT)
    child = build({**PARENT, "layer_1/op": "conv5x5"})
    inheritance.inherit(child, donor)
    for got, expected in zip(child.get_layer("head.dense").weights, donor.weights["head.dense"]):
        np.testing.assert_array_equal(np.asarray(got), expected)
