"""Elastic layers: one set of weights for every value of shared decisions.

A space builds its layers with the factories of this module (`conv_bn`,
`dense`, `pool`, `shortcut`, `mobile_block`), passing the results of
`tfnas.choose_value`. In a multi-trial build those are plain values and the
factories return the ordinary layers of `tfnas.spaces.ops` (or Keras). In a
supernet they are `SharedValue`s and the factories return elastic layers
that hold the weights of the largest value and share them (once-for-all,
FBNetV2):

- width (filters, units, expanded channels): the widest kernel; channels
  beyond the chosen width are masked to zero, so they neither reach the
  next layer nor receive gradients;
- kernel size: the largest kernel, masked to its centred k x k slice (with
  "same" padding this is exactly a k x k convolution);
- expansion ratio: the expanded channels masked to the chosen ratio's;
- on/off (squeeze-excite, residual): a gate between the block with and
  without it;
- activation, block type: every branch, weighted.

Masks and gates are weighted by each decision's selector (see
`tfnas.supernet.values`): softmax(alpha) for DARTS, a sampled one-hot for
GDAS, ProxylessNAS, SPOS and ENAS. Branches of a sampled decision (block
type) are computed only for the sampled value; in ProxylessNAS's training,
only for the values its decision sampled in this step (`MixedOp.support`:
one in the weight phase, the two whose binary gates receive the gradient in
the architecture phase), so a step keeps only those paths' activations.
The branches of activations and squeeze-excite on/off are cheap and always
computed.
"""

import keras
import tensorflow as tf

from tfnas.spaces import ops
from tfnas.supernet.values import ValueExpr, as_expr, is_shared, roots

SAMPLING_MODES = ("gdas", "single_path")


def bind(x, shared):
    """The inputs of an elastic layer: `x` and the selector of every shared
    decision in `shared`."""
    return {"x": x, **{value.name: value.selector(x) for value in shared}}


def prefix_mask(width, selectors, total, dtype, normalize=False):
    """The mask of the first `width` of `total` channels, weighted over the
    values of `width` (a `ValueExpr`), or None when nothing is masked.

    With `normalize`, the mask is divided by the weight of the non-zero
    widths (the expanded channels of the one block type group that has them).
    """
    width = as_expr(width)
    if not width.parts:
        return None if width.table[0] >= total else tf.cast(
            tf.sequence_mask(width.table[0], total), dtype)
    rows = tf.constant([[1.0] * min(v, total) + [0.0] * (total - min(v, total))
                        for v in width.table])
    weights = tf.stack(width.weights(selectors))
    mask = tf.linalg.matvec(rows, weights, transpose_a=True)
    if normalize:
        present = tf.constant([1.0 if v > 0 else 0.0 for v in width.table])
        mask = mask / (tf.reduce_sum(weights * present) + 1e-12)
    return tf.cast(mask, dtype)


def centre_mask(kernel_size, selectors, largest, dtype, rank=2):
    """The (largest, largest, 1, 1) mask of the centred k x k kernel slice
    ((largest, 1, 1) and k for a 1-D kernel, `rank=1`), weighted over the
    values of `kernel_size`, or None for the largest."""
    kernel_size = as_expr(kernel_size)
    if not kernel_size.parts and kernel_size.table[0] == largest:
        return None

    def centre(k):
        start = (largest - k) // 2
        inside = [1.0 if start <= i < start + k else 0.0 for i in range(largest)]
        return inside if rank == 1 else [[a * b for b in inside] for a in inside]

    rows = tf.constant([centre(k) for k in kernel_size.table])
    if kernel_size.parts:
        weights = tf.stack(kernel_size.weights(selectors))
        mask = tf.tensordot(weights, rows, axes=1)
    else:
        mask = rows[0]
    return tf.cast(mask[(Ellipsis,) + (None,) * 2], dtype)


