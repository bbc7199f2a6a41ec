"""Candidate operations shared by the built-in search spaces.

Each operation is a Keras layer: arguments are validated in `__init__`,
sub-layers and weights are created in `build`, `call` computes, and
`get_config` round-trips. They are registered with Keras under the "tfnas"
package, so models that use them load with `keras.saving.load_model` without
custom objects. Every spatial operation uses "same" padding, so an input of
size s leaves a stride-2 operation with size ceil(s / 2), never below 1.

`ConvBN`, `Pool`, `Shortcut` and `Zero` work on images, `(batch, height,
width, channels)`, and on sequences, `(batch, length, channels)`: the Keras
layers inside (`Conv1D` or `Conv2D`, ...) are chosen by the input's rank.
"""

import keras

from tfnas.supernet import batch_norm
from tfnas.validation import check_int, check_positive_int

PACKAGE = "tfnas"


def _positive_int(value, name):
    return check_positive_int(value, name)


def _one_of(value, name, allowed):
    if value not in allowed:
        raise ValueError(
            f"Received an invalid value for `{name}`, expected one of "
            f"{tuple(allowed)}. Received: {name}={value!r}"
        )
    return value


def _output_shape(input_shape, strides=1, channels=None):
    """Shape after a "same"-padded operation with `strides` and `channels`."""
    batch, *spatial, in_channels = input_shape
    if strides > 1:
        spatial = [None if size is None else -(-size // strides) for size in spatial]
    return (batch, *spatial, in_channels if channels is None else channels)


def spatial_rank(input_shape):
    """1 for sequences `(batch, length, channels)`, 2 for images."""
    rank = len(input_shape) - 2
    if rank not in (1, 2):
        raise ValueError(
            "Expected an input of shape (batch, length, channels) or (batch, height, "
            f"width, channels). Received: input_shape={tuple(input_shape)}")
    return rank


_LAYERS = {
    # name: (1-D layer, 2-D layer)
    "conv": (keras.layers.Conv1D, keras.layers.Conv2D),
    "separable": (keras.layers.SeparableConv1D, keras.layers.SeparableConv2D),
    "depthwise": (keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D),
    "max": (keras.layers.MaxPooling1D, keras.layers.MaxPooling2D),
    "avg": (keras.layers.AveragePooling1D, keras.layers.AveragePooling2D),
}


def spatial_layer(name, input_shape):
    """The Keras layer class `name` ("conv", "max", ...) for the input's rank."""
    return _LAYERS[name][spatial_rank(input_shape) - 1]


def _build_chain(layers, input_shape):
    """Builds `layers` applied one after another; returns the output shape."""
    shape = tuple(input_shape)
    for layer in layers:
        layer.build(shape)
        shape = tuple(layer.compute_output_shape(shape))
    return shape


#: The epsilon of every batch normalization the spaces build (read by
#: `tfnas.layer_removal`, which folds a normalization into a later layer).
BATCH_NORM_EPSILON = 1e-5


def _batch_norm():
    # Momentum 0.9 rather than Keras' 0.99: short NAS trainings must leave
    # usable moving statistics after a few hundred steps. In a supernet, the
    # same normalization on the fused kernel (a much smaller graph).
    if batch_norm.in_supernet_scope():
        return batch_norm.FusedBatchNormalization(momentum=0.9, epsilon=BATCH_NORM_EPSILON)
    return keras.layers.BatchNormalization(momentum=0.9, epsilon=BATCH_NORM_EPSILON)


@keras.saving.register_keras_serializable(package=PACKAGE)
class ConvBN(keras.layers.Layer):
    """A convolution with batch normalization and an activation.

    Args:
        filters: Output channels.
        kernel_size: Kernel size (square on images).
        strides: 1 or 2.
        dilation_rate: Dilation of the kernel (with strides 1 only).
        kind: "conv" (regular), "separable" (depthwise then pointwise) or
            "depthwise" (depthwise only; `filters` must equal the input's).
        activation: A Keras activation name, or None.
        preactivation: If True, activation-conv-BN (DARTS, NAS-Bench-201);
            else conv-BN-activation.
    """

    KINDS = ("conv", "separable", "depthwise")

    def __init__(self, filters, kernel_size, strides=1, dilation_rate=1, kind="conv",
                 activation="relu", preactivation=False, **kwargs):
        super().__init__(**kwargs)
        self.filters = _positive_int(filters, "filters")
        self.kernel_size = _positive_int(kernel_size, "kernel_size")
        self.strides = _one_of(strides, "strides", (1, 2))
        self.dilation_rate = _positive_int(dilation_rate, "dilation_rate")
        if self.dilation_rate > 1 and self.strides > 1:
            raise ValueError(
                "Expected `strides=1` with `dilation_rate` > 1. Received: "
                f"strides={strides}, dilation_rate={dilation_rate}"
            )
        self.kind = _one_of(kind, "kind", self.KINDS)
        self.activation = activation
        self.preactivation = bool(preactivation)

    def build(self, input_shape):
        common = dict(strides=self.strides, padding="same",
                      dilation_rate=self.dilation_rate, use_bias=False)
        layer = spatial_layer(self.kind, input_shape)
        if self.kind in ("conv", "separable"):
            self.conv = layer(self.filters, self.kernel_size, **common)
        else:
            if input_shape[-1] != self.filters:
                raise ValueError(
                    "A depthwise ConvBN keeps the channels: expected "
                    f"filters={input_shape[-1]}. Received: filters={self.filters}"
                )
            self.conv = layer(self.kernel_size, **common)
        self.norm = _batch_norm()
        self.act = keras.layers.Activation(self.activation) if self.activation else None
        _build_chain([self.conv, self.norm], input_shape)

    def call(self, inputs):
        x = inputs
        if self.preactivation and self.act is not None:
            x = self.act(x)
        x = self.norm(self.conv(x))
        if not self.preactivation and self.act is not None:
            x = self.act(x)
        return x

    def compute_output_shape(self, input_shape):
        return _output_shape(input_shape, self.strides, self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "kernel_size": self.kernel_size, "strides": self.strides,
                "dilation_rate": self.dilation_rate, "kind": self.kind,
                "activation": self.activation, "preactivation": self.preactivation}


@keras.saving.register_keras_serializable(package=PACKAGE)
class Pool(keras.layers.Layer):
    """A max or average pooling; a 1x1 ConvBN follows when the channels change.

    Args:
        kind: "max" or "avg".
        pool_size: Window size (square on images).
        strides: 1 or 2.
        filters: Output channels, or None to keep the input's.
    """

    def __init__(self, kind="max", pool_size=3, strides=1, filters=None, **kwargs):
        super().__init__(**kwargs)
        self.kind = _one_of(kind, "kind", ("max", "avg"))
        self.pool_size = _positive_int(pool_size, "pool_size")
        self.strides = _one_of(strides, "strides", (1, 2))
        self.filters = None if filters is None else _positive_int(filters, "filters")

    def build(self, input_shape):
        self.pool = spatial_layer(self.kind, input_shape)(
            self.pool_size, strides=self.strides, padding="same")
        self.project = None
        if self.filters is not None and self.filters != input_shape[-1]:
            self.project = ConvBN(self.filters, 1, activation=None)
            self.project.build(_output_shape(input_shape, self.strides))

    def call(self, inputs):
        x = self.pool(inputs)
        return self.project(x) if self.project is not None else x

    def compute_output_shape(self, input_shape):
        return _output_shape(input_shape, self.strides, self.filters)

    def get_config(self):
        return {**super().get_config(), "kind": self.kind, "pool_size": self.pool_size,
                "strides": self.strides, "filters": self.filters}


@keras.saving.register_keras_serializable(package=PACKAGE)
class Shortcut(keras.layers.Layer):
    """Identity, or a strided 1x1 ConvBN when the shape must change.

    NAS-Bench-Macro's identity candidate, and the reconciliation of skip
    connections whose source has another size or width.

    Args:
        filters: Output channels, or None to keep the input's.
        strides: 1 or 2 (a stride-2 1x1 convolution when 2).
        reductions: Number of stride-2 average poolings applied first, to
            match a tensor that went through that many reductions.
    """

    def __init__(self, filters=None, strides=1, reductions=0, **kwargs):
        super().__init__(**kwargs)
        self.filters = None if filters is None else _positive_int(filters, "filters")
        self.strides = _one_of(strides, "strides", (1, 2))
        self.reductions = check_int(reductions, "reductions", 0,
                                    expected="a non-negative integer")

    def build(self, input_shape):
        self.pools = [spatial_layer("avg", input_shape)(2, padding="same")
                      for _ in range(self.reductions)]
        channels = input_shape[-1]
        self.project = None
        if self.strides != 1 or (self.filters is not None and self.filters != channels):
            self.project = ConvBN(self.filters or channels, 1, strides=self.strides,
                                  activation=None)
            self.project.build(_output_shape(input_shape, 2 ** self.reductions))

    def call(self, inputs):
        x = inputs
        for pool in self.pools:
            x = pool(x)
        return self.project(x) if self.project is not None else x

    def compute_output_shape(self, input_shape):
        return _output_shape(input_shape, 2 ** self.reductions * self.strides,
                             self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "strides": self.strides,
                "reductions": self.reductions}


@keras.saving.register_keras_serializable(package=PACKAGE)
class Zero(keras.layers.Layer):
    """The "none" operation: zeros of the output shape (no information flows).

    Args:
        strides: 1 or 2.
        filters: Output channels, or None to keep the input's.
    """

    def __init__(self, strides=1, filters=None, **kwargs):
        super().__init__(**kwargs)
        self.strides = _one_of(strides, "strides", (1, 2))
        self.filters = None if filters is None else _positive_int(filters, "filters")

    def call(self, inputs):
        x = inputs
        if self.strides > 1:
            steps = (slice(None, None, self.strides),) * (len(x.shape) - 2)
            x = x[(slice(None), *steps)]
        if self.filters is not None and self.filters != x.shape[-1]:
            x = keras.ops.repeat(x[..., :1], self.filters, axis=-1)
        return keras.ops.zeros_like(x)

    def compute_output_shape(self, input_shape):
        return _output_shape(input_shape, self.strides, self.filters)

    def get_config(self):
        return {**super().get_config(), "strides": self.strides, "filters": self.filters}


@keras.saving.register_keras_serializable(package=PACKAGE)
class FactorizedReduce(keras.layers.Layer):
    """Halves the resolution without losing pixels (NASNet, DARTS).

    ReLU, then two stride-2 1x1 convolutions, one on the input and one on the
    input shifted by a pixel, concatenated, then batch normalization.

    Args:
        filters: Output channels, an even number.
    """

    def __init__(self, filters, **kwargs):
        super().__init__(**kwargs)
        self.filters = _positive_int(filters, "filters")
        if self.filters % 2:
            raise ValueError(
                "Received an invalid value for `filters`, expected an even "
                f"number. Received: filters={filters}"
            )

    def build(self, input_shape):
        half = self.filters // 2
        self.conv_a = keras.layers.Conv2D(half, 1, strides=2, padding="same", use_bias=False)
        self.conv_b = keras.layers.Conv2D(half, 1, strides=2, padding="same", use_bias=False)
        self.conv_a.build(input_shape)
        self.conv_b.build(input_shape)
        self.norm = _batch_norm()
        self.norm.build(self.compute_output_shape(input_shape))

    def call(self, inputs):
        x = keras.ops.relu(inputs)
        shifted = keras.ops.pad(x[:, 1:, 1:, :], [[0, 0], [0, 1], [0, 1], [0, 0]])
        x = keras.ops.concatenate([self.conv_a(x), self.conv_b(shifted)], axis=-1)
        return self.norm(x)

    def compute_output_shape(self, input_shape):
        return _output_shape(input_shape, 2, self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters}


@keras.saving.register_keras_serializable(package=PACKAGE)
class SqueezeExcite(keras.layers.Layer):
    """Channel attention of Hu et al. (2018), as used by MnasNet.

    Args:
        ratio: Bottleneck width as a fraction of `base_channels`, in (0, 1].
        base_channels: Channels the ratio refers to (MnasNet uses the block's
            input channels); None for the layer's input channels.
    """

    def __init__(self, ratio=0.25, base_channels=None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 < ratio <= 1.0:
            raise ValueError(
                "Received an invalid value for `ratio`, expected a number in "
                f"(0, 1]. Received: ratio={ratio!r}"
            )
        self.ratio = float(ratio)
        self.base_channels = (None if base_channels is None
                              else _positive_int(base_channels, "base_channels"))

    def build(self, input_shape):
        channels = input_shape[-1]
        squeezed = max(1, int((self.base_channels or channels) * self.ratio))
        self.reduce = keras.layers.Dense(squeezed, activation="relu")
        self.expand = keras.layers.Dense(channels, activation="sigmoid")
        self.reduce.build((None, channels))
        self.expand.build((None, squeezed))

    def call(self, inputs):
        spatial_axes = tuple(range(1, len(inputs.shape) - 1))
        scale = self.expand(self.reduce(keras.ops.mean(inputs, axis=spatial_axes)))
        return inputs * keras.ops.expand_dims(scale, spatial_axes)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "ratio": self.ratio,
                "base_channels": self.base_channels}


@keras.saving.register_keras_serializable(package=PACKAGE)
class MobileBlock(keras.layers.Layer):
    """A MobileNet-family block: regular, depthwise-separable or inverted residual.

    Args:
        filters: Output channels.
        kernel_size: Kernel of the spatial convolution.
        strides: 1 or 2.
        kind: "conv" (one regular convolution), "separable" (depthwise then
            pointwise, MobileNetV1) or "inverted" (MobileNetV2: 1x1 expansion,
            depthwise, linear 1x1 projection).
        expansion: Expansion ratio of an inverted residual (1 skips the 1x1
            expansion).
        se_ratio: Squeeze-and-excitation ratio, 0 for none.
        skip: Add the input to the output when the shapes allow (stride 1,
            same channels).
        activation: Activation after the inner convolutions.
    """

    KINDS = ("conv", "separable", "inverted")

    def __init__(self, filters, kernel_size=3, strides=1, kind="inverted", expansion=6,
                 se_ratio=0.0, skip=True, activation="relu", **kwargs):
        super().__init__(**kwargs)
        self.filters = _positive_int(filters, "filters")
        self.kernel_size = _positive_int(kernel_size, "kernel_size")
        self.strides = _one_of(strides, "strides", (1, 2))
        self.kind = _one_of(kind, "kind", self.KINDS)
        self.expansion = _positive_int(expansion, "expansion")
        if not 0.0 <= se_ratio <= 1.0:
            raise ValueError(
                "Received an invalid value for `se_ratio`, expected a number "
                f"in [0, 1]. Received: se_ratio={se_ratio!r}"
            )
        self.se_ratio = float(se_ratio)
        self.skip = bool(skip)
        self.activation = activation

    def build(self, input_shape):
        channels = input_shape[-1]
        k, s, act = self.kernel_size, self.strides, self.activation
        layers = []
        if self.kind == "conv":
            layers.append(ConvBN(self.filters, k, strides=s, activation=act))
        elif self.kind == "separable":
            layers.append(ConvBN(channels, k, strides=s, kind="depthwise", activation=act))
        else:
            hidden = channels * self.expansion
            if self.expansion != 1:
                layers.append(ConvBN(hidden, 1, activation=act))
            layers.append(ConvBN(hidden, k, strides=s, kind="depthwise", activation=act))
        if self.se_ratio > 0:
            layers.append(SqueezeExcite(self.se_ratio, base_channels=channels))
        if self.kind != "conv":
            layers.append(ConvBN(self.filters, 1, activation=None))
        self.body = layers
        _build_chain(layers, input_shape)
        self.use_skip = self.skip and s == 1 and channels == self.filters

    def call(self, inputs):
        x = inputs
        for layer in self.body:
            x = layer(x)
        return x + inputs if self.use_skip else x

    def compute_output_shape(self, input_shape):
        return _output_shape(input_shape, self.strides, self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "kernel_size": self.kernel_size, "strides": self.strides,
                "kind": self.kind, "expansion": self.expansion,
                "se_ratio": self.se_ratio, "skip": self.skip,
                "activation": self.activation}


@keras.saving.register_keras_serializable(package=PACKAGE)
class ResNetBasicBlock(keras.layers.Layer):
    """The residual reduction block between NAS-Bench-201 stages.

    ReLU-conv3x3(stride)-BN, ReLU-conv3x3-BN, plus a shortcut of 2x2 average
    pooling and a 1x1 convolution when the shape changes.

    Args:
        filters: Output channels.
        strides: 1 or 2.
    """

    def __init__(self, filters, strides=2, **kwargs):
        super().__init__(**kwargs)
        self.filters = _positive_int(filters, "filters")
        self.strides = _one_of(strides, "strides", (1, 2))

    def build(self, input_shape):
        self.conv_a = ConvBN(self.filters, 3, strides=self.strides, preactivation=True)
        self.conv_b = ConvBN(self.filters, 3, preactivation=True)
        _build_chain([self.conv_a, self.conv_b], input_shape)
        self.shortcut_pool = None
        self.shortcut_conv = None
        if self.strides == 2:
            self.shortcut_pool = keras.layers.AveragePooling2D(2, padding="same")
        if self.strides == 2 or input_shape[-1] != self.filters:
            self.shortcut_conv = keras.layers.Conv2D(self.filters, 1, use_bias=False)
            self.shortcut_conv.build(_output_shape(input_shape, self.strides))

    def call(self, inputs):
        residual = inputs
        if self.shortcut_pool is not None:
            residual = self.shortcut_pool(residual)
        if self.shortcut_conv is not None:
            residual = self.shortcut_conv(residual)
        return self.conv_b(self.conv_a(inputs)) + residual

    def compute_output_shape(self, input_shape):
        return _output_shape(input_shape, self.strides, self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "strides": self.strides}


CELL_OPS = ("sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5",
            "max_pool_3x3", "avg_pool_3x3", "identity")


def cell_op(name, filters, layer_name=None):
    """A DARTS/NASNet cell operation by name (one of `CELL_OPS`), stride 1,
    optionally named `layer_name`."""
    _one_of(name, "name", CELL_OPS)
    if name == "identity":
        return keras.layers.Identity(name=layer_name)
    if name in ("max_pool_3x3", "avg_pool_3x3"):
        return Pool(name[:3], 3, filters=filters, name=layer_name)
    kernel = int(name[-1])
    if name.startswith("sep_conv"):
        # DARTS applies the separable convolution twice.
        return keras.Sequential([
            ConvBN(filters, kernel, kind="separable", preactivation=True),
            ConvBN(filters, kernel, kind="separable", preactivation=True),
        ], name=layer_name)
    return ConvBN(filters, kernel, dilation_rate=2, kind="separable", preactivation=True,
                  name=layer_name)
