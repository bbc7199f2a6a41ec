"""Search strategies (KerasTuner oracles), by name."""

import keras_tuner as kt

ORACLES = {"random": kt.oracles.RandomSearchOracle}


def get(name, objective, max_trials, seed=None, **kwargs):
    """Creates the oracle registered as `name`.

    Args:
        name: One of `tfnas.oracles.ORACLES`.
        objective: A metric name or `keras_tuner.Objective`.
        max_trials: How many trials the search runs, at least 1.
        seed: Random seed of the strategy.
        **kwargs: Strategy-specific arguments.
    """
    if name not in ORACLES:
        raise ValueError(
            f"Received an invalid value for `strategy`, expected one of "
            f"{sorted(ORACLES)}. Received: strategy={name!r}"
        )
    return ORACLES[name](objective=objective, max_trials=max_trials, seed=seed, **kwargs)


__all__ = ["ORACLES", "get"]
