"""Starts for a child whose layer swapped a convolution for a pooling, or
a pooling for a convolution (the same role, another kind of operation).

A pooling here is a max or average pooling followed by a 1x1 `ConvBN`
projection without activation (`elastic.pool`: the chain space's
`maxpool3x3`, `avgpool3x3`). Neither swap can preserve the parent's
function; both start from the parent's layer by one principle, the
response to a locally constant input (on which a max and an average
pooling both return that constant):

- convolution -> pooling: the projection starts as the parent kernel's
  constant-input response, the sum of its taps (for a separable
  convolution, the depthwise taps' sums times the pointwise kernel), and
  the parent's batch normalization. The child then computes the parent's
  convolution wherever the input is constant over the windows; an average
  pooling followed by that projection is the closest convolution with equal
  taps to the parent's (average pooling is a convolution with constant 1/k
  weights per channel), a max pooling its non-linear counterpart. The
  parent's activation is lost (the projection has none): the layers after
  it see its pre-activations;
- pooling -> convolution: the convolution starts as the average pooling
  composed with the parent's projection, i.e. the projection divided evenly
  over the taps of the pooling window (the kernel's centre, zero outside),
  with the parent's batch normalization: exactly the parent's layer for an
  average pooling away from the borders (before the child's activation);
  for a max pooling, its average, the linear stand-in that has the same
  constant-input response. A separable convolution starts with the even
  depthwise window and the projection as its pointwise kernel.

Both are approximate starts ("pruned" in the inheritance metrics), better
than Keras's initialisers after the same training in
`benchmarks/results/inheritance_diagnosis_swaps.md`.
"""

import keras
import numpy as np

from tfnas import net2net

#: The `kind` of a pooling's config (`pooling_config`), by pooling class.
_POOL_KINDS = {keras.layers.MaxPooling1D: "max-pool", keras.layers.MaxPooling2D: "max-pool",
               keras.layers.AveragePooling1D: "avg-pool",
               keras.layers.AveragePooling2D: "avg-pool"}


def pooling_config(layer):
    """The config of a pooling followed by a 1x1 projection (an `ops.Pool`
    with its projection, or a `keras.Sequential` of an `ops.Pool` and a 1x1
    `ConvBN` without activation), in the keys of a `ConvBN`'s
    (`tfnas.inheritance.conv_configs`); None for other layers."""
    from tfnas.spaces import ops  # the spaces' layers; imported late (no cycle)

    pool, project = _pool_and_projection(layer)
    if pool is None or not isinstance(project, ops.ConvBN) or (
            project.kernel_size != 1 or project.strides != 1 or project.kind != "conv"
            or project.preactivation or project.activation is not None):
        return None
    kind = _POOL_KINDS.get(type(pool.pool))
    if kind is None:
        return None
    return {"kind": kind, "filters": project.filters, "strides": pool.strides,
            "dilation_rate": 1, "preactivation": False, "activation": None,
            "kernel_size": pool.pool_size}


def _pool_and_projection(layer):
    from tfnas.spaces import ops  # the spaces' layers; imported late (no cycle)

    if isinstance(layer, ops.Pool):
        return layer, layer.project
    if (isinstance(layer, keras.Sequential) and len(layer.layers) == 2
            and isinstance(layer.layers[0], ops.Pool) and layer.layers[0].project is None):
        return layer.layers[0], layer.layers[1]
    return None, None


def swapped(layer, config, donor, in_map, rng, importance):
    """The start of a child's `layer` (its `config`: a `ConvBN`'s or a
    pooling's) whose parent layer of the same role is of the other family.

    Args:
        layer: The child's layer, built.
        config: Its config (`tfnas.inheritance.conv_configs`).
        donor: The parent's `tfnas.inheritance.Donor`.
        in_map: The `net2net.ChannelMap` of the layer's input, or None.
        rng: A `numpy.random.Generator` (copies of wider outputs).
        importance: The importance of the parent's output channels, for a
            narrower child (`net2net.outgoing_importance`).

    Returns:
        `(values, output channel map)`, or None when no parent layer of the
        same role and stride is of the other family.
    """
    from tfnas.inheritance import role  # no cycle at import

    child_pools = config["kind"].endswith("-pool")
    for key, parent in donor.convolutions.items():
        if (role(key) != role(layer.name) or parent["strides"] != config["strides"]
                or parent["kind"].endswith("-pool") == child_pools):
            continue
        if child_pools:
            values = projection_from_convolution(parent, donor.weights[key])
        else:
            values = _convolution_from_pooling(layer, config, parent, donor.weights[key])
        if values is None:
            continue
        transferred = net2net.transfer(layer, values, in_map, rng, importance=importance)
        if transferred is not None:
            return transferred
    return None


def projection_from_convolution(parent, values):
    """A 1x1 projection's values (and the batch normalization's) from a
    convolution's: its kernel's constant-input response."""
    if parent["preactivation"] or parent["kind"] not in ("conv", "separable"):
        return None
    values = [np.asarray(v, "float32") for v in values]
    if parent["kind"] == "conv":
        kernel, norm = values[0], values[1:]
        spatial = tuple(range(kernel.ndim - 2))
        response = kernel.sum(axis=spatial, keepdims=True)
    else:
        depthwise, pointwise, norm = values[0], values[1], values[2:]
        spatial = tuple(range(depthwise.ndim - 2))
        taps = depthwise.sum(axis=spatial)[..., 0]  # (in,)
        response = pointwise * taps[:, None]
    return [response] + norm if len(norm) == 4 else None


def _convolution_from_pooling(layer, config, parent, values):
    """A convolution's values (and the batch normalization's) from a
    pooling's projection: the projection spread evenly over the window."""
    if (config["preactivation"] or config["dilation_rate"] != 1
            or config["kind"] not in ("conv", "separable")):
        return None
    values = [np.asarray(v, "float32") for v in values]
    projection, norm = values[0], values[1:]  # projection: (1, [1,] in, out)
    if len(norm) != 4:
        return None
    rank = projection.ndim - 2
    size = config["kernel_size"]
    window = np.zeros((size,) * rank, "float32")
    reach = min(parent["kernel_size"], size)
    start = (size - reach) // 2
    window[(slice(start, start + reach),) * rank] = 1.0
    window /= window.sum()
    if config["kind"] == "conv":
        kernel = window.reshape(window.shape + (1, 1)) * projection.reshape(
            projection.shape[-2:])
        return [kernel] + norm
    channels = projection.shape[-2]
    depthwise = np.broadcast_to(window.reshape(window.shape + (1, 1)),
                                window.shape + (channels, 1)).copy()
    return [depthwise, projection] + norm