def mix(weights, branches, mode, training, switch=True, support=None, zeros=None):
    """`sum(w * branch())` over the branches; in a sampling mode (and with
    `switch`) only the branch of the largest weight, the sampled one, is
    computed. In ProxylessNAS's training, with `support` (one weight per
    branch, non-zero for the branches its decisions sampled in this step)
    and `zeros` (a function returning a zero output), only the supported
    branches are computed."""
    if len(branches) == 1:
        output = branches[0]()
        return tf.cast(weights[0], output.dtype) * output
    if switch and mode == "proxyless" and training and support is not None:
        return _mix_supported(weights, branches, support, zeros)
    if switch and (mode in SAMPLING_MODES or (mode == "proxyless" and not training)):
        stacked = tf.stack(weights)
        index = tf.argmax(stacked, output_type=tf.int32)
        output = tf.switch_case(index, branches)
        return tf.cast(tf.gather(stacked, index), output.dtype) * output
    outputs = [branch() for branch in branches]
    # The weights as given, not sliced back out of a stack (fewer nodes).
    return tf.add_n([tf.cast(w, o.dtype) * o for w, o in zip(weights, outputs)])


def _mix_supported(weights, branches, support, zeros):
    """`sum(w * branch())` over the branches of non-zero `support` (one or
    two): the others have zero weights and zero gradients, so leaving them
    out changes neither the output nor a gradient, and their activations
    are never computed. One `tf.cond` per branch, chained, so that each
    branch is traced once (as in the weighted sum)."""
    total = zeros()
    for weight, active, branch in zip(weights, support, branches):
        def add(weight=weight, branch=branch, total=total):
            output = branch()
            return total + tf.cast(weight, output.dtype) * output

        total = tf.cond(tf.stop_gradient(active) > 0, add, lambda total=total: total)
    return total


def activate(x, activation, selectors, mode, training):
    """`x` through `activation` (a name, None, or a shared choice of them).

    Every activation is computed (they are cheap), also in sampling modes:
    a `tf.switch_case` here, nested in the one of an operation choice,
    breaks TensorFlow's gradient of the GDAS step."""
    activation = as_expr(activation)
    functions = [keras.activations.get(name) for name in activation.table]
    if not activation.parts:
        return functions[0](x)
    return mix(activation.weights(selectors), [lambda f=f: f(x) for f in functions],
               mode, training, switch=False)


def fit_channels(x, channels):
    """`x` with `channels` channels: sliced, or padded with zeros."""
    have = x.shape[-1]
    if have == channels:
        return x
    if have > channels:
        return x[..., :channels]
    padding = [[0, 0]] * (len(x.shape) - 1) + [[0, channels - have]]
    return tf.pad(x, padding)


def _check_odd(kernel_size):
    for k in as_expr(kernel_size).table:
        if int(k) % 2 == 0:
            raise ValueError(
                "Received an invalid value for `kernel_size`, expected odd kernel "
                "sizes: a shared kernel is sliced around its centre. Received: "
                f"kernel_size={as_expr(kernel_size).values}")


class ElasticLayer(keras.layers.Layer):
    """A layer whose inputs are `{"x": tensor, decision name: selector}`.

    Called on a plain tensor (from a space's code), it adds the selectors of
    its shared decisions itself.
    """

    def __init__(self, shared_values, **kwargs):
        super().__init__(**kwargs)
        shared = roots(*shared_values)
        # Plain Python objects, set past Keras's attribute tracking.
        object.__setattr__(self, "shared", shared)
        object.__setattr__(self, "mode", shared[0].mode if shared else "darts")

    def __call__(self, inputs, *args, **kwargs):
        if not isinstance(inputs, dict):
            inputs = bind(inputs, self.shared)
        return super().__call__(inputs, *args, **kwargs)


