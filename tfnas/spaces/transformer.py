"""The Transformer encoder space."""

import keras

from tfnas import decisions
from tfnas.spaces.base import check_choices, check_int_range
from tfnas.spaces.sequence import SequenceInputs, _check_positive
from tfnas.spaces.sequence_ops import (FeedForward, PositionEmbedding, SelfAttention,
                                       SequencePooling, sequence_stem)

NORMS = ("pre", "post")


class TransformerSpace(SequenceInputs):
    """A Transformer encoder (Vaswani et al., 2017) of searched shape.

    The input is embedded (token ids) or projected (numeric series) to
    `model_dim`, a learned position embedding is added, then `min_layers`
    to `max_layers` encoder layers follow, each a self-attention and a
    feed-forward sub-layer with residual connections and layer
    normalization, before (`norm="pre"`) or after (`"post"`) each sub-layer.

    Decisions, with their names in a trial's values:

    - `model_dim`: the width of the residual stream;
    - `norm`: "pre" or "post" normalization;
    - `num_layers`: the depth;
    - `layer_{i}/key_dim`: the size of layer i's attention heads;
    - `layer_{i}/heads`: its number of heads (a name: "1", "2", ...);
    - `layer_{i}/ff_units`: its feed-forward width (a name: "64", ...);
    - `pooling`: "avg", "max" or "last" position, then dropout and the head.

    In a supernet (one-shot strategies) `num_layers`, `layer_{i}/heads`,
    `layer_{i}/ff_units` and `pooling` are shared decisions; `model_dim`,
    `norm` and `layer_{i}/key_dim` cannot be shared (they change the shape or
    wiring of every candidate): a supernet refuses them unless they have one
    value (a space argument or `fixed_values`).

    Args:
        input_shape, num_classes, task, learning_rate, vocabulary_size: see
            `SequenceInputs`.
        min_layers: Smallest depth, at least 1.
        max_layers: Largest depth.
        model_dims: Candidate widths of the residual stream.
        heads: Candidate numbers of attention heads.
        key_dims: Candidate sizes of an attention head.
        ff_units: Candidate feed-forward widths.
        norms: Candidate normalization positions, a subset of ("pre", "post").
        poolings: Candidate poolings, a subset of ("avg", "max", "last").
        dropout: Dropout rate of the sub-layers' outputs and before the head.
    """

    space_name = "transformer"

    def __init__(self, input_shape, num_classes, task="classification",
                 learning_rate=1e-3, vocabulary_size=None, min_layers=1, max_layers=3,
                 model_dims=(32, 64), heads=(1, 2, 4), key_dims=(8, 16, 32),
                 ff_units=(64, 128, 256), norms=NORMS, poolings=("avg", "max"),
                 dropout=0.1):
        super().__init__(input_shape, num_classes, task, learning_rate, vocabulary_size)
        self.min_layers = check_int_range(min_layers, "min_layers", 1)
        self.max_layers = check_int_range(max_layers, "max_layers", self.min_layers)
        self.model_dims = _check_positive(model_dims, "model_dims")
        self.heads = _check_positive(heads, "heads")
        self.key_dims = _check_positive(key_dims, "key_dims")
        self.ff_units = _check_positive(ff_units, "ff_units")
        self.norms = check_choices(norms, "norms", str, NORMS)
        self.poolings = check_choices(poolings, "poolings", str, SequencePooling.KINDS)
        if not 0.0 <= dropout < 1.0:
            raise ValueError("Received an invalid value for `dropout`, expected a number "
                             f"in [0, 1). Received: dropout={dropout!r}")
        self.dropout = float(dropout)

    def build_features(self, hp, inputs):
        model_dim = decisions.choose_value(
            hp, "model_dim", list(self.model_dims), shareable=False,
            how_to_fix="search one width, e.g. --space-arg 'model_dims=[64]'.")
        pre_norm = decisions.choose_value(
            hp, "norm", list(self.norms), shareable=False,
            how_to_fix="search one placement, e.g. --space-arg 'norms=[\"pre\"]'.") == "pre"
        x = PositionEmbedding()(sequence_stem(inputs, model_dim, self.vocabulary_size))

        # Layers with weights are named "{role}.{variant}", their keys for
        # weight inheritance (tfnas.inheritance): "layer_1.attention_h4",
        # "layer_1.attention_norm", "layer_1.ff_128", "layer_1.ff_norm", ...
        def sublayer(x, name, candidates, key):
            def norm(x):
                return keras.layers.LayerNormalization(epsilon=1e-5, name=f"{key}_norm")(x)

            h = norm(x) if pre_norm else x
            h = decisions.choose_op(hp, name, candidates)(h)
            if self.dropout:
                h = keras.layers.Dropout(self.dropout)(h)
            x = keras.layers.Add()([x, h])
            return x if pre_norm else norm(x)

        def layer(index, x):
            key_dim = decisions.choose_value(
                hp, f"layer_{index}/key_dim", list(self.key_dims), shareable=False,
                how_to_fix="search one key dimension, e.g. --space-arg 'key_dims=[16]'.")
            key = f"layer_{index}.attention"
            x = sublayer(x, f"layer_{index}/heads", {
                str(h): (lambda h=h: SelfAttention(h, key_dim, name=f"{key}_h{h}"))
                for h in self.heads}, key)
            key = f"layer_{index}.ff"
            return sublayer(x, f"layer_{index}/ff_units", {
                str(u): (lambda u=u: FeedForward(u, dropout=self.dropout, name=f"{key}_{u}"))
                for u in self.ff_units}, key)

        depths = range(self.min_layers, self.max_layers + 1)
        x = decisions.repeat(hp, "num_layers", layer, x, depths=depths)
        if pre_norm:
            x = keras.layers.LayerNormalization(epsilon=1e-5, name="encoder.norm")(x)
        x = decisions.choose_op(hp, "pooling", {
            kind: (lambda kind=kind: SequencePooling(kind)) for kind in self.poolings})(x)
        return keras.layers.Dropout(self.dropout)(x) if self.dropout else x

    def size(self):
        per_layer = len(self.key_dims) * len(self.heads) * len(self.ff_units)
        depths = sum(per_layer ** d for d in range(self.min_layers, self.max_layers + 1))
        return len(self.model_dims) * len(self.norms) * len(self.poolings) * depths

    def describe(self, values):
        layers = [f"att{values[f'layer_{i}/heads']}x{values[f'layer_{i}/key_dim']}"
                  f"-ff{values[f'layer_{i}/ff_units']}" for i in range(values["num_layers"])]
        return " > ".join([f"d{values['model_dim']} {values['norm']}-norm", *layers,
                           f"{values['pooling']}pool"])

    def get_config(self):
        return {**super().get_config(), "min_layers": self.min_layers,
                "max_layers": self.max_layers, "model_dims": list(self.model_dims),
                "heads": list(self.heads), "key_dims": list(self.key_dims),
                "ff_units": list(self.ff_units), "norms": list(self.norms),
                "poolings": list(self.poolings), "dropout": self.dropout}
