"""`NASOracle`: what tfnas's search strategies share.

A strategy subclasses `NASOracle` and implements `propose(rng)`,
using the helpers here: seeded random numbers that survive a restart,
random architectures, mutations and neighbourhoods that respect conditional
decisions, and the completed trials in the order they finished. Strategies
derive their population or incumbent from the trial history that KerasTuner
persists, so a restarted search continues where it stopped.
"""

import numpy as np

from tfnas import moves, strategies, trials
from tfnas.architecture import Architecture
from tfnas.moves import candidate_values  # noqa: F401 (re-exported)
from tfnas.oracles import halving as halving_module
from tfnas.oracles.hardening import (  # noqa: F401 (re-exported)
    HardenedOracle, OracleStateError, synchronized)
from tfnas.trials import COMPLETED, RUNNING, STOPPED  # noqa: F401 (re-exported)
from tfnas.validation import check_positive_int


def check_max_trials(max_trials):
    """Raises a clear error unless `max_trials` is a positive integer (or None)."""
    if max_trials is not None:
        check_positive_int(max_trials, "max_trials")


class NASOracle(HardenedOracle):
    """Base class of tfnas's search strategies (KerasTuner oracles): the
    strategy template and the trial history.

    KerasTuner's behaviours are fixed by its base class
    (`tfnas.oracles.hardening.HardenedOracle`); the moves over the space
    (`mutate`, `neighbours`, ...) are `tfnas.moves` over this oracle's space.

    A subclass implements `propose(rng)`, returning a `populate_space`
    response for a new architecture. With `halving`, every new architecture
    is first trained for the first rung's epochs, and promotions of the best
    ones (asynchronous successive halving) come before new proposals; the
    strategy then learns from first-rung results only, which compare equal
    budgets.

    Args:
        objective, max_trials, seed, **kwargs: as for `keras_tuner.Oracle`.
        halving: A `tfnas.oracles.SuccessiveHalving`, or None to train every
            candidate for the full epochs.
        screen: A `tfnas.screening.ProxyScreen`: each trial trains the best
            of its k proposals by a training-free proxy. None: no screening.
    """

    def __init__(self, objective=None, max_trials=100, seed=None, halving=None,
                 screen=None, **kwargs):
        check_max_trials(max_trials)
        if halving is not None and not isinstance(halving, halving_module.SuccessiveHalving):
            raise TypeError(
                "Received an invalid value for `halving`, expected a "
                f"SuccessiveHalving or None. Received: halving={halving!r}")
        super().__init__(objective=objective, max_trials=max_trials, seed=seed, **kwargs)
        self.halving = halving
        self.screen = screen
        self._seen = (0, set())
        self._seen_names = None

    def propose(self, rng):
        """A `populate_space` response for a new architecture.

        The response may also hold `"remember"`: what the strategy needs to
        keep about this proposal (e.g. the controller's sampling
        probability), handed to `remember(trial_id, value)` once the trial
        has its id.
        """
        raise NotImplementedError

    def remember(self, trial_id, value):
        """Keeps what `propose` returned under `"remember"` for `trial_id`."""

    def populate_space(self, trial_id):
        rng = self._next_rng()
        if self.halving is not None:
            promotion = self.halving.promotion(
                list(self.trials.values()), trials.completed_in_end_order(self),
                lambda t: Architecture.from_trial(t).hash, self.objective.direction == "max")
            if promotion is not None:
                return {"status": RUNNING, "values": promotion}
        if self.screen is None:
            response = self.propose(rng)
        else:
            response = self.screen.choose(self.propose, rng)
        if "remember" in response:
            self.remember(trial_id, response.pop("remember"))
        if self.halving is not None and response["status"] == RUNNING:
            response["values"] = {**response["values"], **self.halving.first_rung()}
        return response

    def set_state(self, state):
        super().set_state(state)
        self._seen = (0, set())  # the trials were reloaded

    def trial_ended(self, trial):
        self.learn()

    def learn(self):
        """Learns from the trial history; called after each trial ends.

        A strategy with a model of its own (e.g. the controller) trains it
        here; its state is saved right after.
        """

    def scalars(self):
        """The strategy's own training figures to log after a trial, e.g.
        the controller's reward, baseline and entropy (`{name: float}`)."""
        return {}

    # Random numbers.

    def _next_rng(self):
        """A generator for one proposal, reproducible from the seed and the
        number of proposals so far (both part of the saved state)."""
        rng = np.random.default_rng([self.seed, self._seed_state])
        self._seed_state += 1
        return rng

    # The trial history.

    @property
    def learning_rung(self):
        """The rung a strategy learns from: 0 with halving (the budget all
        candidates share), None (every trial) without."""
        return None if self.halving is None else 0

    def completed_trials(self, rung=None):
        """Completed trials with a score, in the order they finished.

        Args:
            rung: Only the trials of this successive-halving rung, or None for
                every rung. A strategy passes `self.learning_rung`.
        """
        return trials.completed_in_end_order(self, rung)

    def get_best_trials(self, num_trials=1):
        """The best completed trials, best first, then the others (as
        KerasTuner does when too few have completed).

        Equal scores are common (small models, small validation sets); the
        trial that ended first ranks first, so the ranking is the same after
        a reload, which reads the trials back in directory order.
        """
        in_end_order = trials.in_end_order(self)
        ranked = trials.ranked((t for t in in_end_order if t.status == COMPLETED),
                               self.objective.direction)
        if len(ranked) < num_trials:
            ranked += [t for t in in_end_order if t.status != COMPLETED]
        return ranked[:num_trials]

    def is_better(self, score, other):
        """Whether `score` beats `other` under the objective's direction."""
        return trials.is_better(score, other, self.objective.direction)

    def best_of(self, candidates):
        """The best of `candidates`; the earliest wins a tie."""
        return trials.best_of(candidates, self.objective.direction)

    # Architectures.

    def _fill(self, values, rng, resample=()):
        """`tfnas.moves.fill` over this oracle's space."""
        return moves.fill(self.hyperparameters.space, values, rng, resample)

    def random_architecture(self, rng):
        """Random values for the active decisions."""
        return moves.random_architecture(self.hyperparameters.space, rng)

    def enumerate_architectures(self, limit=100_000):
        """Every architecture of the space, or None if there are more than
        `limit` (or a decision has too many values to enumerate)."""
        return moves.enumerate_architectures(self.hyperparameters.space, limit)

    def _space_names(self):
        return {hp.name for hp in self.hyperparameters.space}

    def mutate(self, values, rng):
        """`tfnas.moves.mutate` over this oracle's space: one active decision
        changes; values outside the space (hyperparameters kept at their
        defaults with `tune_new_entries=False`) are dropped. None when no
        decision can change."""
        return moves.mutate(self.hyperparameters.space, values, rng)

    def crossover(self, first, second, rng):
        """`tfnas.moves.crossover` over this oracle's space."""
        names = self._space_names()
        return moves.crossover(self.hyperparameters.space, moves.decisions(first, names),
                               moves.decisions(second, names), rng)

    def neighbours(self, values, rng):
        """Every architecture one decision away from `values`, shuffled."""
        return moves.neighbours(self.hyperparameters.space, values, rng)

    def is_new(self, values):
        """Whether no trial of this search has this architecture yet
        (budget values such as `tuner/epochs`, and hyperparameters the
        oracle does not tune, aside)."""
        names = self._space_names()
        count, seen = self._seen
        if count != len(self.trials) or names != self._seen_names:
            if names != self._seen_names:
                count, seen = 0, set()
            # Trials are only ever added (in order), so hash just the new ones.
            known = list(self.trials.values())
            seen.update(Architecture(moves.decisions(Architecture.from_trial(t).values, names)).hash
                        for t in known[count:])
            self._seen, self._seen_names = (len(known), seen), names
        return Architecture(moves.decisions(values, names)).hash not in seen

    def random_proposal(self, rng):
        """A RUNNING response with new random values, or STOPPED when the
        space is exhausted. After repeated collisions, a small space is
        enumerated so that no unexplored architecture is missed."""
        for _ in range(self._max_collisions):
            values = self.random_architecture(rng)
            if self.is_new(values):
                return {"status": RUNNING, "values": values}
        remaining = [v for v in self.enumerate_architectures() or [] if self.is_new(v)]
        if remaining:
            return {"status": RUNNING, "values": remaining[int(rng.integers(len(remaining)))]}
        return {"status": STOPPED, "values": None}


@strategies.register("random", halving=True)
class RandomOracle(NASOracle):
    """Random search: every trial samples each active decision uniformly.

    The baseline every NAS strategy must beat (Li & Talwalkar, 2019). Never
    proposes an architecture twice; stops early when the space is exhausted.
    """

    def propose(self, rng):
        return self.random_proposal(rng)


strategies.register("sha", RandomOracle, build=halving_module.with_halving,
                    schedule=halving_module.schedule)