class ElasticConvBN(ElasticLayer):
    """`ops.ConvBN` with shared filters, kernel size and activation.

    Args:
        filters: Output channels (int or `ValueExpr`). For `kind="depthwise"`
            the output mask only (the channels are the input's).
        kernel_size: Odd kernel size (int or `ValueExpr`).
        strides, dilation_rate, kind: As `ops.ConvBN`.
        activation: A Keras activation name, None, or a `ValueExpr` of them.
        normalize: Normalize the width mask (see `prefix_mask`).
    """

    def __init__(self, filters, kernel_size, strides=1, dilation_rate=1, kind="conv",
                 activation="relu", normalize=False, **kwargs):
        super().__init__([filters, kernel_size, activation], **kwargs)
        _check_odd(kernel_size)
        self.filters, self.kernel_size = as_expr(filters), as_expr(kernel_size)
        self.activation = as_expr(activation)
        self.strides, self.dilation_rate, self.kind = strides, dilation_rate, kind
        self.normalize = normalize

    def build(self, input_shape):
        channels = input_shape["x"][-1]
        size = self.kernel_size.maximum
        # 1-D (sequences) or 2-D (images) kernels, by the input's rank.
        self.rank = ops.spatial_rank(input_shape["x"])
        self.channels = channels if self.kind == "depthwise" else self.filters.maximum
        if self.kind == "conv":
            self.kernel = self.add_weight(name="kernel", shape=(size,) * self.rank + (
                channels, self.channels))
        else:
            self.depthwise_kernel = self.add_weight(
                name="depthwise_kernel", shape=(size,) * self.rank + (channels, 1))
            if self.kind == "separable":
                self.pointwise_kernel = self.add_weight(
                    name="pointwise_kernel", shape=(1,) * self.rank + (channels, self.channels))
        self.norm = ops._batch_norm()
        self.norm.build(tuple(input_shape["x"][:-1]) + (self.channels,))

    def call(self, inputs, training=None):
        x = inputs["x"]
        mask = centre_mask(self.kernel_size, inputs, self.kernel_size.maximum, x.dtype,
                           self.rank)
        common = dict(strides=self.strides, padding="same", dilation_rate=self.dilation_rate)
        if self.kind == "conv":
            kernel = tf.cast(self.kernel, x.dtype)
            y = keras.ops.conv(x, kernel if mask is None else kernel * mask, **common)
        else:
            kernel = tf.cast(self.depthwise_kernel, x.dtype)
            kernel = kernel if mask is None else kernel * mask
            if self.kind == "separable":
                y = keras.ops.separable_conv(x, kernel, tf.cast(self.pointwise_kernel, x.dtype),
                                             **common)
            else:
                y = keras.ops.depthwise_conv(x, kernel, **common)
        y = self.norm(y, training=training)
        y = activate(y, self.activation, inputs, self.mode, training)
        width = prefix_mask(self.filters, inputs, self.channels, y.dtype, self.normalize)
        return y if width is None else y * width


class ElasticDense(ElasticLayer):
    """`keras.layers.Dense` with shared units and activation."""

    def __init__(self, units, activation=None, **kwargs):
        super().__init__([units, activation], **kwargs)
        self.units, self.activation = as_expr(units), as_expr(activation)

    def build(self, input_shape):
        self.kernel = self.add_weight(name="kernel",
                                      shape=(input_shape["x"][-1], self.units.maximum))
        self.bias = self.add_weight(name="bias", shape=(self.units.maximum,),
                                    initializer="zeros")

    def call(self, inputs, training=None):
        x = inputs["x"]
        y = keras.ops.matmul(x, tf.cast(self.kernel, x.dtype)) + tf.cast(self.bias, x.dtype)
        y = activate(y, self.activation, inputs, self.mode, training)
        width = prefix_mask(self.units, inputs, self.units.maximum, y.dtype)
        return y if width is None else y * width


class ElasticPool(ElasticLayer):
    """A pooling followed by a 1x1 ConvBN projection to shared `filters`."""

    def __init__(self, kind, pool_size=3, strides=1, filters=None, **kwargs):
        super().__init__([filters], **kwargs)
        self.kind, self.pool_size, self.strides = kind, pool_size, strides
        self.filters = filters

    def build(self, input_shape):
        layer = ops.spatial_layer("max" if self.kind == "max" else "avg", input_shape["x"])
        self.pool = layer(self.pool_size, strides=self.strides, padding="same")
        self.project = ElasticConvBN(self.filters, 1, activation=None)
        shape = self.pool.compute_output_shape(input_shape["x"])
        self.project.build({**input_shape, "x": shape})

    def call(self, inputs, training=None):
        return self.project({**inputs, "x": self.pool(inputs["x"])}, training=training)


