"""Local search (hill climbing), White et al. (2021)."""

import numpy as np

from tfnas import inheritance, strategies, trials
from tfnas.oracles.base import RUNNING, NASOracle
from tfnas.validation import check_int


def local_budget(max_trials):
    """Climbing starts after a tenth of the budget (at most 10) of random trials."""
    return {"initial_trials": min(10, max(1, max_trials // 10))}


@strategies.register("local", budget=local_budget, halving=True)
class LocalSearchOracle(NASOracle):
    """Best-first hill climbing over one-decision neighbourhoods.

    After `initial_trials` random trials, each trial evaluates an unexplored
    neighbour (one active decision changed) of the best completed trial. When
    every neighbour of the incumbent has been evaluated (a local optimum),
    the climb continues from the next-best trial with unexplored neighbours;
    when there is none, from a random architecture. Strong and simple on NAS
    benchmarks ("Local search is state of the art for NAS benchmarks").

    Args:
        objective, max_trials, seed: as for `keras_tuner.Oracle`.
        initial_trials: Random trials before climbing, at least 1.
        inherit_weights: Whether a neighbour starts from the incumbent's
            trained weights (see `tfnas.inheritance`).
        inherit_epochs: Epochs a neighbour that inherits trains for.
        **kwargs: Other `keras_tuner.Oracle` arguments.
    """

    def __init__(self, objective=None, max_trials=100, initial_trials=10, seed=None,
                 inherit_weights=False, inherit_epochs=1, **kwargs):
        check_int(initial_trials, "initial_trials", 1)
        super().__init__(objective=objective, max_trials=max_trials, seed=seed, **kwargs)
        inheritance.check_arguments(inherit_weights, inherit_epochs, self.halving)
        self.inherit_weights, self.inherit_epochs = inherit_weights, inherit_epochs
        self.initial_trials = initial_trials
        # Trials whose whole neighbourhood has been evaluated: a cache (it only
        # grows as the search goes on), rebuilt after a restart.
        self._exhausted = set()

    def propose(self, rng):
        completed = self.completed_trials(self.learning_rung)
        if len(self.start_order) < self.initial_trials or not completed:
            return self.random_proposal(rng)
        ranked = trials.ranked(completed, self.objective.direction)
        # One generator per incumbent, so that skipping cached incumbents does
        # not change the proposals (a restarted search has an empty cache).
        base = int(rng.integers(2**31))
        for incumbent in ranked:
            if incumbent.trial_id in self._exhausted or trials.is_stopped_early(incumbent):
                continue  # explored, or stopped early (a partial score)
            incumbent_rng = np.random.default_rng([base, int(incumbent.trial_id)])
            for neighbour in self.neighbours(incumbent.hyperparameters.values,
                                             incumbent_rng):
                if self.is_new(neighbour):
                    if self.inherit_weights:
                        return inheritance.child_response(neighbour, incumbent.trial_id,
                                                          self.inherit_epochs)
                    return {"status": RUNNING, "values": neighbour}
            self._exhausted.add(incumbent.trial_id)
        return self.random_proposal(rng)
