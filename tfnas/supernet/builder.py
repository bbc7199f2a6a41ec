"""Building a space's supernet from its one definition.

`build_supernet(space, mode)` builds a tfnas space with a `SupernetBuilder`
as its decisions' meaning (see `tfnas.decisions`): every `choose_op` becomes
a `MixedOp` of all its candidates; every `choose_inputs` a `MixedOp` over
the allowed input subsets (one per input, on/off, for any-subset choices);
every `repeat` a `MixedOp` over the outputs at each allowed depth (those
that differ only in channels, like a cell concatenating its blocks, are
zero-padded to the widest, as elastic widths mask channels); every
`choose_value` a `SharedValue` whose `MixedOp` mixes one-hot selectors that
elastic layers weight their shared weights by (`tfnas.supernet.elastic`).
Plain KerasTuner hyperparameters of the space and `choose_value(...,
shareable=False)` decisions cannot be shared: the build refuses them unless
they have one value or are given in `fixed_values`.
"""

import contextlib
import itertools
import re

import keras
import keras_tuner as kt

from tfnas import decisions
from tfnas.optimizers import FusedAdam
from tfnas.supernet.batch_norm import supernet_scope
from tfnas.supernet.elastic import ElasticLayer
from tfnas.supernet.mixed import MixedOp
from tfnas.supernet.values import SharedValue, roots

ON_OFF = ("False", "True")


@keras.saving.register_keras_serializable(package="tfnas")
class SelectInputs(keras.layers.Layer):
    """Merges the inputs at `indices` of a list of tensors ("sum", "mean" or
    "concat", along the last axis).

    With `zero=True`, returns zeros shaped like the first selected input (an
    input switched off). With `channels`, the result is zero-padded along the
    last axis to that many channels (a depth whose output is narrower than
    another depth's).
    """

    def __init__(self, indices, merge="sum", zero=False, channels=None, **kwargs):
        super().__init__(**kwargs)
        self.indices = [int(i) for i in indices]
        if not self.indices or merge not in decisions.MERGE_MODES:
            raise ValueError(
                f"Expected at least one index and `merge` one of {decisions.MERGE_MODES}. "
                "Received: "
                f"indices={indices}, merge={merge!r}")
        self.merge = merge
        self.zero = bool(zero)
        self.channels = None if channels is None else int(channels)

    def call(self, inputs):
        return _pad_channels(self._select(inputs), self.channels)

    def _select(self, inputs):
        chosen = [inputs[i] for i in self.indices]
        if self.zero:
            return keras.ops.zeros_like(chosen[0])
        if self.merge == "concat":
            return keras.ops.concatenate(chosen, axis=-1) if len(chosen) > 1 else chosen[0]
        total = chosen[0]
        for tensor in chosen[1:]:
            total = total + tensor
        return total / len(chosen) if self.merge == "mean" else total

    def compute_output_shape(self, input_shape):
        shape = input_shape[self.indices[0]]
        if self.channels is not None:
            return (*shape[:-1], self.channels)
        if self.merge == "concat" and not self.zero and len(self.indices) > 1:
            channels = [input_shape[i][-1] for i in self.indices]
            total = None if None in channels else sum(channels)
            return (*shape[:-1], total)
        return shape

    def get_config(self):
        return {**super().get_config(), "indices": self.indices, "merge": self.merge,
                "zero": self.zero, "channels": self.channels}


def _pad_channels(x, channels):
    """`x` zero-padded along its last axis to `channels` (None: unchanged)."""
    missing = 0 if channels is None else channels - x.shape[-1]
    if missing <= 0:
        return x
    padding = [(0, 0)] * (len(x.shape) - 1) + [(0, missing)]
    return keras.ops.pad(x, padding)


def layer_name(decision):
    """A Keras layer name for a decision name ("cell/block_0/op_1" ->
    "mixed__cell__block_0__op_1")."""
    return "mixed__" + re.sub(r"[^0-9A-Za-z_]", "__", decision)


