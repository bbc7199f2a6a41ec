"""Search strategies (KerasTuner oracles), by name.

- random: `RandomOracle`, random search that never repeats an architecture;
- evolution: `RegularizedEvolutionOracle`, regularized evolution (Real et al.);
- local: `LocalSearchOracle`, best-first hill climbing (White et al.);
- predictor: `PredictorOracle`, a predictor ensemble with Thompson sampling
  (BANANAS);
- controller, ppo: `ControllerOracle`, an LSTM controller trained by
  REINFORCE (Zoph & Le; ENAS) or PPO (MnasNet);
- pnas, dpp: `ProgressiveOracle` and `DPPOracle`, progressive NAS (Liu et
  al.) and its device-aware Pareto form (DPP-Net);
- sha: `RandomOracle` with `SuccessiveHalving`, asynchronous successive
  halving of epochs;
- hyperband: KerasTuner's `HyperbandOracle`;
- kt-random, kt-bayesian: KerasTuner's `RandomSearchOracle` and
  `BayesianOptimizationOracle`, as baselines.

Each strategy registers itself in its own module (`tfnas.strategies`);
importing the module here is what makes a built-in one known.
"""

import collections.abc

from tfnas import strategies
from tfnas.oracles import kt_oracles  # noqa: F401  (registers KerasTuner's oracles)
from tfnas.oracles.base import NASOracle, OracleStateError, RandomOracle, check_max_trials
from tfnas.oracles.controller import ControllerOracle, PPOControllerOracle
from tfnas.oracles.evolution import RegularizedEvolutionOracle
from tfnas.oracles.halving import SuccessiveHalving
from tfnas.oracles.local import LocalSearchOracle
from tfnas.oracles.predictor import PredictorOracle
from tfnas.oracles.progressive import DPPOracle, ProgressiveOracle


class _MultiTrialStrategies(collections.abc.Mapping):
    """`{name: oracle class}` of the registered multi-trial strategies, read
    live from `tfnas.strategies` (read-only)."""

    def __getitem__(self, name):
        if name not in strategies.names(one_shot=False):
            raise KeyError(name)
        return strategies.get(name).cls

    def __iter__(self):
        return iter(strategies.names(one_shot=False))

    def __len__(self):
        return len(strategies.names(one_shot=False))

    def __repr__(self):
        return f"ORACLES({dict(self)!r})"


ORACLES = _MultiTrialStrategies()


def budget_defaults(name, max_trials):
    """Strategy arguments scaled to a budget of `max_trials` trials (each
    strategy's registered `budget`; see e.g. `evolution_budget`). Explicit
    arguments to `get` override these. With `max_trials=None` (no limit, as
    in KerasTuner), each strategy keeps its own defaults."""
    return strategies.get(name, one_shot=False).budget_defaults(max_trials)


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
    if strategies.is_one_shot(name):
        raise ValueError(
            f"Received a one-shot strategy for `oracle`/`strategy`: {name!r} trains one "
            "weight-sharing supernet, not an oracle's trials. Use "
            f"`tfnas.OneShotTuner(space, strategy={name!r}, ...)` (or `tfnas search "
            f"--strategy {name}`). Received: strategy={name!r}")
    entry = strategies.get(name, one_shot=False)
    if not entry.own_trials:
        check_max_trials(max_trials)
    arguments = {**entry.budget_defaults(max_trials), **kwargs}
    return entry.create(objective=objective, max_trials=max_trials, seed=seed, space=space,
                        **arguments)


__all__ = ["ORACLES", "NASOracle", "RandomOracle", "RegularizedEvolutionOracle",
           "ControllerOracle", "PPOControllerOracle", "OracleStateError",
           "LocalSearchOracle", "PredictorOracle", "ProgressiveOracle", "DPPOracle",
           "SuccessiveHalving",
           "budget_defaults", "get"]
