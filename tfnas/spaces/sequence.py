"""The sequence space: 1-D convolutions, GRU/LSTM and self-attention blocks."""

import keras

from tfnas import decisions
from tfnas.spaces import ops
from tfnas.spaces.base import SearchSpace, chain_graph, check_choices, check_int_range
from tfnas.spaces.sequence_ops import AttentionBlock, SequencePooling, sequence_stem

BLOCK_OPS = ("conv3", "conv5", "conv7", "sepconv5", "gru", "lstm", "attention")
POOLINGS = SequencePooling.KINDS


class SequenceInputs(SearchSpace):
    """What the sequence spaces share: token ids or numeric series in.

    With `vocabulary_size`, an input example is `(length,)` integer token ids
    (0 to `vocabulary_size` - 1, e.g. from a `TextVectorization` layer) that the
    model embeds; without, a float series `(length, features)` (time
    series, audio features) or `(length,)` (one feature).

    Args:
        input_shape, num_classes, task, learning_rate: see `SearchSpace`.
        vocabulary_size: Token vocabulary size for `(length,)` token ids, or
            None for numeric series.
    """

    input_rank = (1, 2)

    def __init__(self, input_shape, num_classes, task="classification",
                 learning_rate=1e-3, vocabulary_size=None):
        super().__init__(input_shape, num_classes, task, learning_rate)
        if vocabulary_size is not None:
            check_int_range(vocabulary_size, "vocabulary_size", 2,
                            expected="None or an integer >= 2")
            if len(self.input_shape) != 1:
                raise ValueError(
                    "Received an invalid value for `input_shape`, expected (length,) "
                    "token ids with `vocabulary_size`. Received: "
                    f"input_shape={self.input_shape}, vocabulary_size={vocabulary_size}")
            self.input_dtype = "int32"
        self.vocabulary_size = vocabulary_size

    def get_config(self):
        return {**super().get_config(), "vocabulary_size": self.vocabulary_size}


def _check_positive(values, name):
    values = check_choices(values, name, int)
    if min(values) < 1:
        raise ValueError(f"Received an invalid value for `{name}`, expected positive "
                         f"integers. Received: {name}={values}")
    return values