class ElasticShortcut(ElasticLayer):
    """`ops.Shortcut` between shared widths: the identity where the source's
    width (`in_filters`) equals `filters` (and strides are 1), else a 1x1
    ConvBN projection, gated by the widths' selectors."""

    def __init__(self, filters, in_filters=None, strides=1, reductions=0, **kwargs):
        super().__init__([filters, in_filters], **kwargs)
        self.filters, self.in_filters = as_expr(filters), in_filters
        self.strides, self.reductions = strides, reductions

    def build(self, input_shape):
        shape = tuple(input_shape["x"])
        self.pools = [ops.spatial_layer("avg", shape)(2, padding="same")
                      for _ in range(self.reductions)]
        for pool in self.pools:
            shape = pool.compute_output_shape(shape)
        in_filters = (as_expr(self.in_filters) if self.in_filters is not None
                      else ValueExpr.constant(shape[-1]))
        self.same = in_filters.combine(
            self.filters, lambda a, b: 1.0 if self.strides == 1 and a == b else 0.0)
        self.project = ElasticConvBN(self.filters, 1, strides=self.strides, activation=None)
        self.project.build({**input_shape, "x": shape})

    def call(self, inputs, training=None):
        x = inputs["x"]
        for pool in self.pools:
            x = pool(x)
        weights = self.same.weights(inputs)
        identity = tf.add_n([w * s for w, s in zip(weights, self.same.table)])
        projected = tf.add_n([w * (1.0 - s) for w, s in zip(weights, self.same.table)])
        output = tf.cast(projected, x.dtype) * self.project({**inputs, "x": x},
                                                            training=training)
        if max(self.same.table) > 0:
            output += tf.cast(identity, x.dtype) * fit_channels(x, self.filters.maximum)
        return output


class ElasticSqueezeExcite(ElasticLayer):
    """Squeeze-excite on/off (or among ratios): the gate of `se_ratio`'s
    selector between the input and each ratio's squeeze-excite (bottleneck
    `ratio * in_filters` units, as `ops.SqueezeExcite(base_channels=...)`)."""

    def __init__(self, se_ratio, in_filters, **kwargs):
        super().__init__([se_ratio, in_filters], **kwargs)
        self.se_ratio, self.in_filters = as_expr(se_ratio), as_expr(in_filters)

    def build(self, input_shape):
        channels = input_shape["x"][-1]
        self.excites = []
        for ratio in self.se_ratio.table:
            if ratio == 0:
                self.excites.append(None)
                continue
            squeezed = self.in_filters.map(lambda c, r=ratio: max(1, int(c * r)))
            reduce = ElasticDense(squeezed, "relu")
            expand = ElasticDense(channels, "sigmoid")
            reduce.build({**input_shape, "x": (None, channels)})
            expand.build({**input_shape, "x": (None, squeezed.maximum)})
            self.excites.append((reduce, expand))
        self.excite_layers = [layer for pair in self.excites if pair for layer in pair]

    def call(self, inputs, training=None):
        x = inputs["x"]

        def branch(pair):
            if pair is None:
                return x
            reduce, expand = pair
            spatial_axes = tuple(range(1, len(x.shape) - 1))
            scale = keras.ops.mean(x, axis=spatial_axes)
            scale = expand({**inputs, "x": reduce({**inputs, "x": scale})})
            return x * keras.ops.expand_dims(scale, spatial_axes)

        # Both computed (cheap; see `activate` on nested switches).
        return mix(self.se_ratio.weights(inputs),
                   [lambda p=p: branch(p) for p in self.excites], self.mode, training,
                   switch=False)


