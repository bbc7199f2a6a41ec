"""Values that depend on decisions shared by a supernet (NNI's ValueChoice).

In a supernet, `tfnas.choose_value` returns a `SharedValue` instead of a
plain value: one decision whose values all share one set of weights. A
`ValueExpr` is a value computed from shared decisions (a width times a
multiplier, input channels times an expansion), kept as a table with one
entry per combination of the decisions' values.

Inside the model, a shared decision is a `MixedOp` over one-hot vectors
(`OneHot`), computed once per forward pass: its output, the decision's
*selector*, is softmax(alpha) for DARTS, the straight-through one-hot of the
sampled value for GDAS, the binary gates of the sampled pair for
ProxylessNAS, the one-hot of the set index for SPOS and ENAS. Elastic layers
(`tfnas.supernet.elastic`) weight their masks or branches by it, so every
mode samples and mixes a shared decision as a `MixedOp` would, with one alpha
vector per decision.
"""

import itertools

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="tfnas")
class OneHot(keras.layers.Layer):
    """The constant one-hot vector of candidate `index` out of `count` (the
    candidates of a shared decision's `MixedOp`; its input is ignored)."""

    def __init__(self, index, count, **kwargs):
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)
        self.index, self.count = int(index), int(count)

    def call(self, inputs):
        return tf.one_hot(self.index, self.count, dtype="float32")

    def compute_output_shape(self, input_shape):
        return (self.count,)

    def get_config(self):
        return {**super().get_config(), "index": self.index, "count": self.count}


class ValueExpr:
    """A value that depends on shared decisions.

    Args:
        parts: The `SharedValue`s it depends on (distinct).
        table: Its value for every combination of their values' indices, in
            `itertools.product` order.
    """

    def __init__(self, parts, table):
        self.parts = list(parts)
        self.table = list(table)

    @classmethod
    def constant(cls, value):
        return cls([], [value])

    @property
    def names(self):
        return [part.name for part in self.parts]

    @property
    def values(self):
        """Its distinct values, in table order."""
        return list(dict.fromkeys(self.table))

    @property
    def maximum(self):
        return max(self.table)

    def assignments(self):
        """Index combinations of the parts' values, in table order."""
        return list(itertools.product(*[range(len(p.choices)) for p in self.parts]))

    def at(self, indices_by_name):
        """Its value when each part has the value index given by name."""
        flat = 0
        for part in self.parts:
            flat = flat * len(part.choices) + indices_by_name[part.name]
        return self.table[flat]

    def map(self, function):
        """`function` of this value, for every combination."""
        return ValueExpr(self.parts, [function(value) for value in self.table])

    def combine(self, other, function):
        """`function(self, other)` for every combination of both's parts."""
        other = as_expr(other)
        parts = self.parts + [p for p in other.parts if p.name not in self.names]
        table = []
        for indices in itertools.product(*[range(len(p.choices)) for p in parts]):
            by_name = dict(zip([p.name for p in parts], indices))
            table.append(function(self.at(by_name), other.at(by_name)))
        return ValueExpr(parts, table)

    def weights(self, selectors):
        """One weight per table entry: the product of the parts' selector
        entries (`selectors` maps decision names to selector tensors)."""
        weights = []
        for indices in self.assignments():
            weight = tf.constant(1.0)
            for part, index in zip(self.parts, indices):
                # float32 even where a mixed-precision layer cast its inputs.
                weight = weight * tf.cast(selectors[part.name][index], "float32")
            weights.append(weight)
        return weights

    def spec(self):
        """Plain data describing the expression (for layer configs)."""
        return {"decisions": [[p.name, list(p.choices)] for p in self.parts],
                "table": list(self.table)}


class SharedValue(ValueExpr):
    """A decision shared by a supernet: `choices` share one set of weights.

    Args:
        name: The decision's name (its KerasTuner hyperparameter).
        choices: Its values, as the hyperparameter lists them.
        builder: The `SupernetBuilder` that owns its `MixedOp`.
    """

    def __init__(self, name, choices, builder):
        self.name = name
        self.choices = list(choices)
        self.builder = builder
        self._selector = None
        super().__init__([self], self.choices)

    @property
    def mode(self):
        return self.builder.mode

    def selector(self, x):
        """The decision's selector tensor, created once per supernet (on the
        first consumer's input `x`) and shared by every consumer, so that a
        sampled value is the same everywhere in one forward pass."""
        if self._selector is None:
            count = len(self.choices)
            layer = self.builder._mixed(
                self.name, [OneHot(i, count, name=f"{_safe(self.name)}__{i}")
                            for i in range(count)],
                [str(v) for v in self.choices], values=self.choices)
            self._selector = layer(x)
        return self._selector

    def support(self):
        """ProxylessNAS: the values its decision sampled at the last training
        call (1.0, else 0.0; `MixedOp.support`), read after `selector`."""
        return tf.convert_to_tensor(self.builder.mixed[self.name].support)


def _safe(name):
    return "onehot__" + "".join(c if c.isalnum() or c == "_" else "_" for c in name)


def as_expr(value):
    """`value` as a `ValueExpr` (a constant unless it already is one)."""
    return value if isinstance(value, ValueExpr) else ValueExpr.constant(value)


def is_shared(*values):
    """Whether any of `values` depends on a shared decision."""
    return any(isinstance(v, ValueExpr) and v.parts for v in values)


def roots(*values):
    """The distinct shared decisions that `values` depend on, in order."""
    found = {}
    for value in values:
        if isinstance(value, ValueExpr):
            for part in value.parts:
                found.setdefault(part.name, part)
    return list(found.values())
