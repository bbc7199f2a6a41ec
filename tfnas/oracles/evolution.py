"""Regularized (aging) evolution, Real et al. (2019), optionally with Pareto
selection over several objectives."""

from tfnas import inheritance, pareto, strategies, trials
from tfnas.oracles.base import RUNNING, NASOracle
from tfnas.validation import check_int


def evolution_budget(max_trials):
    """A population of a third of the budget (at most 20, Real et al.'s
    NAS-Bench setting) with tournaments of a third of the population."""
    population = min(20, max(2, max_trials // 3))
    return {"population_size": population, "sample_size": max(1, min(5, population // 3))}


@strategies.register("evolution", budget=evolution_budget, halving=True)
class RegularizedEvolutionOracle(NASOracle):
    """Regularized evolution: tournament selection, mutation, aging.

    The first `population_size` trials are random. After that, each trial
    samples `sample_size` members of the population (the `population_size`
    most recently completed trials, so the oldest member dies as a new one
    enters; failed trials never enter), takes the best of them as the parent
    and mutates one of its active decisions. With `crossover_probability`
    p > 0, a child is instead, with probability p, the uniform crossover of
    the winners of two independent tournaments (`tfnas.moves.crossover`),
    then mutated. A child that was already
    evaluated is mutated again, up to `max_mutation_tries` times, before
    falling back to a random architecture. The population is derived from
    the trial history, so a restarted search resumes it exactly.

    With `pareto_objectives`, the search is multi-objective: the tournament
    winner is the member with the best Pareto rank in the population
    (NSGA-II non-dominated sorting of the members' metrics), ties broken by
    the larger crowding distance (the more isolated point), then by age.
    The oracle's `objective` still names the single metric that KerasTuner
    ranks trials by; `NASTuner.get_pareto_front()` returns the front.

    Args:
        objective, max_trials, seed: as for `keras_tuner.Oracle`.
        population_size: P, the number of recent trials that form the
            population (20 in NAS-Bench-101/201 experiments; 100 in the paper).
        sample_size: S, the tournament size, from 1 to `population_size`.
        max_mutation_tries: Mutations tried before a random child.
        crossover_probability: Probability in [0, 1] that a child comes
            from crossover (then mutation) instead of mutation alone. 0 (the
            default, Real et al.'s algorithm): see the README for the
            measurement behind that default.
        pareto_objectives: Optional list of two or more
            `keras_tuner.Objective`s (or `(name, direction)` pairs), e.g.
            `[("val_accuracy", "max"), ("latency_ms", "min")]`, each the name
            of a metric the trials report.
        inherit_weights: Whether a mutated child starts from its parent's
            trained weights (see `tfnas.inheritance`); with crossover, from
            the first tournament's winner.
        inherit_epochs: Epochs a child that inherits trains for.
        **kwargs: Other `keras_tuner.Oracle` arguments.
    """

    def __init__(self, objective=None, max_trials=100, population_size=20,
                 sample_size=5, max_mutation_tries=50, pareto_objectives=None, seed=None,
                 crossover_probability=0.0, inherit_weights=False, inherit_epochs=1,
                 **kwargs):
        for name, value, low in (("population_size", population_size, 2),
                                 ("sample_size", sample_size, 1),
                                 ("max_mutation_tries", max_mutation_tries, 1)):
            check_int(value, name, low)
        if sample_size > population_size:
            raise ValueError(
                "Expected `sample_size` <= `population_size`. Received: "
                f"sample_size={sample_size}, population_size={population_size}"
            )
        if not (isinstance(crossover_probability, (int, float))
                and 0.0 <= crossover_probability <= 1.0):
            raise ValueError(
                "Received an invalid value for `crossover_probability`, expected a "
                f"number in [0, 1]. Received: crossover_probability={crossover_probability!r}"
            )
        super().__init__(objective=objective, max_trials=max_trials, seed=seed, **kwargs)
        self.crossover_probability = float(crossover_probability)
        inheritance.check_arguments(inherit_weights, inherit_epochs, self.halving)
        self.inherit_weights, self.inherit_epochs = inherit_weights, inherit_epochs
        self.population_size = population_size
        self.sample_size = sample_size
        self.max_mutation_tries = max_mutation_tries
        self.pareto_objectives = (None if pareto_objectives is None
                                  else pareto.as_objectives(pareto_objectives))

    def population(self):
        """The current population: the most recently completed trials."""
        return self.completed_trials(self.learning_rung)[-self.population_size:]

    def propose(self, rng):
        population = self.population()
        if len(self.start_order) < self.population_size or not population:
            return self.random_proposal(rng)
        parent = self._tournament(population, rng)
        # Drawing only when crossover is on keeps plain evolution's seeded
        # sequence of proposals unchanged.
        if self.crossover_probability and rng.random() < self.crossover_probability:
            other = self._tournament(population, rng)
            parent_values = self.crossover(parent.hyperparameters.values,
                                           other.hyperparameters.values, rng)
        else:
            parent_values = parent.hyperparameters.values
        for _ in range(self.max_mutation_tries):
            child = self.mutate(parent_values, rng)
            if child is not None and self.is_new(child):
                if self.inherit_weights:
                    return inheritance.child_response(child, parent.trial_id,
                                                      self.inherit_epochs)
                return {"status": RUNNING, "values": child}
        return self.random_proposal(rng)

    def _tournament(self, population, rng):
        """The winner of `sample_size` members drawn without replacement."""
        size = min(self.sample_size, len(population))
        tournament = [population[i] for i in sorted(
            rng.choice(len(population), size=size, replace=False))]
        return self._winner(tournament, population)

    def _winner(self, tournament, population):
        # A trial stopped early (partial score) wins only a tournament of such.
        tournament = [t for t in tournament if not trials.is_stopped_early(t)] or tournament
        if self.pareto_objectives is None:
            return self.best_of(tournament)
        members, points = pareto.trial_points(population, self.pareto_objectives)
        if not members:
            raise ValueError(
                "Pareto evolution: no trial reports all of the metrics "
                f"{[o.name for o in self.pareto_objectives]}.")
        directions = [o.direction for o in self.pareto_objectives]
        ranks = pareto.ranks(points, directions)
        crowding = pareto.crowding_distances(points, directions)
        key = {m.trial_id: (ranks[i], -crowding[i]) for i, m in enumerate(members)}
        eligible = [t for t in tournament if t.trial_id in key]
        if not eligible:
            return self.best_of(tournament)
        return min(eligible, key=lambda t: key[t.trial_id])  # the earliest on ties
