"""Primitives a search space uses to declare its NAS decisions.

A search space is a `keras_tuner.HyperModel` whose `build(hp)` declares its
decisions with four primitives:

- `choose_op(hp, name, candidates)`: one operation out of named candidates
  (NNI's LayerChoice). Returns a Keras layer.
- `choose_inputs(hp, name, inputs, n_chosen)`: k of n tensors, merged
  (InputChoice). Returns a tensor.
- `repeat(hp, name, block, x, depths)`: a block applied a chosen number of
  times (Repeat). Decisions inside repetitions beyond the chosen depth are
  declared in KerasTuner conditional scopes, so they are inactive: absent from
  a trial's values, and never sampled or mutated by an oracle.
- `choose_value(hp, name, values)`: a value (width, kernel size, expansion,
  on/off, activation, block type) that a supernet shares weights across
  (NNI's ValueChoice). Returns the chosen value; in a supernet, a
  `SharedValue` that the layer factories of `tfnas.supernet.elastic` turn
  into elastic layers. A value that changes shapes (a stride) is declared
  with `shareable=False`: a supernet refuses it unless it is fixed.

Each primitive records its decision as an ordinary KerasTuner hyperparameter,
so any `keras_tuner.Oracle` can search a tfnas space. How a decision becomes
layers is delegated to a `DecisionBuilder` looked up on the `hp` object: the
default, `CandidateBuilder`, builds the one candidate that `hp` selects. A
weight-sharing strategy supplies a `HyperParameters` subclass whose
`tfnas_builder` builds all candidates at once (mixed ops, weighted input
merges, depth mixtures) from the very same space definition.
"""

import itertools

import keras

from tfnas.validation import check_int, is_integer

MERGE_MODES = ("sum", "mean", "concat")


def _check_name(name):
    if not isinstance(name, str) or not name:
        raise ValueError(
            "Received an invalid value for `name`, expected a non-empty "
            f"string. Received: name={name!r}"
        )


def _check_labels(labels, count, argument):
    labels = [str(label) for label in labels]
    if len(labels) != count or len(set(labels)) != count:
        raise ValueError(
            f"Received an invalid value for `{argument}`, expected {count} "
            f"distinct labels. Received: {argument}={labels!r}"
        )
    for label in labels:
        if "+" in label or not label:
            raise ValueError(
                f"Received an invalid value for `{argument}`, labels must be "
                f"non-empty and must not contain '+'. Received: {label!r}"
            )
    return labels


def merge(tensors, mode):
    """Merges a non-empty list of tensors by `mode` ("sum", "mean", "concat")."""
    if len(tensors) == 1:
        return tensors[0]
    if mode == "sum":
        return keras.layers.Add()(tensors)
    if mode == "mean":
        return keras.layers.Average()(tensors)
    return keras.layers.Concatenate(axis=-1)(tensors)


def subset_label(labels):
    """The value of a k-of-n input choice: chosen labels joined by '+'."""
    return "+".join(labels)


class DecisionBuilder:
    """Turns declared decisions into layers. Subclass to change the meaning.

    The multi-trial meaning (`CandidateBuilder`) builds only what a trial
    selected; a supernet meaning builds every candidate and mixes them.
    """

    def op(self, hp, name, candidates, default):
        raise NotImplementedError

    def inputs(self, hp, name, inputs, labels, n_chosen, merge_mode):
        raise NotImplementedError

    def repeat(self, hp, name, block, x, depths, default):
        raise NotImplementedError

    def value(self, hp, name, values, default, shareable, how_to_fix):
        raise NotImplementedError