class ElasticMobileBlock(ElasticLayer):
    """`ops.MobileBlock` with shared filters, kernel size, block type
    (kind and expansion), squeeze-excite ratio and residual.

    Block types with the same structure share weights: every inverted
    residual with an expansion above 1 is one block with the largest
    expansion, its expanded channels masked to the chosen one's. Other
    types (regular, depthwise-separable, expansion 1) are branches of
    their own.

    Args:
        filters, kernel_size, se_ratio: As `ops.MobileBlock` (int or
            `ValueExpr`).
        block_type: A name of `block_types`, or a `ValueExpr` of them.
        block_types: `{name: (kind, expansion)}`.
        skip: Whether to add the residual (bool or `ValueExpr` of bools).
        in_filters: The input's width (int or `ValueExpr`); defaults to its
            channels.
    """

    def __init__(self, filters, kernel_size, strides, block_type, block_types,
                 se_ratio=0.0, skip=True, in_filters=None, activation="relu", **kwargs):
        super().__init__([filters, kernel_size, block_type, se_ratio, skip, in_filters],
                         **kwargs)
        self.filters, self.kernel_size = as_expr(filters), as_expr(kernel_size)
        self.block_type, self.block_types = as_expr(block_type), dict(block_types)
        self.se_ratio, self.skip, self.in_filters = as_expr(se_ratio), as_expr(skip), in_filters
        self.strides, self.activation = strides, activation
        expansions = {e for kind, e in self.block_types.values() if kind == "inverted"}
        if any(e < 1 for e in expansions):
            raise ValueError(f"Expected expansions of at least 1. Received: {expansions}")

    def _group(self, name):
        kind, expansion = self.block_types[name]
        return "expanding" if kind == "inverted" and expansion > 1 else name

    def _group_sums(self, entries):
        """Per group of `self.groups`, the sum of its block types' `entries`
        (one per entry of `self.block_type.table`)."""
        return [tf.add_n([e for e, n in zip(entries, self.block_type.table)
                          if self._group(n) == group]) for group in self.groups]

    def build(self, input_shape):
        shape = tuple(input_shape["x"])
        channels = shape[-1]
        in_filters = (as_expr(self.in_filters) if self.in_filters is not None
                      else ValueExpr.constant(channels))
        k, s, act = self.kernel_size, self.strides, self.activation
        self.groups = list(dict.fromkeys(self._group(n) for n in self.block_type.table))
        self.bodies = []
        for group in self.groups:
            kind = "inverted" if group == "expanding" else self.block_types[group][0]
            if kind == "conv":
                body = [ElasticConvBN(self.filters, k, strides=s, activation=act)]
            elif group == "expanding":
                hidden = in_filters.combine(self.block_type, lambda c, n: c * (
                    self.block_types[n][1] if self._group(n) == "expanding" else 0))
                body = [ElasticConvBN(hidden, 1, activation=act, normalize=True),
                        ElasticConvBN(hidden, k, strides=s, kind="depthwise", activation=act,
                                      normalize=True)]
            else:  # depthwise-separable, or inverted with expansion 1
                body = [ElasticConvBN(in_filters, k, strides=s, kind="depthwise",
                                      activation=act)]
            if any(r > 0 for r in self.se_ratio.table):
                body.append(ElasticSqueezeExcite(self.se_ratio, in_filters))
            if kind != "conv":
                body.append(ElasticConvBN(self.filters, 1, activation=None))
            current = shape
            for layer in body:
                layer.build({**input_shape, "x": current})
                if isinstance(layer, ElasticConvBN):
                    current = ops._output_shape(current, layer.strides, layer.channels)
            self.bodies.append(body)
        self.body_output_shape = current  # every body's
        residual = in_filters.combine(self.filters, lambda c, f: c == f and s == 1)
        self.residual = residual.combine(self.skip, lambda same, skip: float(same and skip))

    def call(self, inputs, training=None):
        x = inputs["x"]
        group_weights = self._group_sums(self.block_type.weights(inputs))
        support = None
        if self.mode == "proxyless" and training:
            support = self._group_sums(self.block_type.weights(
                {part.name: part.support() for part in self.block_type.parts}))

        def run(body):
            y = x
            for layer in body:
                y = layer({**inputs, "x": y}, training=training)
            return y

        def zeros():
            return tf.zeros(tf.concat([tf.shape(x)[:1], self.body_output_shape[1:]], 0), x.dtype)

        y = mix(group_weights, [lambda b=b: run(b) for b in self.bodies], self.mode, training,
                support=support, zeros=zeros)
        if max(self.residual.table) > 0:
            gate = tf.add_n([w * r for w, r in zip(self.residual.weights(inputs),
                                                   self.residual.table)])
            y += tf.cast(gate, y.dtype) * fit_channels(x, self.filters.maximum)
        return y


