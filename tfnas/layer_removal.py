"""Starts for a child that lost a layer (a shallower child): the removed
layer is folded into the layer that now reads its input.

Net2Net and network morphism (Chen et al. 2016; Wei et al. 2016) insert a
layer that computes the identity; removal is the reverse: the child's
layers keep their weights where shapes allow, and the layer that read the
removed layer's output, which now reads the removed layer's input, takes
the removed layer in with it. Where that consumer is a dense layer after a
global average pooling (the spaces' head) and the removed layer a
convolution with batch normalization, or a pooling with its 1x1 projection
(`tfnas.op_swap`), the removed layer commutes with the global average
(except at the borders and for its activation, which is dropped) and its
linear part folds into the head: with the convolution's constant-input
response `M` (the sum of its taps), its normalization's scale `s = gamma /
sqrt(variance + epsilon)` and offset `c = beta - mean * s`, the child's
head starts with kernel `(M * s) @ W` and bias `c @ W + b`. For a removed
pooling layer (no activation) with an average pooling this is its parent's
function away from the borders; for a removed convolution it is its linear
part (the parent's ReLU between is not kept).

To know which layer read what, the parent's graph is kept with its weights
(`upstream_keys`: each layer's nearest upstream layer with weights, or the
inputs of the skip's sum it reads, so that a child whose last layer adds a
skip folds too). A removed layer that added a skip itself is not folded.
"""

import keras
import numpy as np

from tfnas import net2net, op_swap

#: Layers without weights that the head may read its input through.
_GLOBAL_POOLINGS = (keras.layers.GlobalAveragePooling1D, keras.layers.GlobalAveragePooling2D)
_PASSING = _GLOBAL_POOLINGS + (keras.layers.Dropout, keras.layers.Identity)


def upstream_keys(model):
    """`{layer key: the key of the nearest layer with weights it reads, or
    None}` for `model`'s layers with weights (through layers without
    weights that have one input). A layer that reads a sum (a skip's `Add`)
    reads the keys of the sum's inputs joined by "+"."""
    return {layer.name: _upstream(layer)[0] for layer in model.layers if layer.weights}


def _upstream(layer):
    """`(the nearest upstream layer's name with weights, the "+"-joined
    names of an `Add`'s inputs, or None; the layers without weights on the
    way)`."""
    between = []
    inbound = net2net.inbound_layers(layer)
    while len(inbound) == 1:
        source = inbound[0]
        if source.weights:
            return source.name, between
        if isinstance(source, keras.layers.InputLayer):
            return None, between
        between.append(source)
        inbound = net2net.inbound_layers(source)
    if between and isinstance(between[-1], keras.layers.Add):
        keys = [source.name if source.weights else _upstream(source)[0] for source in inbound]
        if all(keys):
            return "+".join(sorted(keys)), between
    return None, between


def _present(key, model_layers):
    """Whether the layers of an upstream key are all in the child."""
    return all(name in model_layers for name in key.split("+"))


def folded(layer, donor, in_map, model_layers):
    """Values for a child's `layer` that reads another layer than its
    parent's layer of the same key did, because the layer its parent read
    is removed: the removed layer folded into it (see the module's
    docstring). None when the input did not change, or cannot be folded.

    Args:
        layer: The child's layer, built.
        donor: The parent's `tfnas.inheritance.Donor`.
        in_map: The `net2net.ChannelMap` of the layer's input, or None.
        model_layers: The names of the child model's layers.
    """
    parent_upstream = donor.upstream.get(layer.name)
    upstream, between = _upstream(layer)
    if in_map is not None or parent_upstream is None or parent_upstream == upstream:
        return None  # the same input (or no graph of the parent's)
    removed = []  # the parent's layers between, from the head back
    while parent_upstream is not None and not _present(parent_upstream, model_layers):
        removed.append(parent_upstream)
        parent_upstream = donor.upstream.get(parent_upstream)
    if not removed or parent_upstream != upstream:
        return None  # not a run of removed layers in between
    if not isinstance(layer, keras.layers.Dense) or not any(
            isinstance(b, _GLOBAL_POOLINGS) for b in between) or not all(
            isinstance(b, _PASSING) for b in between[:-1]) or not isinstance(
            between[-1], _PASSING + (keras.layers.Add,)):
        return None
    matrix, offset = None, None
    for key in reversed(removed):  # from the input on
        part = _linear_part(donor.convolutions.get(key), donor.weights.get(key))
        if part is None or (matrix is not None and matrix.shape[1] != part[0].shape[0]):
            return None
        matrix, offset = part if matrix is None else (
            matrix @ part[0], offset @ part[0] + part[1])
    head = [np.asarray(v, "float32") for v in donor.weights[layer.name]]
    if len(head) != len(layer.weights):
        return None
    if matrix.shape[1] != head[0].shape[0]:
        return None
    values = [matrix @ head[0]] + ([offset @ head[0] + head[1]] if len(head) > 1 else [])
    if any(tuple(v.shape) != tuple(w.shape) for v, w in zip(values, layer.weights)):
        return None
    return values


def _linear_part(config, values):
    """`(matrix (in, out), offset (out,))`: a removed layer's response to a
    constant input, normalization included; None for other layers."""
    if config is None:
        return None
    if config["kind"].endswith("-pool"):
        values = [np.asarray(v, "float32") for v in values]
    else:
        values = op_swap.projection_from_convolution(config, values)
    if values is None or len(values) != 5:
        return None
    from tfnas.spaces.ops import BATCH_NORM_EPSILON  # imported late (no cycle)

    response, gamma, beta, mean, variance = values
    scale = gamma / np.sqrt(variance + BATCH_NORM_EPSILON)
    matrix = response.reshape(response.shape[-2:]) * scale
    return matrix, beta - mean * scale
