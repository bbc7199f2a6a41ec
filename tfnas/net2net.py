"""Net2WiderNet (Chen et al. 2016): a child's wider layer computes its
parent's function.

When a child's layer has more output channels than its parent's (filters
16 -> 32), its first channels copy the parent's and each extra channel
replicates a randomly chosen parent channel (kernel columns, batch-norm
scale, offset and statistics alike). The layers that consume those channels
then split the parent's incoming weights of a replicated channel among its
copies, so the sum they compute is unchanged. Net2Net divides by the
number of copies; here the split is a random convex combination (shares
that sum to one), which is just as exact and breaks the symmetry between
copies, which would otherwise get identical gradients forever.

The same channel maps carry a narrowing (filters 32 -> 16, not exact): the
child keeps the parent channels of largest importance (`narrower`, by the
L1 norm of their outgoing weights, `outgoing_importance`), and the
consumers keep those channels' incoming weights.

A layer is seen as a chain of primitives with weights (convolutions,
separable and depthwise convolutions, dense layers, batch normalizations):
the spaces' `ConvBN`, `Pool` (its 1x1 projection), `Shortcut` (its
projection) and `keras.Sequential` of them. A channel map travels through
the model's graph: primitives that act channel by channel (batch
normalization, activations, poolings, depthwise kernels) and layers without
weights of those kinds keep it; a summing primitive (convolution, dense)
consumes it. Where it cannot travel (an `Add` of differently mapped inputs,
a `Flatten`, a layer of another kind), the consumer cannot preserve the
function and starts fresh unless its shapes match the parent's.
"""

import dataclasses

import keras
import numpy as np

from tfnas import compat

_CONVOLUTIONS = (keras.layers.Conv1D, keras.layers.Conv2D)
_SEPARABLE = (keras.layers.SeparableConv1D, keras.layers.SeparableConv2D)
_DEPTHWISE = (keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D)
#: Layers without weights that act on each channel alone: a channel map
#: passes through them.
_CHANNELWISE = (
    keras.layers.InputLayer, keras.layers.Activation, keras.layers.ReLU,
    keras.layers.Dropout, keras.layers.Identity,
    keras.layers.MaxPooling1D, keras.layers.MaxPooling2D,
    keras.layers.AveragePooling1D, keras.layers.AveragePooling2D,
    keras.layers.GlobalAveragePooling1D, keras.layers.GlobalAveragePooling2D,
    keras.layers.GlobalMaxPooling1D, keras.layers.GlobalMaxPooling2D,
)
#: How much the shares of a replicated channel's copies vary around 1/copies.
SPLIT_NOISE = 0.2


@dataclasses.dataclass
class ChannelMap:
    """The child's channels as copies of the parent's, or a subset of them.

    Attributes:
        source: For each child channel, the parent channel it copies.
        share: For each child channel, its share of the parent channel's
            outgoing weights (the shares of one parent channel's copies sum
            to one).
        parent_channels: The parent's number of channels.
        exact: Whether the child's channels carry all of the parent's (a
            widening), so that consumers can compute the parent's function;
            False for a narrowing, which drops the parent's least important
            channels.
    """

    source: np.ndarray
    share: np.ndarray
    parent_channels: int
    exact: bool = True


def wider(parent_channels, child_channels, rng):
    """A `ChannelMap` from `parent_channels` to `child_channels` >= them:
    the first ones kept, the others random copies (Net2WiderNet)."""
    extra = rng.integers(0, parent_channels, child_channels - parent_channels)
    source = np.concatenate([np.arange(parent_channels), extra])
    counts = np.bincount(source, minlength=parent_channels)
    share = (1.0 + SPLIT_NOISE * rng.uniform(-1.0, 1.0, child_channels)) / counts[source]
    share /= np.bincount(source, weights=share, minlength=parent_channels)[source]
    return ChannelMap(source, share.astype("float32"), parent_channels)