class CandidateBuilder(DecisionBuilder):
    """Builds the single candidate that the hyperparameter values select."""

    def op(self, hp, name, candidates, default):
        chosen = hp.Choice(name, list(candidates), default=default)
        return candidates[chosen]()

    def inputs(self, hp, name, inputs, labels, n_chosen, merge_mode):
        by_label = dict(zip(labels, inputs))
        if n_chosen is None:
            chosen = [
                label for label in labels if hp.Boolean(f"{name}/{label}", default=False)
            ]
            if not chosen:
                return None
        else:
            subsets = [
                subset_label(combo) for combo in itertools.combinations(labels, n_chosen)
            ]
            chosen = hp.Choice(name, subsets).split("+")
        return merge([by_label[label] for label in chosen], merge_mode)

    def repeat(self, hp, name, block, x, depths, default):
        depth = hp.Choice(name, depths, default=default)
        for index in range(max(depths)):
            # Decisions of repetition `index` exist only for depths beyond it.
            # Entering the scopes of unused repetitions too lets KerasTuner
            # record them as inactive, then activate and discover them.
            with hp.conditional_scope(name, [d for d in depths if d > index]):
                if index < depth:
                    x = block(index, x)
        return x

    def value(self, hp, name, values, default, shareable, how_to_fix):
        return hp.Choice(name, values, default=default)


_CANDIDATE_BUILDER = CandidateBuilder()


def builder_for(hp):
    """The `DecisionBuilder` that gives `hp`'s decisions their meaning."""
    return getattr(hp, "tfnas_builder", None) or _CANDIDATE_BUILDER


def choose_op(hp, name, candidates, default=None):
    """Declares a choice of one operation among named candidates.

    Args:
        hp: The `keras_tuner.HyperParameters` passed to `HyperModel.build`.
        name: The decision's name, unique within the space.
        candidates: A mapping from candidate name (str) to a zero-argument
            callable that returns a new Keras layer (or any callable on
            tensors). Callables are called lazily: only the chosen one in a
            multi-trial build.
        default: The candidate name used when `hp` has no value yet. Defaults
            to the first candidate.

    Returns:
        The layer built by the chosen candidate's factory.
    """
    _check_name(name)
    if not hasattr(candidates, "items") or not candidates:
        raise ValueError(
            "Received an invalid value for `candidates`, expected a non-empty "
            f"mapping from names to layer factories. Received: {candidates!r}"
        )
    for label, factory in candidates.items():
        if not isinstance(label, str) or not label or not callable(factory):
            raise ValueError(
                "Received an invalid value for `candidates`, expected "
                "non-empty string names mapped to callables. "
                f"Received: {label!r}: {factory!r}"
            )
    if default is not None and default not in candidates:
        raise ValueError(
            "Received an invalid value for `default`, expected one of "
            f"{list(candidates)}. Received: default={default!r}"
        )
    return builder_for(hp).op(hp, name, dict(candidates), default)


def choose_inputs(hp, name, inputs, n_chosen=1, merge="sum", labels=None):
    """Declares a choice of `n_chosen` of the given `inputs`, then merges them.

    Args:
        hp: The `keras_tuner.HyperParameters` passed to `HyperModel.build`.
        name: The decision's name, unique within the space.
        inputs: A non-empty list of candidate tensors.
        n_chosen: How many inputs to choose (1 to `len(inputs)`), or `None`
            for any subset, possibly empty (ENAS macro skip connections). A
            k-of-n choice is one categorical decision whose value names the
            chosen labels joined by "+" ("0+2"); an any-subset choice is one
            boolean decision per input, named `f"{name}/{label}"`.
        merge: How the chosen tensors are combined: "sum", "mean" or
            "concat". "sum" and "mean" need equal shapes.
        labels: Names of the inputs in decision values. Defaults to "0",
            "1", ...

    Returns:
        The merged tensor, or `None` when `n_chosen=None` chose no input.
    """
    _check_name(name)
    inputs = list(inputs)
    if not inputs:
        raise ValueError("Received an invalid value for `inputs`, expected at "
                         "least one candidate tensor. Received: inputs=[]")
    if n_chosen is not None:
        check_int(n_chosen, "n_chosen", 1, len(inputs),
                  expected=f"None or an integer from 1 to {len(inputs)}")
    if merge not in MERGE_MODES:
        raise ValueError(
            f"Received an invalid value for `merge`, expected one of "
            f"{MERGE_MODES}. Received: merge={merge!r}"
        )
    labels = _check_labels(
        labels if labels is not None else range(len(inputs)), len(inputs), "labels"
    )
    return builder_for(hp).inputs(hp, name, inputs, labels, n_chosen, merge)


