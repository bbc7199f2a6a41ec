"""Candidate operations shared by the built-in search spaces.

Every operation keeps the spatial size ("same" padding, stride 1) so any
sequence of them builds.
"""

import keras

CONV_OPS = ("conv3x3", "conv5x5", "sepconv3x3", "sepconv5x5", "dilconv3x3")
POOL_OPS = ("maxpool3x3", "avgpool3x3")
OPS = CONV_OPS + POOL_OPS


def conv_bn_relu(kind, filters, name=None):
    """A convolution of `kind` (one of `CONV_OPS`), batch norm, then ReLU."""
    if kind not in CONV_OPS:
        raise ValueError(
            f"Received an invalid value for `kind`, expected one of {CONV_OPS}. "
            f"Received: kind={kind!r}"
        )
    kernel = 5 if kind.endswith("5x5") else 3
    if kind.startswith("sepconv"):
        conv = keras.layers.SeparableConv2D(filters, kernel, padding="same", use_bias=False)
    else:
        dilation = 2 if kind.startswith("dil") else 1
        conv = keras.layers.Conv2D(
            filters, kernel, padding="same", dilation_rate=dilation, use_bias=False
        )
    return keras.Sequential(
        [conv, keras.layers.BatchNormalization(momentum=0.9), keras.layers.ReLU()], name=name
    )


def pool(kind, name=None):
    """A 3x3 max or average pooling with stride 1 (one of `POOL_OPS`)."""
    if kind == "maxpool3x3":
        return keras.layers.MaxPooling2D(3, strides=1, padding="same", name=name)
    if kind == "avgpool3x3":
        return keras.layers.AveragePooling2D(3, strides=1, padding="same", name=name)
    raise ValueError(
        f"Received an invalid value for `kind`, expected one of {POOL_OPS}. "
        f"Received: kind={kind!r}"
    )