def narrower(importance, child_channels):
    """A `ChannelMap` that keeps the `child_channels` parent channels of
    largest `importance` (in the parent's order): the pruning of Li et al.
    2017 ("Pruning filters for efficient ConvNets"), with the importance of
    a channel measured by the L1 norm of the weights that consume it."""
    importance = np.asarray(importance, dtype="float64")
    # A stable sort: ties keep the earlier channel, so the choice is deterministic.
    kept = np.sort(np.argsort(-importance, kind="stable")[:child_channels])
    return ChannelMap(kept, np.ones(child_channels, "float32"), len(importance), exact=False)


def exact(channel_map):
    """Whether `channel_map` (or None: the parent's channels) preserves the
    parent's function."""
    return channel_map is None or channel_map.exact


def primitives(layer):
    """The primitives with weights of `layer`, in the order they compute,
    or None when `layer` is not a chain of them (or has no weights)."""
    from tfnas.spaces import ops  # the spaces' layers; imported late (no cycle)

    if isinstance(layer, _CONVOLUTIONS + _SEPARABLE + _DEPTHWISE + (
            keras.layers.Dense, keras.layers.BatchNormalization)):
        found = [layer]
    elif isinstance(layer, ops.ConvBN):
        if layer.preactivation:
            return None
        found = [layer.conv, layer.norm]
    elif isinstance(layer, (ops.Pool, ops.Shortcut)):
        found = primitives(layer.project) if layer.project is not None else []
    elif isinstance(layer, keras.Sequential):
        found = []
        for inner in layer.layers:
            inner_primitives = primitives(inner)
            if inner_primitives is None and inner.weights:
                return None
            found += inner_primitives or []
    else:
        return None
    if found is None or [id(w) for p in found for w in p.weights] != [
            id(w) for w in layer.weights]:
        return None
    return found


def inbound_layers(layer):
    """The layers whose outputs `layer` takes in its model (functional models)."""
    return compat.keras_graph_neighbours(layer)[0]  # Keras keeps the graph private


def outbound_layers(layer):
    """The layers that take `layer`'s output in its model (functional models)."""
    return compat.keras_graph_neighbours(layer)[1]


def outgoing_importance(layer, parent_weights, model_layers):
    """The importance of each of the parent's output channels of `layer`:
    the L1 norm of the parent's weights that consume the channel, summed
    over `layer`'s consumers in the child's graph (found through layers
    without weights, which keep the channels: activations, poolings, adds);
    None when a consumer has no parent weights of that shape (e.g. after a
    `Flatten`), and the layer's own incoming weights must judge instead.

    Args:
        layer: The child's layer, in its built model.
        parent_weights: The parent's weight values by layer key (`Donor.weights`).
        model_layers: The names of the model's layers (a space may call
            layers that the model does not use, e.g. a skip not chosen).
    """
    total, frontier, seen = None, outbound_layers(layer), set()
    while frontier:
        consumer = frontier.pop()
        if consumer.name in seen or consumer.name not in model_layers:
            continue
        seen.add(consumer.name)
        if not consumer.weights:
            if isinstance(consumer, (keras.layers.Flatten, keras.layers.Reshape)):
                return None
            frontier += outbound_layers(consumer)
            continue
        values = parent_weights.get(consumer.name)
        if not values or np.ndim(values[0]) < 2:
            return None
        kernel = np.abs(np.asarray(values[0], dtype="float64"))  # (..., in, out)
        norms = np.moveaxis(kernel, -2, 0).reshape(kernel.shape[-2], -1).sum(axis=1)
        if total is not None and len(total) != len(norms):
            return None
        total = norms if total is None else total + norms
    return total


def propagated(layer, maps):
    """The channel map of a layer without weights: its input's, when it acts
    channel by channel (or adds inputs mapped alike); else None."""
    inputs = [maps.get(inbound.name) for inbound in inbound_layers(layer)]
    if not inputs:
        return None
    first = inputs[0]
    if isinstance(layer, _CHANNELWISE) and len(inputs) == 1:
        return first
    if isinstance(layer, (keras.layers.Add, keras.layers.Average, keras.layers.Maximum)) and all(
            same_map(first, other) for other in inputs[1:]):
        return first
    return None


def same_map(first, second):
    if first is None or second is None:
        return first is second
    return np.array_equal(first.source, second.source) and np.array_equal(
        first.share, second.share)