def add_chosen_inputs(hp, name, x, sources):
    """Adds any chosen subset of earlier outputs to `x` (ENAS macro skips).

    One boolean decision per source, `f"{name}/{j}"` for `sources[j]`
    (`choose_inputs` with `n_chosen=None`); the chosen sources are summed
    and added to `x`.

    Args:
        hp: The `keras_tuner.HyperParameters` passed to `HyperModel.build`.
        name: The decisions' common prefix, e.g. "layer_2/skip".
        x: The layer's output.
        sources: The earlier outputs, already of `x`'s shape; may be empty.

    Returns:
        `x` plus the chosen sources; `x` itself when there are no sources
        or none is chosen.
    """
    if not sources:
        return x
    chosen = choose_inputs(hp, name, sources, n_chosen=None,
                           labels=[str(j) for j in range(len(sources))])
    return x if chosen is None else keras.layers.Add()([x, chosen])


def repeat(hp, name, block, x, depths, default=None):
    """Declares a chosen number of repetitions of `block`.

    Args:
        hp: The `keras_tuner.HyperParameters` passed to `HyperModel.build`.
        name: The decision's name, unique within the space.
        block: A callable `block(index, x) -> x` that declares the decisions
            of repetition `index` (use `index` in their names) and applies
            them to `x`.
        x: The input tensor.
        depths: The allowed numbers of repetitions, non-negative integers.
        default: The depth used when `hp` has no value yet. Defaults to the
            smallest depth.

    Returns:
        The output of the last repetition (`x` itself for depth 0).
    """
    _check_name(name)
    if not callable(block):
        raise ValueError(
            "Received an invalid value for `block`, expected a callable "
            f"`block(index, x)`. Received: block={block!r}"
        )
    depths = list(depths)
    if not depths or any(
        not is_integer(d) or d < 0 for d in depths
    ) or len(set(depths)) != len(depths):
        raise ValueError(
            "Received an invalid value for `depths`, expected distinct "
            f"non-negative integers. Received: depths={depths!r}"
        )
    depths = sorted(depths)
    if default is not None and default not in depths:
        raise ValueError(
            f"Received an invalid value for `default`, expected one of {depths}. "
            f"Received: default={default!r}"
        )
    return builder_for(hp).repeat(hp, name, block, x, depths, default)


def choose_value(hp, name, values, default=None, shareable=True, how_to_fix=None):
    """Declares a choice of a value that a supernet can share weights across.

    The decision is the KerasTuner hyperparameter `hp.Choice(name, values,
    default=default)`; a multi-trial build gets its value. A supernet build
    gets a `tfnas.supernet.values.SharedValue` (unless the value is fixed or
    single) for the factories of `tfnas.supernet.elastic` (`conv_bn`,
    `dense`, `pool`, `shortcut`, `mobile_block`), which share one set of
    weights across the values: widths by masking channels, kernel sizes by
    centred slices, expansions by masking expanded channels, on/off by a
    gate, activations and block types by mixing.

    Args:
        hp: The `keras_tuner.HyperParameters` passed to `HyperModel.build`.
        name: The decision's name, unique within the space.
        values: The values (int, float, str or bool, of one type).
        default: The value used when `hp` has no value yet. Defaults to the
            first.
        shareable: False for a value that changes what other layers see (a
            stride, which changes the output's size): a supernet refuses the
            decision unless it has one value or is fixed.
        how_to_fix: For `shareable=False`, what the refusal tells the user to
            do (e.g. "pass --space-arg strides=[1]").

    Returns:
        The chosen value, or a `SharedValue` in a supernet.
    """
    _check_name(name)
    values = list(values)
    if not values or len(set(values)) != len(values):
        raise ValueError(
            "Received an invalid value for `values`, expected a non-empty list of "
            f"distinct values. Received: values={values!r}")
    if default is not None and default not in values:
        raise ValueError(
            f"Received an invalid value for `default`, expected one of {values}. "
            f"Received: default={default!r}")
    return builder_for(hp).value(hp, name, values, default, bool(shareable), how_to_fix)
