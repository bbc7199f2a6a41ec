"""Search strategies (KerasTuner oracles), by name.

- random: `RandomOracle`, random search that never repeats an architecture;
- evolution: `RegularizedEvolutionOracle`, regularized evolution (Real et al.);
- local: `LocalSearchOracle`, best-first hill climbing (White et al.);
- predictor: `PredictorOracle`, a predictor ensemble with Thompson sampling
  (BANANAS);
- controller, ppo: `ControllerOracle`, an LSTM controller trained by
  REINFORCE (Zoph & Le; ENAS) or PPO (MnasNet);
- sha: `RandomOracle` with `SuccessiveHalving`, asynchronous successive
  halving of epochs;
- hyperband: KerasTuner's `HyperbandOracle`;
- kt-random, kt-bayesian: KerasTuner's `RandomSearchOracle` and
  `BayesianOptimizationOracle`, as baselines.
"""

import keras_tuner as kt

from tfnas.oracles.base import NASOracle, OracleStateError, RandomOracle, check_max_trials
from tfnas.oracles.controller import ControllerOracle, PPOControllerOracle
from tfnas.oracles.evolution import RegularizedEvolutionOracle
from tfnas.oracles.halving import SuccessiveHalving
from tfnas.oracles.local import LocalSearchOracle
from tfnas.oracles.predictor import PredictorOracle

ORACLES = {
    "random": RandomOracle,
    "evolution": RegularizedEvolutionOracle,
    "local": LocalSearchOracle,
    "predictor": PredictorOracle,
    "controller": ControllerOracle,
    "ppo": PPOControllerOracle,
    "sha": RandomOracle,
    "hyperband": kt.oracles.HyperbandOracle,
    "kt-random": kt.oracles.RandomSearchOracle,
    "kt-bayesian": kt.oracles.BayesianOptimizationOracle,
}


def budget_defaults(name, max_trials):
    """Strategy arguments scaled to a budget of `max_trials` trials.

    Evolution's population is a third of the budget (at most 20, Real et
    al.'s NAS-Bench setting) with tournaments of a third of the population;
    local search starts from a tenth of the budget (at most 10) of random
    trials, predictor-guided search from a fifth (at least 2, at most 10).
    Explicit arguments to `get` override these. With `max_trials=None`
    (no limit, as in KerasTuner), each strategy keeps its own defaults.
    """
    if max_trials is None:
        return {}
    if name == "evolution":
        population = min(20, max(2, max_trials // 3))
        return {"population_size": population,
                "sample_size": max(1, min(5, population // 3))}
    if name == "local":
        return {"initial_trials": min(10, max(1, max_trials // 10))}
    if name == "predictor":
        return {"initial_trials": min(10, max(2, max_trials // 5))}
    return {}


def get(name, objective, max_trials, seed=None, space=None, **kwargs):
    """Creates the oracle registered as `name`.

    Args:
        name: One of `tfnas.oracles.ORACLES`.
        objective: A metric name or `keras_tuner.Objective`.
        max_trials: How many trials the search runs, at least 1, or None
            for no limit (as in KerasTuner).
        seed: Random seed of the strategy.
        space: The space to be searched, if known: the predictor then uses
            its `path_encoding` when it has one (cell spaces).
        **kwargs: Strategy-specific arguments (see each class); defaults
            scale with `max_trials` (`budget_defaults`).
    """
    if name not in ORACLES:
        raise ValueError(
            f"Received an invalid value for `strategy`, expected one of "
            f"{sorted(ORACLES)}. Received: strategy={name!r}"
        )
    if name == "hyperband":  # Hyperband sets its own number of trials
        return ORACLES[name](objective=objective, seed=seed,
                             **{"max_epochs": 9, **kwargs})
    check_max_trials(max_trials)
    arguments = {**budget_defaults(name, max_trials), **kwargs}
    if name == "predictor" and hasattr(space, "path_encoding"):
        arguments.setdefault("encoder", space.path_encoding)
    if name == "sha" and "halving" not in arguments:
        arguments["halving"] = SuccessiveHalving(
            min_epochs=1, max_epochs=arguments.pop("max_epochs", 9), eta=3)
    return ORACLES[name](objective=objective, max_trials=max_trials, seed=seed, **arguments)


__all__ = ["ORACLES", "NASOracle", "RandomOracle", "RegularizedEvolutionOracle",
           "ControllerOracle", "PPOControllerOracle", "OracleStateError",
           "LocalSearchOracle", "PredictorOracle", "SuccessiveHalving",
           "budget_defaults", "get"]