class SequenceSpace(SequenceInputs):
    """A stack of searched blocks over a sequence, with skips and depth.

    The input is embedded (token ids) or projected (numeric series) to
    `width` channels; then `min_blocks` to `max_blocks` blocks, each one of
    `operations`, all `width` wide:

    - "conv3", "conv5", "conv7": a 1-D convolution of that kernel, batch
      norm, ReLU; "sepconv5": its depthwise-separable version;
    - "gru", "lstm": a recurrent layer returning the whole sequence;
    - "attention": residual multi-head self-attention (4 heads) and layer
      normalization.

    Decisions, with their names in a trial's values:

    - `width`: the channels of every block;
    - `num_blocks`: the depth;
    - `block_{i}/op`: the operation of block i;
    - `block_{i}/stride`: 2 halves the length after the block (max pooling);
    - `block_{i}/skip/{j}` (when `skips`): whether block j < i's output is
      added to block i's (average pooled to the same length);
    - `pooling`: how the sequence becomes one vector, "avg", "max" or
      "last" (then dropout and the head).

    In a supernet (one-shot strategies) `block_{i}/op`, the skips,
    `num_blocks` and `pooling` are shared decisions; `width` and the strides
    cannot be shared: a supernet refuses them unless they have one value (a
    space argument or `fixed_values`).

    Args:
        input_shape, num_classes, task, learning_rate, vocabulary_size: see
            `SequenceInputs`.
        min_blocks: Smallest depth, at least 1.
        max_blocks: Largest depth.
        operations: Candidate operations, a subset of `BLOCK_OPS`.
        widths: Candidate widths.
        strides: Candidate strides, a subset of (1, 2).
        poolings: Candidate poolings, a subset of `POOLINGS`.
        skips: Whether skip connections are searched.
        dropout: Dropout rate before the head.
    """

    space_name = "sequence"

    def __init__(self, input_shape, num_classes, task="classification",
                 learning_rate=3e-3, vocabulary_size=None, min_blocks=1, max_blocks=4,
                 operations=BLOCK_OPS, widths=(32, 64), strides=(1, 2),
                 poolings=("avg", "max"), skips=True, dropout=0.1):
        super().__init__(input_shape, num_classes, task, learning_rate, vocabulary_size)
        self.min_blocks = check_int_range(min_blocks, "min_blocks", 1)
        self.max_blocks = check_int_range(max_blocks, "max_blocks", self.min_blocks)
        self.operations = check_choices(operations, "operations", str, BLOCK_OPS)
        self.widths = _check_positive(widths, "widths")
        self.strides = check_choices(strides, "strides", int, (1, 2))
        self.poolings = check_choices(poolings, "poolings", str, POOLINGS)
        self.skips = bool(skips)
        if not 0.0 <= dropout < 1.0:
            raise ValueError("Received an invalid value for `dropout`, expected a number "
                             f"in [0, 1). Received: dropout={dropout!r}")
        self.dropout = float(dropout)

    @staticmethod
    def _block(op, width, name):
        if op.startswith("conv"):
            return ops.ConvBN(width, int(op[4:]), activation="relu", name=name)
        if op == "sepconv5":
            return ops.ConvBN(width, 5, kind="separable", activation="relu", name=name)
        if op == "gru":
            return keras.layers.GRU(width, return_sequences=True, name=name)
        if op == "lstm":
            return keras.layers.LSTM(width, return_sequences=True, name=name)
        return AttentionBlock(heads=4, name=name)

    def build_features(self, hp, inputs):
        width = decisions.choose_value(
            hp, "width", list(self.widths), shareable=False,
            how_to_fix="search one width, e.g. --space-arg 'widths=[64]'.")
        x = sequence_stem(inputs, width, self.vocabulary_size)
        outputs, reductions = [], []  # per block: output, stride-2 count so far

        def block(index, x):
            # "block_{i}.{op}": the block's key for weight inheritance (tfnas.inheritance)
            candidates = {op: (lambda op=op: self._block(op, width, f"block_{index}.{op}"))
                          for op in self.operations}
            y = decisions.choose_op(hp, f"block_{index}/op", candidates)(x)
            stride = decisions.choose_value(
                hp, f"block_{index}/stride", list(self.strides), shareable=False,
                how_to_fix="search one stride, e.g. --space-arg 'strides=[1]'.")
            if stride == 2:
                y = keras.layers.MaxPooling1D(2, padding="same")(y)
            reduced = (reductions[-1] if reductions else 0) + (stride == 2)
            if self.skips:
                sources = [ops.Shortcut(reductions=reduced - done,
                                        name=f"block_{index}_skip_{j}.shortcut")(source)
                           for j, (source, done) in enumerate(zip(outputs, reductions))]
                y = decisions.add_chosen_inputs(hp, f"block_{index}/skip", y, sources)
            outputs.append(y)
            reductions.append(reduced)
            return y

        depths = range(self.min_blocks, self.max_blocks + 1)
        x = decisions.repeat(hp, "num_blocks", block, x, depths=depths)
        x = decisions.choose_op(hp, "pooling", {
            kind: (lambda kind=kind: SequencePooling(kind)) for kind in self.poolings})(x)
        return keras.layers.Dropout(self.dropout)(x) if self.dropout else x

    def size(self):
        per_block = len(self.operations) * len(self.strides)
        total = 0
        for depth in range(self.min_blocks, self.max_blocks + 1):
            count = 1
            for index in range(depth):
                count *= per_block * (2 ** index if self.skips else 1)
            total += count
        return total * len(self.widths) * len(self.poolings)

    @staticmethod
    def _block_label(values, index, skips=()):
        label = values[f"block_{index}/op"]
        if values.get(f"block_{index}/stride", 1) == 2:
            label += "/2"
        if skips:
            label += "+" + ",".join(str(j) for j in skips)
        return label

    @staticmethod
    def _skips(values, index):
        return [j for j in range(index) if values.get(f"block_{index}/skip/{j}")]

    def describe(self, values):
        blocks = [self._block_label(values, i, self._skips(values, i))
                  for i in range(values["num_blocks"])]
        return " > ".join([f"w{values['width']}", *blocks, f"{values['pooling']}pool"])

    def diagram(self, values):
        depth = values["num_blocks"]
        skips = [(j + 1, i + 1, "") for i in range(depth) for j in self._skips(values, i)]
        layers = [f"stem w{values['width']}"]
        layers += [self._block_label(values, i) for i in range(depth)]
        return [chain_graph(layers + [f"{values['pooling']} pool"], skips)]

    def get_config(self):
        return {**super().get_config(), "min_blocks": self.min_blocks,
                "max_blocks": self.max_blocks, "operations": list(self.operations),
                "widths": list(self.widths), "strides": list(self.strides),
                "poolings": list(self.poolings), "skips": self.skips,
                "dropout": self.dropout}
