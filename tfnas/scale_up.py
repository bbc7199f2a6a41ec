"""Scaling a found architecture up through its space's skeleton arguments.

NAS papers search small and train large: the cells found with 5 cells of 16
filters are stacked 8 deep with 64 filters for the final training. In tfnas a
space's constructor arguments split into two kinds: those that only size the
skeleton (e.g. `CellSpace`'s `num_cells`, `filters`; `MobileSpace`'s
`width_multiplier`) and those that change which decisions exist or which
values they may take (e.g. `CellSpace`'s `num_blocks`, `ChainSpace`'s
`max_layers`). `scaled_space` accepts the first kind and refuses the second,
by building the architecture in the new space and comparing its decisions.
"""

import keras_tuner as kt

from tfnas.architecture import Architecture

#: Arguments that describe the data, not the architecture: never overridden.
DATA_ARGUMENTS = ("input_shape", "num_classes", "task")


class DecisionChangeError(ValueError):
    """A space argument would change the architecture's decisions."""


def _is_valid(hyperparameter, value):
    """Whether `value` is one that `hyperparameter` can take."""
    hps = kt.engine.hyperparameters
    if isinstance(hyperparameter, hps.Fixed):
        return value == hyperparameter.value
    if isinstance(hyperparameter, hps.Boolean):
        return isinstance(value, bool)
    if isinstance(hyperparameter, hps.Choice):
        return value in hyperparameter.values
    if isinstance(hyperparameter, (hps.Int, hps.Float)):
        return hyperparameter.min_value <= value <= hyperparameter.max_value
    return True


def decision_changes(space, values):
    """How building `values` in `space` differs from the architecture `values`.

    Builds the model (a space declares its decisions as it builds).

    Returns:
        `(model, problems)`: the built model (None when the build failed)
        and a list of sentences, empty when `space` builds exactly the
        architecture `values`.
    """
    hp = Architecture(values).to_hyperparameters()
    try:
        model = space.build(hp)
    except Exception as error:  # e.g. a value the space no longer has an operation for
        model, failure = None, f"{type(error).__name__}: {error}"
    else:
        failure = None
    problems = []
    if model is not None:  # a build cut short declares only some decisions
        built = Architecture.from_hyperparameters(hp).values
        added = sorted(set(built) - set(values))
        removed = sorted(set(values) - set(built))
        if added:
            problems.append(f"it adds the decisions {added}")
        if removed:
            problems.append(f"the decisions {removed} no longer exist")
    # KerasTuner returns a given value without checking it against the
    # declaration; the declarations made before any failure are in `hp.space`.
    for hyperparameter in hp.space:
        name = hyperparameter.name
        valid = name not in values or _is_valid(hyperparameter, values[name])
        if hp.is_active(name) and not valid:
            problems.append(f"the decision {name}={values[name]!r} is not one of the "
                            f"values it may take now ({_domain(hyperparameter)})")
    if failure is not None and not problems:
        problems.append(f"the architecture no longer builds ({failure})")
    return model, problems


def _domain(hyperparameter):
    if hasattr(hyperparameter, "values"):
        return f"{list(hyperparameter.values)}"
    if hasattr(hyperparameter, "min_value"):
        return f"{hyperparameter.min_value}..{hyperparameter.max_value}"
    return type(hyperparameter).__name__


def _make(space, overrides, space_name):
    config = space.get_config()
    try:
        return type(space)(**{**config, **overrides})
    except (TypeError, ValueError) as error:
        shown = ", ".join(f"{k}={v!r}" for k, v in overrides.items())
        raise ValueError(f"space '{space_name}' cannot be built with {shown}: {error}") \
            from error


def scaled_space(space, values, overrides, argument="space_args"):
    """The space `space` with `overrides` applied, and the architecture built in it.

    Args:
        space: A built-in space (a `tfnas.spaces.SearchSpace` whose
            `get_config()` rebuilds it).
        values: The architecture's decision values.
        overrides: `{argument: value}` of the space's constructor.
        argument: How errors name the overrides (e.g. "--space-arg").

    Returns:
        `(new_space, model)`: the scaled space and the architecture built in
        it (compiled, untrained), built in the caller's scopes.

    Raises:
        ValueError: naming the argument, for an argument the space does not
            take, one that describes the data, or one the space rejects.
        DecisionChangeError: naming the argument and why, for arguments that
            would change the architecture's decisions (add or remove a
            decision, or exclude one of its values).
    """
    overrides = dict(overrides or {})
    space_name = getattr(space, "space_name", None) or type(space).__name__
    if not overrides:
        return space, space.build(Architecture(values).to_hyperparameters())
    config = space.get_config()
    for name in overrides:
        if name in DATA_ARGUMENTS:
            raise ValueError(
                f"Received `{argument}` {name}={overrides[name]!r}: `{name}` comes from the "
                "data the search ran on and cannot be changed for the final training.")
        if name not in config:
            raise ValueError(
                f"Received an unknown `{argument}` for space '{space_name}': `{name}`. "
                f"Expected one of {sorted(k for k in config if k not in DATA_ARGUMENTS)}.")
    new_space = _make(space, overrides, space_name)
    model, problems = decision_changes(new_space, values)
    if not problems:
        return new_space, model
    # Name the arguments that change the decisions on their own (or all of them
    # when only their combination does).
    guilty = [name for name in overrides
              if decision_changes(_make(space, {name: overrides[name]}, space_name),
                                  values)[1]] or list(overrides)
    shown = ", ".join(f"{name}={overrides[name]!r}" for name in guilty)
    raise DecisionChangeError(
        f"Received `{argument}` {shown}, which would change the architecture's decisions "
        f"in space '{space_name}': {'; '.join(problems)}. Only arguments that size the "
        "skeleton (e.g. the number of cells or filters of a cell space) can scale a "
        "found architecture up; search again to explore other decisions.")
