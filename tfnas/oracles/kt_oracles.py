"""KerasTuner's own oracles, registered as tfnas strategies (baselines)."""

import keras_tuner as kt

from tfnas import strategies


def _hyperband(cls, objective, max_trials, seed=None, space=None, **kwargs):
    # Hyperband sets its own number of trials from its epochs and factor.
    return cls(objective=objective, seed=seed, **{"max_epochs": 9, **kwargs})


def _hyperband_schedule(min_epochs, max_epochs, eta):
    return {"max_epochs": max_epochs, "factor": eta}


strategies.register("hyperband", kt.oracles.HyperbandOracle, build=_hyperband,
                    schedule=_hyperband_schedule, own_trials=True)
strategies.register("kt-random", kt.oracles.RandomSearchOracle)
strategies.register("kt-bayesian", kt.oracles.BayesianOptimizationOracle)