class ElasticSequence(ElasticLayer):
    """Layers applied in order; elastic ones get the selectors too."""

    def __init__(self, layers, **kwargs):
        super().__init__([v for layer in layers if isinstance(layer, ElasticLayer)
                          for v in layer.shared], **kwargs)
        self.sublayers = list(layers)

    def build(self, input_shape):
        # Each layer's input is the previous one's output: its shape from
        # the symbolic output spec (no graph nodes, unlike calling it).
        inputs = {name: keras.KerasTensor(shape) for name, shape in input_shape.items()}
        x = inputs["x"]
        for layer in self.sublayers:
            elastic = isinstance(layer, ElasticLayer)
            if not layer.built:
                layer.build({**input_shape, "x": x.shape} if elastic else x.shape)
            x = layer.compute_output_spec({**inputs, "x": x} if elastic else x)

    def call(self, inputs, training=None):
        x = inputs["x"]
        for layer in self.sublayers:
            x = (layer({**inputs, "x": x}, training=training)
                 if isinstance(layer, ElasticLayer) else layer(x, training=training))
        return x


# Factories: the ordinary layer for plain values, the elastic one for shared.

def sequence(layers, name=None):
    """`keras.Sequential(layers)`, or `ElasticSequence` when one is elastic."""
    if any(isinstance(layer, ElasticLayer) for layer in layers):
        return ElasticSequence(layers, name=name)
    return keras.Sequential(layers, name=name)


def conv_bn(filters, kernel_size, strides=1, dilation_rate=1, kind="conv", activation="relu",
            name=None):
    """`ops.ConvBN`, or `ElasticConvBN` when a value is shared."""
    if is_shared(filters, kernel_size, activation):
        return ElasticConvBN(filters, kernel_size, strides=strides,
                             dilation_rate=dilation_rate, kind=kind, activation=activation,
                             name=name)
    return ops.ConvBN(filters, kernel_size, strides=strides, dilation_rate=dilation_rate,
                      kind=kind, activation=activation, name=name)


def dense(units, activation=None, name=None):
    """`keras.layers.Dense`, or `ElasticDense` when a value is shared."""
    if is_shared(units, activation):
        return ElasticDense(units, activation, name=name)
    return keras.layers.Dense(units, activation=activation, name=name)


def pool(kind, strides=1, filters=None, pool_size=3, name=None):
    """A pooling followed by a 1x1 ConvBN projection (no activation) to
    `filters`, so that it agrees in shape with convolutions of `filters`."""
    if is_shared(filters):
        return ElasticPool(kind, pool_size, strides=strides, filters=filters, name=name)
    return keras.Sequential([ops.Pool(kind, pool_size, strides=strides),
                             ops.ConvBN(filters, 1, activation=None)], name=name)


def shortcut(filters=None, in_filters=None, strides=1, reductions=0, name=None):
    """`ops.Shortcut` (`in_filters`, the source's width, is implied by the
    input in a multi-trial build), or `ElasticShortcut` when shared."""
    if is_shared(filters, in_filters):
        return ElasticShortcut(filters, in_filters, strides=strides, reductions=reductions,
                               name=name)
    return ops.Shortcut(filters=filters, strides=strides, reductions=reductions, name=name)


def mobile_block(filters, kernel_size, strides, block_type, block_types, se_ratio=0.0,
                 skip=True, in_filters=None, activation="relu", name=None):
    """`ops.MobileBlock` of `block_types[block_type]` (kind, expansion), or
    `ElasticMobileBlock` when a value is shared."""
    if is_shared(filters, kernel_size, block_type, se_ratio, skip, in_filters):
        return ElasticMobileBlock(filters, kernel_size, strides, block_type, block_types,
                                  se_ratio=se_ratio, skip=skip, in_filters=in_filters,
                                  activation=activation, name=name)
    kind, expansion = block_types[block_type]
    return ops.MobileBlock(filters, kernel_size, strides=strides, kind=kind,
                           expansion=expansion, se_ratio=se_ratio, skip=bool(skip),
                           activation=activation, name=name)
