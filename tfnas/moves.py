"""Moves over a search space: random fill, mutation, crossover, neighbours,
enumeration.

A search space here is what KerasTuner knows of it: a list of
hyperparameters (`oracle.hyperparameters.space`), conditional ones
included. Every move respects conditions: it sets exactly the decisions
that are active, with valid values. The oracles, the supernet, the
predictor and the test kit share these functions.
"""

import keras_tuner as kt

from tfnas import trials
from tfnas.architecture import Architecture

MAX_ENUMERATED_VALUES = 64


def candidate_values(hp):
    """The values a hyperparameter can take, or None if there are too many."""
    if isinstance(hp, kt.engine.hyperparameters.Choice):
        return list(hp.values)
    if isinstance(hp, kt.engine.hyperparameters.Boolean):
        return [False, True]
    if isinstance(hp, kt.engine.hyperparameters.Fixed):
        return [hp.value]
    if isinstance(hp, kt.engine.hyperparameters.Int):
        step = hp.step or 1
        if hp.sampling == "linear" and (hp.max_value - hp.min_value) // step < (
            MAX_ENUMERATED_VALUES
        ):
            return list(range(hp.min_value, hp.max_value + 1, step))
    return None


def decisions(values, names=None):
    """`values` without training-budget entries (`tuner/epochs`, ...), and
    only those in `names` when given."""
    return {k: v for k, v in trials.without_budget(values).items()
            if names is None or k in names}


def is_active(hp, values):
    """Whether decision `hp` is active given the values chosen so far, as
    `keras_tuner.HyperParameters.is_active` decides it, without registering
    `hp` in a `HyperParameters` (which copies it: milliseconds a decision).
    """
    return all(condition.is_active(values) for condition in hp.conditions)


def fill(space, values, rng, resample=()):
    """Active decisions only: keeps `values` where active and valid,
    samples decisions that are active but unset (or in `resample`).

    Args:
        space: The hyperparameters (a list, in declaration order).
        values: `{name: value}`, possibly partial.
        rng: A `numpy.random.Generator`.
        resample: Names to sample again even when set.
    """
    chosen = {}
    for hp in space:
        if not is_active(hp, chosen):
            continue
        current = values.get(hp.name)
        allowed = candidate_values(hp)
        if hp.name in resample or current is None or (
            allowed is not None and current not in allowed
        ):
            current = hp.random_sample(int(rng.integers(2**31)))
        chosen[hp.name] = current
    return Architecture(chosen).values


def random_architecture(space, rng):
    """Random values for the active decisions of `space`."""
    return fill(space, {}, rng)


def alternatives(space, name, value, rng):
    """The other values decision `name` can take (a few fresh samples for a
    continuous or huge range)."""
    hp = next(h for h in space if h.name == name)
    allowed = candidate_values(hp)
    if allowed is None:
        allowed = [hp.random_sample(int(rng.integers(2**31))) for _ in range(4)]
    return [v for v in allowed if v != value]


def enumerate_architectures(space, limit=100_000, fixed=None):
    """Every architecture of `space`, or None if there are more than `limit`
    (or a decision has too many values to enumerate).

    With `fixed` (`{name: value}`), only the architectures that take those
    values for the decisions they activate: e.g. every way to complete a
    partial architecture.
    """
    space = list(space)
    fixed = fixed or {}
    results = []

    def extend(index, values):
        if len(results) > limit:
            return
        if index == len(space):
            results.append(Architecture(values).values)
            return
        hp = space[index]
        if not is_active(hp, values):
            extend(index + 1, values)
            return
        allowed = candidate_values(hp)
        if hp.name in fixed and (allowed is None or fixed[hp.name] in allowed):
            allowed = [fixed[hp.name]]
        if allowed is None:
            results.extend([None] * (limit + 1))
            return
        for value in allowed:
            extend(index + 1, {**values, hp.name: value})

    extend(0, {})
    return None if len(results) > limit else results


def mutate(space, values, rng):
    """Changes one active decision to another value, then samples the
    decisions that become active and drops those that become inactive.
    Values of hyperparameters outside `space` are dropped.

    Returns None when no decision can change.
    """
    values = decisions(values, {hp.name for hp in space})
    names = [name for name, value in values.items() if alternatives(space, name, value, rng)]
    if not names:
        return None
    name = names[int(rng.integers(len(names)))]
    others = alternatives(space, name, values[name], rng)
    child = dict(values)
    child[name] = others[int(rng.integers(len(others)))]
    return fill(space, child, rng)


def crossover(space, first, second, rng):
    """Uniform crossover of two architectures over their active decisions.

    Walks the decisions in declaration order; each decision active in the
    child takes the value of one parent chosen at random among those that
    set it (valid for it); a decision that neither parent sets (it becomes
    active only through the mix, e.g. a deeper repetition) is sampled. So a
    child's decisions are active exactly when its own values make them so.

    Args:
        space: The hyperparameters (a list, in declaration order).
        first, second: The parents' `{name: value}`.
        rng: A `numpy.random.Generator`.
    """
    chosen = {}
    for hp in space:
        if not is_active(hp, chosen):
            continue
        allowed = candidate_values(hp)
        inherited = [parent[hp.name] for parent in (first, second)
                     if hp.name in parent and (allowed is None or parent[hp.name] in allowed)]
        if inherited:
            chosen[hp.name] = inherited[int(rng.integers(len(inherited)))]
        else:
            chosen[hp.name] = hp.random_sample(int(rng.integers(2**31)))
    return Architecture(chosen).values


def neighbours(space, values, rng):
    """Every architecture one decision away from `values`, shuffled."""
    values = decisions(values, {hp.name for hp in space})
    result = []
    for name, value in values.items():
        for alternative in alternatives(space, name, value, rng):
            result.append(fill(space, {**values, name: alternative}, rng))
    order = rng.permutation(len(result))
    return [result[i] for i in order]
