"""Regularized (aging) evolution, Real et al. (2019)."""

from tfnas.oracles.base import RUNNING, NASOracle


class RegularizedEvolutionOracle(NASOracle):
    """Regularized evolution: tournament selection, mutation, aging.

    The first `population_size` trials are random. After that, each trial
    samples `sample_size` members of the population (the `population_size`
    most recently completed trials, so the oldest member dies as a new one
    enters; failed trials never enter), takes the best of them as the parent
    and mutates one of its active decisions. A child that was already
    evaluated is mutated again, up to `max_mutation_tries` times, before
    falling back to a random architecture. The population is derived from
    the trial history, so a restarted search resumes it exactly.

    Args:
        objective, max_trials, seed: as for `keras_tuner.Oracle`.
        population_size: P, the number of recent trials that form the
            population (20 in NAS-Bench-101/201 experiments; 100 in the paper).
        sample_size: S, the tournament size, from 1 to `population_size`.
        max_mutation_tries: Mutations tried before a random child.
        **kwargs: Other `keras_tuner.Oracle` arguments.
    """

    def __init__(self, objective=None, max_trials=100, population_size=20,
                 sample_size=5, max_mutation_tries=50, seed=None, **kwargs):
        for name, value, low in (("population_size", population_size, 2),
                                 ("sample_size", sample_size, 1),
                                 ("max_mutation_tries", max_mutation_tries, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(
                    f"Received an invalid value for `{name}`, expected an "
                    f"integer >= {low}. Received: {name}={value!r}"
                )
        if sample_size > population_size:
            raise ValueError(
                "Expected `sample_size` <= `population_size`. Received: "
                f"sample_size={sample_size}, population_size={population_size}"
            )
        super().__init__(objective=objective, max_trials=max_trials, seed=seed, **kwargs)
        self.population_size = population_size
        self.sample_size = sample_size
        self.max_mutation_tries = max_mutation_tries

    def population(self):
        """The current population: the most recently completed trials."""
        return self.completed_trials()[-self.population_size:]

    def propose(self, rng):
        population = self.population()
        if len(self.start_order) < self.population_size or not population:
            return self.random_proposal(rng)
        size = min(self.sample_size, len(population))
        tournament = [population[i] for i in sorted(
            rng.choice(len(population), size=size, replace=False))]
        parent = self.best_of(tournament)
        for _ in range(self.max_mutation_tries):
            child = self.mutate(parent.hyperparameters.values, rng)
            if child is not None and self.is_new(child):
                return {"status": RUNNING, "values": child}
        return self.random_proposal(rng)
