"""A chain-structured convolutional space (macro search, no skips)."""

import functools

import keras
import keras_tuner as kt

from tfnas import decisions
from tfnas.spaces import ops


class ChainSpace(kt.HyperModel):
    """A chain of 1 to `max_layers` layers, each a chosen operation.

    Decisions, with the names they have in a trial's values:

    - `num_layers`: how many layers (`min_layers` to `max_layers`);
    - `layer_{i}/op`: the operation of layer i (see `tfnas.spaces.ops`);
    - `layer_{i}/filters`: its filters, active only for convolutions.

    The chain ends in global average pooling and a softmax classifier; the
    model is compiled with Adam and sparse categorical cross-entropy.

    Args:
        input_shape: Shape of one input image, (height, width, channels).
        num_classes: Number of classes, at least 2.
        min_layers: Smallest number of layers, at least 1.
        max_layers: Largest number of layers.
        filters: Candidate filter counts of a convolution.
        operations: Candidate operations, a subset of `tfnas.spaces.ops.OPS`.
        learning_rate: Adam's learning rate.
    """

    def __init__(
        self,
        input_shape,
        num_classes,
        min_layers=1,
        max_layers=4,
        filters=(16, 32, 64),
        operations=ops.OPS,
        learning_rate=1e-3,
        name="chain",
    ):
        super().__init__(name=name)
        input_shape = tuple(int(dim) for dim in input_shape)
        if len(input_shape) != 3 or min(input_shape) < 1:
            raise ValueError(
                "Received an invalid value for `input_shape`, expected "
                f"(height, width, channels). Received: input_shape={input_shape}"
            )
        if not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(
                "Received an invalid value for `num_classes`, expected an "
                f"integer >= 2. Received: num_classes={num_classes!r}"
            )
        if not 1 <= min_layers <= max_layers:
            raise ValueError(
                "Expected 1 <= min_layers <= max_layers. Received: "
                f"min_layers={min_layers}, max_layers={max_layers}"
            )
        filters = [int(f) for f in filters]
        if not filters or min(filters) < 1:
            raise ValueError(
                "Received an invalid value for `filters`, expected positive "
                f"integers. Received: filters={filters}"
            )
        unknown = [op for op in operations if op not in ops.OPS]
        if not operations or unknown:
            raise ValueError(
                f"Received an invalid value for `operations`, expected a "
                f"non-empty subset of {ops.OPS}. Received unknown: {unknown}"
            )
        self.input_shape = input_shape
        self.num_classes = num_classes
        self.min_layers = min_layers
        self.max_layers = max_layers
        self.filters = filters
        self.operations = list(operations)
        self.learning_rate = float(learning_rate)

    def _operation(self, hp, index, op):
        """Layer `index` with operation `op`; its filters are a decision
        that is active only when the chosen operation is a convolution."""
        conv_ops = [name for name in self.operations if name in ops.CONV_OPS]
        if op not in ops.CONV_OPS:
            if conv_ops:  # Record the scope so KerasTuner can discover it.
                with hp.conditional_scope(f"layer_{index}/op", conv_ops):
                    pass
            return ops.pool(op)
        with hp.conditional_scope(f"layer_{index}/op", conv_ops):
            filters = hp.Choice(f"layer_{index}/filters", self.filters)
        return ops.conv_bn_relu(op, filters)

    def build(self, hp):
        inputs = keras.Input(self.input_shape)

        def layer(index, x):
            candidates = {
                op: functools.partial(self._operation, hp, index, op)
                for op in self.operations
            }
            return decisions.choose_op(hp, f"layer_{index}/op", candidates)(x)

        x = decisions.repeat(
            hp,
            "num_layers",
            layer,
            inputs,
            depths=range(self.min_layers, self.max_layers + 1),
        )
        x = keras.layers.GlobalAveragePooling2D()(x)
        outputs = keras.layers.Dense(self.num_classes, activation="softmax")(x)
        model = keras.Model(inputs, outputs, name="chain_candidate")
        model.compile(
            optimizer=keras.optimizers.Adam(self.learning_rate),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        return model

    def get_config(self):
        return {
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "min_layers": self.min_layers,
            "max_layers": self.max_layers,
            "filters": list(self.filters),
            "operations": list(self.operations),
            "learning_rate": self.learning_rate,
        }