def input_map(layer, maps):
    """The channel map of `layer`'s input (None: the parent's channels as they are)."""
    inputs = inbound_layers(layer)
    return maps.get(inputs[0].name) if len(inputs) == 1 else None


def transfer(layer, parent_values, in_map, rng, pad_kernel=False, crop_kernel=False,
             importance=None):
    """Values for `layer`'s weights from its parent's layer's `parent_values`
    (the parent's layer of the same structure, maybe narrower or with a
    smaller kernel), so that it computes the parent's function.

    Args:
        layer: The child's layer, built.
        parent_values: The parent's layer's weight values, in `layer.weights` order.
        in_map: The `ChannelMap` of the layer's input, or None.
        rng: A `numpy.random.Generator` (the copies of wider outputs).
        pad_kernel: Whether a smaller parent kernel may be zero-padded (only
            where "same" padding makes that exact: see `tfnas.inheritance`).
        crop_kernel: Whether a larger parent kernel may be cropped to its
            centre (not exact: see `tfnas.inheritance`).
        importance: For a layer with fewer output channels than its
            parent's, the importance of each of the parent's output channels
            (`narrower`); without it, the L1 norm of each channel's incoming
            weights.

    Returns:
        `(values, out_map)`, the values in `layer.weights` order and the
        channel map of the layer's output; None when they cannot be made.
    """
    found = primitives(layer)
    if found is None or len(parent_values) != len(layer.weights):
        return None
    # `importance` ranks the layer's output channels: only the last primitive
    # that makes channels (not a normalization or depthwise) outputs them.
    last = max((index for index, primitive in enumerate(found) if isinstance(
        primitive, _CONVOLUTIONS + _SEPARABLE + (keras.layers.Dense,))), default=None)
    values, current, offset = [], in_map, 0
    for index, primitive in enumerate(found):
        count = len(primitive.weights)
        try:
            result = _transfer_primitive(primitive, parent_values[offset:offset + count],
                                         current, rng, (pad_kernel, crop_kernel),
                                         importance if index == last else None)
        except _Mismatch:
            return None
        if result is None:
            return None
        new_values, current = result
        values += new_values
        offset += count
    if any(tuple(v.shape) != tuple(w.shape) for v, w in zip(values, layer.weights)):
        return None
    return values, current


def identity_values(layer):
    """Parent values for an inserted `layer` that would make it the identity
    on its input's channels, or None (see `transfer` for widening them)."""
    from tfnas.inheritance import identity_activation  # no cycle at import

    found = primitives(layer)
    if found is None or not found:
        return None
    values = []
    channels = None
    for primitive in found:
        if isinstance(primitive, keras.layers.BatchNormalization):
            if channels is None:
                return None
            values += _identity_norm(primitive, channels)
            continue
        if values or getattr(primitive, "strides", (1,)) not in ((1,), (1, 1), 1) or (
                not identity_activation(getattr(primitive, "activation", None))):
            return None  # one summing primitive, stride 1, no non-linearity of its own
        kernel = primitive.depthwise_kernel if isinstance(primitive, _SEPARABLE) else (
            primitive.kernel)
        channels = kernel.shape[-2] if not isinstance(primitive, keras.layers.Dense) else (
            kernel.shape[0])
        if isinstance(primitive, keras.layers.Dense):
            values.append(np.eye(channels, dtype="float32"))
        elif isinstance(primitive, _SEPARABLE):
            values.append(dirac(kernel.shape, depthwise=True))
            values.append(np.eye(channels, dtype="float32").reshape(
                (1,) * (len(kernel.shape) - 2) + (channels, channels)))
        elif isinstance(primitive, _DEPTHWISE):
            values.append(dirac(kernel.shape, depthwise=True))
        else:
            values.append(dirac(tuple(kernel.shape[:-1]) + (channels,), depthwise=False))
        if getattr(primitive, "use_bias", False):
            values.append(np.zeros((channels,), "float32"))
    return values


