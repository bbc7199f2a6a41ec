"""Layers of the sequence spaces: inputs of token ids or numeric series,
self-attention and feed-forward blocks.

Like `tfnas.spaces.ops`, each layer validates its arguments in `__init__`,
creates its sub-layers in `build` and round-trips through `get_config`; they
are registered under the "tfnas" package so saved models load by name.
"""

import keras

from tfnas.spaces.ops import PACKAGE, _positive_int


def _rate(value, name):
    if not 0.0 <= value < 1.0:
        raise ValueError(
            f"Received an invalid value for `{name}`, expected a number in [0, 1). "
            f"Received: {name}={value!r}")
    return float(value)


@keras.saving.register_keras_serializable(package=PACKAGE)
class PositionEmbedding(keras.layers.Layer):
    """Adds a learned vector per position to a `(batch, length, dim)` input."""

    def build(self, input_shape):
        length, dim = input_shape[-2], input_shape[-1]
        if length is None:
            raise ValueError(
                "PositionEmbedding needs a fixed sequence length. Received: "
                f"input_shape={tuple(input_shape)}")
        self.positions = self.add_weight(
            shape=(length, dim), initializer=keras.initializers.RandomNormal(stddev=0.02),
            name="positions")

    def call(self, inputs):
        return inputs + keras.ops.cast(self.positions, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)


@keras.saving.register_keras_serializable(package=PACKAGE)
class SelfAttention(keras.layers.Layer):
    """Multi-head self-attention of a sequence with itself; keeps its width.

    Args:
        heads: Number of attention heads.
        key_dim: Size of each head's queries and keys.
        dropout: Dropout rate of the attention weights.
    """

    def __init__(self, heads, key_dim, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.heads = _positive_int(heads, "heads")
        self.key_dim = _positive_int(key_dim, "key_dim")
        self.dropout = _rate(dropout, "dropout")

    def build(self, input_shape):
        self.attention = keras.layers.MultiHeadAttention(
            self.heads, self.key_dim, dropout=self.dropout)
        self.attention.build(input_shape, input_shape)

    def call(self, inputs, training=None):
        return self.attention(inputs, inputs, training=training)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "heads": self.heads, "key_dim": self.key_dim,
                "dropout": self.dropout}


@keras.saving.register_keras_serializable(package=PACKAGE)
class AttentionBlock(keras.layers.Layer):
    """A residual self-attention block: LayerNorm(x + SelfAttention(x)).

    Args:
        heads: Number of attention heads.
        key_dim: Size of each head's queries and keys; None for the input's
            width divided by `heads`.
    """

    def __init__(self, heads=4, key_dim=None, **kwargs):
        super().__init__(**kwargs)
        self.heads = _positive_int(heads, "heads")
        self.key_dim = None if key_dim is None else _positive_int(key_dim, "key_dim")

    def build(self, input_shape):
        key_dim = self.key_dim or max(1, input_shape[-1] // self.heads)
        self.attention = SelfAttention(self.heads, key_dim)
        self.norm = keras.layers.LayerNormalization(epsilon=1e-5)
        self.attention.build(input_shape)
        self.norm.build(input_shape)

    def call(self, inputs, training=None):
        return self.norm(inputs + self.attention(inputs, training=training))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "heads": self.heads, "key_dim": self.key_dim}


@keras.saving.register_keras_serializable(package=PACKAGE)
class FeedForward(keras.layers.Layer):
    """The position-wise feed-forward network of a Transformer layer.

    Dense(units, activation), dropout, then Dense back to the input's width.

    Args:
        units: The hidden width.
        activation: A Keras activation name.
        dropout: Dropout rate after the hidden layer.
    """

    def __init__(self, units, activation="gelu", dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.units = _positive_int(units, "units")
        self.activation = activation
        self.dropout = _rate(dropout, "dropout")

    def build(self, input_shape):
        self.hidden = keras.layers.Dense(self.units, activation=self.activation)
        self.drop = keras.layers.Dropout(self.dropout)
        self.output_dense = keras.layers.Dense(input_shape[-1])
        self.hidden.build(input_shape)
        self.output_dense.build((*input_shape[:-1], self.units))

    def call(self, inputs, training=None):
        return self.output_dense(self.drop(self.hidden(inputs), training=training))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "units": self.units,
                "activation": self.activation, "dropout": self.dropout}


@keras.saving.register_keras_serializable(package=PACKAGE)
class SequencePooling(keras.layers.Layer):
    """Pools `(batch, length, dim)` to `(batch, dim)`: "avg", "max" or "last".

    Args:
        kind: "avg" (mean over positions), "max", or "last" (the last
            position, a recurrent network's summary).
    """

    KINDS = ("avg", "max", "last")

    def __init__(self, kind="avg", **kwargs):
        super().__init__(**kwargs)
        if kind not in self.KINDS:
            raise ValueError(
                f"Received an invalid value for `kind`, expected one of {self.KINDS}. "
                f"Received: kind={kind!r}")
        self.kind = kind

    def call(self, inputs):
        if self.kind == "avg":
            return keras.ops.mean(inputs, axis=1)
        if self.kind == "max":
            return keras.ops.max(inputs, axis=1)
        return inputs[:, -1, :]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "kind": self.kind}


def sequence_stem(inputs, width, vocabulary_size=None):
    """Token ids to embeddings, or a numeric series projected, to `width`.

    Args:
        inputs: `(batch, length)` integer token ids when `vocabulary_size` is
            given; else a float `(batch, length, features)` series (or
            `(batch, length)`, one feature).
        width: The embedding (or projection) width.
        vocabulary_size: Size of the token vocabulary, or None for numeric inputs.
    """
    if vocabulary_size is not None:
        return keras.layers.Embedding(vocabulary_size, width)(inputs)
    x = inputs
    if len(x.shape) == 2:
        x = keras.layers.Reshape((x.shape[1], 1))(x)
    return keras.layers.Dense(width)(x)