@keras.saving.register_keras_serializable(package="tfnas")
class OnInput(keras.layers.Layer):
    """Applies `layer` to the "x" of an elastic layer's inputs (a candidate
    of an operation choice whose other candidates are elastic)."""

    def __init__(self, layer, **kwargs):
        super().__init__(**kwargs)
        self.layer = layer

    def build(self, input_shape):
        if not self.layer.built:
            self.layer.build(input_shape["x"])

    def call(self, inputs, training=None):
        return self.layer(inputs["x"], training=training)

    def get_config(self):
        return {**super().get_config(),
                "layer": keras.saving.serialize_keras_object(self.layer)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["layer"] = keras.saving.deserialize_keras_object(config["layer"])
        return cls(**config)


class _BoundMixed:
    """An operation choice of elastic candidates: called on a tensor, it
    calls the `MixedOp` on the tensor and the selectors of its candidates'
    shared decisions."""

    def __init__(self, mixed, shared):
        self.mixed, self.shared = mixed, shared

    def __call__(self, x):
        return self.mixed({"x": x, **{value.name: value.selector(x) for value in self.shared}})


def refuse(name, values, reason, how_to_fix):
    """The error of a decision that a supernet cannot share weights across."""
    return ValueError(
        f"Decision `{name}` (values {values}) cannot be searched with weight sharing: "
        f"{reason} Fix it before a one-shot search: {how_to_fix}")


class SupernetBuilder(decisions.DecisionBuilder):
    """Builds every candidate of every decision, mixed in `mode`.

    After a build, `mixed` maps each decision name to its `MixedOp` (an
    any-subset input choice has one per input, named `f"{name}/{label}"`,
    with candidates "False" and "True", like the boolean decisions of a
    multi-trial build).
    """

    def __init__(self, mode="darts", seed=None, fixed=()):
        self.mode = mode
        self.seed = seed
        self.fixed = set(fixed)  # decision names whose value is given
        self.declared = set()  # decision names declared with the primitives
        self.shared = {}  # decision name -> SharedValue
        self.mixed = {}  # decision name -> its first MixedOp (the alpha owner)
        self.copies = {}  # decision name -> number of MixedOps built for it
        self.values = {}  # decision name -> the decision value of each candidate

    def _mixed(self, name, candidates, labels, values=None):
        """A MixedOp for decision `name`; a decision met again (the same
        choice in another cell) shares the first one's alpha. `values` are
        the decision's values, one per candidate (the labels by default)."""
        self.values[name] = list(labels if values is None else values)
        owner = self.mixed.get(name)
        self.copies[name] = self.copies.get(name, 0) + 1
        suffix = "" if owner is None else f"__{self.copies[name]}"
        seed = None if self.seed is None else self.seed + len(self.mixed)
        layer = MixedOp(candidates, labels, mode=self.mode, seed=seed, alpha_owner=owner,
                        name=layer_name(name) + suffix)
        self.mixed.setdefault(name, layer)
        return layer

    def op(self, hp, name, candidates, default):
        hp.Choice(name, list(candidates), default=default)  # the space's decision
        self.declared.add(name)
        layers = [factory() for factory in candidates.values()]
        shared = roots(*[value for layer in layers if isinstance(layer, ElasticLayer)
                         for value in layer.shared])
        if shared:  # every candidate takes the elastic inputs
            layers = [layer if isinstance(layer, ElasticLayer) else OnInput(layer)
                      for layer in layers]
        mixed = self._mixed(name, layers, list(candidates))
        return _BoundMixed(mixed, shared) if shared else mixed

    def value(self, hp, name, values, default, shareable, how_to_fix):
        chosen = hp.Choice(name, values, default=default)
        self.declared.add(name)
        if name in self.fixed or len(values) == 1:
            return chosen
        if not shareable:
            raise refuse(name, values, "its values give tensors of different shapes to "
                         "the layers after it, so no supernet holds them all.",
                         how_to_fix or f"fix it with fixed_values={{{name!r}: ...}}.")
        if name not in self.shared:
            self.shared[name] = SharedValue(name, values, self)
        return self.shared[name]

    def inputs(self, hp, name, inputs, labels, n_chosen, merge_mode):
        if merge_mode == "concat" and n_chosen is None:
            # k-of-n concatenations all have k inputs' channels: they mix.
            raise ValueError(
                f"Input choice `{name}`: a supernet mixes merged inputs, which "
                "needs equal shapes; merge='concat' of any subset of the inputs "
                "gives as many shapes as subset sizes. Use merge='sum' or 'mean', "
                "or a fixed `n_chosen`.")
        self.declared.update([name] + [f"{name}/{label}" for label in labels])
        if n_chosen is None:
            gated = []
            for index, label in enumerate(labels):
                hp.Boolean(f"{name}/{label}", default=False)
                gate = self._mixed(f"{name}/{label}", [
                    SelectInputs([index], zero=True), SelectInputs([index])], list(ON_OFF),
                    values=[False, True])
                gated.append(gate(inputs))
            return decisions.merge(gated, "sum")
        subsets = list(itertools.combinations(range(len(inputs)), n_chosen))
        subset_labels = [decisions.subset_label([labels[i] for i in s]) for s in subsets]
        hp.Choice(name, subset_labels)
        return self._mixed(name, [SelectInputs(s, merge_mode) for s in subsets],
                           subset_labels)(inputs)

    def repeat(self, hp, name, block, x, depths, default):
        hp.Choice(name, depths, default=default)
        self.declared.add(name)
        outputs = {0: x}
        for index in range(max(depths)):
            with hp.conditional_scope(name, [d for d in depths if d > index]):
                x = block(index, x)
            outputs[index + 1] = x
        widths = {outputs[d].shape[-1] for d in depths}
        # Depths that differ only in channels share the widest's: the narrower
        # are zero-padded (the next layer's weights on the padding get no
        # signal, as an elastic width's masked channels).
        widest = max(widths) if len(widths) > 1 and None not in widths else None
        candidates = [SelectInputs([position], channels=widest)
                      for position in range(len(depths))]
        return self._mixed(name, candidates, [str(d) for d in depths], values=depths)(
            [outputs[d] for d in depths])


class SupernetHyperParameters(kt.HyperParameters):
    """HyperParameters whose decisions are built as a supernet."""

    def __init__(self, builder, fixed_values=None):
        super().__init__()
        self.tfnas_builder = builder
        self.values.update(fixed_values or {})

    def conditional_scope(self, parent_name, parent_values):
        # Every repetition exists in a supernet: no condition may switch
        # the plain hyperparameters inside one off.
        return contextlib.nullcontext()


def build_supernet(space, mode="darts", fixed_values=None, seed=None):
    """Builds the supernet of `space`.

    Args:
        space: A tfnas space (any `HyperModel` built with the primitives of
            `tfnas.decisions`).
        mode: The mixing mode, one of `tfnas.supernet.MODES`.
        fixed_values: Values of the space's plain hyperparameters.
        seed: Seed of the mixed layers' sampling.

    Returns:
        `(model, builder)`: the compiled supernet (a space's Keras Adam
        becomes the same `tfnas.optimizers.FusedAdam`) and the
        `SupernetBuilder` whose `mixed` maps decision names to mixed layers.
    """
    builder = SupernetBuilder(mode, seed=seed, fixed=fixed_values or {})
    hp = SupernetHyperParameters(builder, fixed_values)
    with supernet_scope():  # its batch normalizations on the fused kernel
        model = space.build(hp)
    check_shareable(hp, builder)
    if type(getattr(model, "optimizer", None)) is keras.optimizers.Adam:
        # The same Adam, one op per variable: a supernet has hundreds of
        # weight variables (see tfnas.optimizers).
        model.optimizer = FusedAdam.from_config(model.optimizer.get_config())
    return model, builder


def check_shareable(hp, builder):
    """Refuses plain hyperparameters of more than one value that are not
    fixed: a supernet would silently keep them at their default.

    Raises:
        ValueError: naming the first such hyperparameter.
    """
    for parameter in hp.space:
        name = parameter.name
        if (name in builder.declared or name in builder.fixed
                or isinstance(parameter, kt.engine.hyperparameters.Fixed)):
            continue
        values = getattr(parameter, "values", None)
        if values is not None and len(values) <= 1:
            continue
        raise refuse(
            name, values if values is not None else parameter.get_config(),
            "it is a plain KerasTuner hyperparameter, which a supernet keeps at one value.",
            "declare it with tfnas.choose_value (or choose_op, choose_inputs, repeat) in "
            f"the space, or fix it with fixed_values={{{name!r}: ...}}.")