def dirac(shape, depthwise):
    """A 1-D or 2-D kernel that copies each input channel to itself: 1 at
    the centre of its spatial dimensions."""
    kernel = np.zeros(shape, dtype="float32")
    centre = tuple(size // 2 for size in shape[:-2])
    for channel in range(shape[-2]):
        kernel[centre + (channel, 0 if depthwise else channel)] = 1.0
    return kernel


def _identity_norm(norm, channels):
    return [np.ones(channels, "float32"), np.zeros(channels, "float32"),
            np.zeros(channels, "float32"), np.full(channels, 1.0 - norm.epsilon, "float32")]


def _transfer_primitive(primitive, values, in_map, rng, resize, importance):
    """`(values, out_map)` for one primitive, or None."""
    values = [np.asarray(v, dtype="float32") for v in values]
    shapes = [tuple(w.shape) for w in primitive.weights]
    if isinstance(primitive, keras.layers.BatchNormalization):
        return [_select(v, in_map, axis=-1) for v in values], in_map
    if isinstance(primitive, _DEPTHWISE):
        kernel = _spatial(_select(values[0], in_map, axis=-2), shapes[0], resize)
        rest = [_select(v, in_map, axis=-1) for v in values[1:]]  # a bias per channel
        return (None if kernel is None else ([kernel] + rest, in_map))
    if isinstance(primitive, _SEPARABLE):
        depthwise = _spatial(_select(values[0], in_map, axis=-2), shapes[0], resize)
        if depthwise is None:
            return None
        pointwise, out_map = _summing(values[1], shapes[1], in_map, rng, importance)
        return [depthwise, pointwise] + [_select(v, out_map, axis=-1)
                                         for v in values[2:]], out_map
    if isinstance(primitive, _CONVOLUTIONS + (keras.layers.Dense,)):
        kernel = values[0]
        if isinstance(primitive, _CONVOLUTIONS):
            kernel = _spatial(kernel, shapes[0][:-2] + kernel.shape[-2:], resize)
            if kernel is None:
                return None
        kernel, out_map = _summing(kernel, shapes[0], in_map, rng, importance)
        return [kernel] + [_select(v, out_map, axis=-1) for v in values[1:]], out_map
    return None


def _summing(kernel, shape, in_map, rng, importance=None):
    """A kernel `(..., in, out)` whose inputs follow `in_map` and whose
    outputs widen (or narrow) to `shape[-1]`; and the outputs' map."""
    if in_map is not None:
        kernel = _select(kernel, in_map, axis=-2) * in_map.share[:, None]
    out_map = None
    parent_out, child_out = kernel.shape[-1], shape[-1]
    if kernel.shape[-2] != shape[-2]:
        raise _Mismatch
    if child_out > parent_out:
        out_map = wider(parent_out, child_out, rng)
    elif child_out < parent_out:
        if importance is None or len(importance) != parent_out:
            importance = np.abs(kernel).reshape(-1, parent_out).sum(axis=0)
        out_map = narrower(importance, child_out)
    if out_map is not None:
        kernel = _select(kernel, out_map, axis=-1)
    return kernel, out_map


class _Mismatch(Exception):
    """The parent's values do not fit the child's layer."""


def _select(value, channel_map, axis):
    """`value`'s channels along `axis` in the child's order."""
    if channel_map is None:
        return value
    if value.ndim == 0 or value.shape[axis] != channel_map.parent_channels:
        raise _Mismatch  # another layer's shape: `wider` copies every parent channel
    return np.take(value, channel_map.source, axis=axis)


def _spatial(kernel, shape, resize):
    """`kernel` with the spatial size of `shape`: itself, zero-padded around
    its centre (`resize[0]`, pad) or cropped to its centre (`resize[1]`,
    crop); None when impossible."""
    pad_kernel, crop_kernel = resize
    if kernel.ndim != len(shape):
        return None
    if kernel.shape[:-2] == tuple(shape[:-2]):
        return kernel
    padding = [target - size for size, target in zip(kernel.shape[:-2], shape[:-2])]
    if any(p % 2 for p in padding):
        return None
    if pad_kernel and all(p >= 0 for p in padding):
        return np.pad(kernel, [(p // 2, p // 2) for p in padding] + [(0, 0), (0, 0)])
    if crop_kernel and all(p <= 0 for p in padding):
        return kernel[tuple(slice(-p // 2, size + p // 2) for p, size in zip(
            padding, kernel.shape[:-2]))]
    return None
