"""The chain-structured (macro) space, with ENAS-style skip connections."""

import keras

from tfnas import decisions
from tfnas.spaces import ops
from tfnas.spaces.base import SearchSpace, chain_graph, check_choices, check_int_range
from tfnas.supernet import elastic

CONV_OPS = {
    # name: (kind, kernel, dilation)
    "conv3x3": ("conv", 3, 1),
    "conv5x5": ("conv", 5, 1),
    "sepconv3x3": ("separable", 3, 1),
    "sepconv5x5": ("separable", 5, 1),
    "dilconv3x3": ("separable", 3, 2),
}
POOL_OPS = {"maxpool3x3": "max", "avgpool3x3": "avg"}
OPERATIONS = tuple(CONV_OPS) + tuple(POOL_OPS)


class ChainSpace(SearchSpace):
    """A chain of `min_layers` to `max_layers` layers (macro search).

    On images `(height, width, channels)` or sequences `(length, channels)`
    (e.g. MNIST-1D): the convolutions and poolings are 2-D or 1-D to match,
    and a sequence's features are averaged over its length before the head.

    Decisions, with their names in a trial's values:

    - `num_layers`: the depth;
    - `layer_{i}/op`: the operation of layer i, one of `operations`;
    - `layer_{i}/filters`: the output channels (a pooling is followed by a
      1x1 ConvBN projection to them, so that every operation of a layer
      gives one shape and a supernet can mix them);
    - `layer_{i}/activation`: active only when the operation is a
      convolution;
    - `layer_{i}/stride`: 1 or 2 when `strides=(1, 2)` (a dilated
      convolution with stride 2 is a stride-2 1x1 projection followed by the
      dilated convolution). A stride changes the size of everything after
      it, so a supernet cannot share it: one-shot strategies need a single
      stride (the default);
    - `layer_{i}/skip/{j}` (when `skips`): whether the output of layer j < i
      is added to layer i's output (ENAS macro style). Sources of another
      size or width are reconciled by average pooling and a 1x1 projection,
      so every sampled architecture builds.

    Args:
        input_shape, num_classes, task, learning_rate: see `SearchSpace`.
        min_layers: Smallest depth, at least 1.
        max_layers: Largest depth.
        operations: Candidate operations, a subset of `OPERATIONS`.
        filters: Candidate filter counts of a convolution.
        activations: Candidate activations of a convolution.
        strides: Candidate strides, a subset of (1, 2); (1,) by default, so
            that one-shot strategies can search the space.
        skips: Whether skip connections are searched.
    """

    space_name = "chain"
    input_rank = (2, 3)

    def __init__(self, input_shape, num_classes, task="classification",
                 learning_rate=1e-3, min_layers=1, max_layers=4,
                 operations=OPERATIONS, filters=(16, 32, 64),
                 activations=("relu", "swish"), strides=(1,), skips=True):
        super().__init__(input_shape, num_classes, task, learning_rate)
        self.min_layers = check_int_range(min_layers, "min_layers", 1)
        self.max_layers = check_int_range(max_layers, "max_layers", self.min_layers)
        self.operations = check_choices(operations, "operations", str, OPERATIONS)
        self.filters = check_choices(filters, "filters", int)
        if min(self.filters) < 1:
            raise ValueError(f"Expected positive `filters`. Received: filters={filters}")
        self.activations = check_choices(activations, "activations", str)
        self.strides = check_choices(strides, "strides", int, (1, 2))
        self.skips = bool(skips)

    def _conv_ops(self):
        return [op for op in self.operations if op in CONV_OPS]

    def _operation(self, hp, index, op, stride, filters):
        """Layer `index`'s `op`; the activation exists for convolutions."""
        scope = f"layer_{index}/op"
        conv_ops = self._conv_ops()
        if op in POOL_OPS:
            if conv_ops:  # Record the scope so KerasTuner can discover it.
                with hp.conditional_scope(scope, conv_ops):
                    pass
            return elastic.pool(POOL_OPS[op], strides=stride, filters=filters,
                                name=f"layer_{index}.{op}")
        with hp.conditional_scope(scope, conv_ops):
            activation = decisions.choose_value(hp, f"layer_{index}/activation",
                                                list(self.activations))
        kind, kernel, dilation = CONV_OPS[op]
        name = f"layer_{index}.{op}"  # its key for weight inheritance (tfnas.inheritance)
        if dilation > 1 and stride > 1:
            conv = elastic.conv_bn(filters, kernel, dilation_rate=dilation, kind=kind,
                                   activation=activation)
            return elastic.sequence([ops.Shortcut(strides=2), conv], name=name)
        return elastic.conv_bn(filters, kernel, dilation_rate=dilation, kind=kind,
                               activation=activation, strides=stride, name=name)

    def build_features(self, hp, inputs):
        # per layer: output, its filters, stride-2 count so far
        outputs, widths, reductions = [], [], []

        def layer(index, x):
            stride = decisions.choose_value(
                hp, f"layer_{index}/stride", list(self.strides), shareable=False,
                how_to_fix="search one stride, e.g. --space-arg 'strides=[1]' "
                           "(ChainSpace(strides=(1,))).")
            filters = decisions.choose_value(hp, f"layer_{index}/filters", list(self.filters))
            candidates = {op: (lambda op=op: self._operation(hp, index, op, stride, filters))
                          for op in self.operations}
            y = decisions.choose_op(hp, f"layer_{index}/op", candidates)(x)
            reduced = (reductions[-1] if reductions else 0) + (stride == 2)
            if self.skips:
                sources = [
                    elastic.shortcut(filters=filters, in_filters=width,
                                     reductions=reduced - done,
                                     name=f"layer_{index}_skip_{j}.shortcut")(source)
                    for j, (source, width, done) in enumerate(zip(outputs, widths, reductions))
                ]
                y = decisions.add_chosen_inputs(hp, f"layer_{index}/skip", y, sources)
            outputs.append(y)
            widths.append(filters)
            reductions.append(reduced)
            return y

        depths = range(self.min_layers, self.max_layers + 1)
        features = decisions.repeat(hp, "num_layers", layer, inputs, depths=depths)
        if len(features.shape) == 3:
            features = keras.layers.GlobalAveragePooling1D()(features)
        return features

    def size(self):
        conv, pool = len(self._conv_ops()), len(self.operations) - len(self._conv_ops())
        per_layer = (conv * len(self.activations) + pool) * len(self.filters) * len(
            self.strides)
        total = 0
        for depth in range(self.min_layers, self.max_layers + 1):
            count = 1
            for index in range(depth):
                count *= per_layer * (2 ** index if self.skips else 1)
            total += count
        return total

    @staticmethod
    def _layer_label(values, index, skips=()):
        op = values[f"layer_{index}/op"]
        # Projects from before pooling had filters have none for a pooling.
        details = [str(values[f"layer_{index}/filters"])] if (
            f"layer_{index}/filters" in values) else []
        if op in CONV_OPS:
            details.append(values[f"layer_{index}/activation"])
        if values.get(f"layer_{index}/stride", 1) == 2:
            details.append("s2")
        if skips:
            details.append("+" + ",".join(str(j) for j in skips))
        return op + (f"({' '.join(details)})" if details else "")

    @staticmethod
    def _skips(values, index):
        return [j for j in range(index) if values.get(f"layer_{index}/skip/{j}")]

    def describe(self, values):
        return " > ".join(self._layer_label(values, i, self._skips(values, i))
                          for i in range(values["num_layers"]))

    def diagram(self, values):
        depth = values["num_layers"]
        skips = [(j, i, "") for i in range(depth) for j in self._skips(values, i)]
        return [chain_graph([self._layer_label(values, i) for i in range(depth)], skips)]

    def get_config(self):
        return {**super().get_config(), "min_layers": self.min_layers,
                "max_layers": self.max_layers, "operations": list(self.operations),
                "filters": list(self.filters), "activations": list(self.activations),
                "strides": list(self.strides), "skips": self.skips}
