"""Building a space's supernet from its one definition.

`build_supernet(space, mode)` builds a tfnas space with a `SupernetBuilder`
as its decisions' meaning (see `tfnas.decisions`): every `choose_op` becomes
a `MixedOp` of all its candidates; every `choose_inputs` a `MixedOp` over
the allowed input subsets (one per input, on/off, for any-subset choices);
every `repeat` a `MixedOp` over the outputs at each allowed depth. Plain
KerasTuner hyperparameters of the space (e.g. a layer's width) keep one
value: their default, or the one given in `fixed_values`.
"""

import contextlib
import itertools
import re

import keras
import keras_tuner as kt

from tfnas import decisions
from tfnas.supernet.mixed import MixedOp

ON_OFF = ("False", "True")


@keras.saving.register_keras_serializable(package="tfnas")
class SelectInputs(keras.layers.Layer):
    """Merges the inputs at `indices` of a list of tensors ("sum", "mean" or
    "concat", along the last axis).

    With `zero=True`, returns zeros shaped like the first selected input (an
    input switched off).
    """

    def __init__(self, indices, merge="sum", zero=False, **kwargs):
        super().__init__(**kwargs)
        self.indices = [int(i) for i in indices]
        if not self.indices or merge not in decisions.MERGE_MODES:
            raise ValueError(
                f"Expected at least one index and `merge` one of {decisions.MERGE_MODES}. "
                "Received: "
                f"indices={indices}, merge={merge!r}")
        self.merge = merge
        self.zero = bool(zero)

    def call(self, inputs):
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
        if self.merge == "concat" and not self.zero and len(self.indices) > 1:
            channels = [input_shape[i][-1] for i in self.indices]
            total = None if None in channels else sum(channels)
            return (*shape[:-1], total)
        return shape

    def get_config(self):
        return {**super().get_config(), "indices": self.indices, "merge": self.merge,
                "zero": self.zero}


def layer_name(decision):
    """A Keras layer name for a decision name ("cell/block_0/op_1" ->
    "mixed__cell__block_0__op_1")."""
    return "mixed__" + re.sub(r"[^0-9A-Za-z_]", "__", decision)


class SupernetBuilder(decisions.DecisionBuilder):
    """Builds every candidate of every decision, mixed in `mode`.

    After a build, `mixed` maps each decision name to its `MixedOp` (an
    any-subset input choice has one per input, named `f"{name}/{label}"`,
    with candidates "False" and "True", like the boolean decisions of a
    multi-trial build).
    """

    def __init__(self, mode="darts", seed=None):
        self.mode = mode
        self.seed = seed
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
        return self._mixed(name, [factory() for factory in candidates.values()],
                           list(candidates))

    def inputs(self, hp, name, inputs, labels, n_chosen, merge_mode):
        if merge_mode == "concat" and n_chosen is None:
            # k-of-n concatenations all have k inputs' channels: they mix.
            raise ValueError(
                f"Input choice `{name}`: a supernet mixes merged inputs, which "
                "needs equal shapes; merge='concat' of any subset of the inputs "
                "gives as many shapes as subset sizes. Use merge='sum' or 'mean', "
                "or a fixed `n_chosen`.")
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
        outputs = {0: x}
        for index in range(max(depths)):
            with hp.conditional_scope(name, [d for d in depths if d > index]):
                x = block(index, x)
            outputs[index + 1] = x
        candidates = [SelectInputs([position]) for position in range(len(depths))]
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
        `(model, builder)`: the compiled supernet and the `SupernetBuilder`
        whose `mixed` maps decision names to mixed layers.
    """
    builder = SupernetBuilder(mode, seed=seed)
    model = space.build(SupernetHyperParameters(builder, fixed_values))
    return model, builder
