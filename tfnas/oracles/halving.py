"""Successive halving of training budgets, asynchronous (ASHA, Li et al. 2020).

Any tfnas strategy can train its candidates briefly first and promote only
the promising ones: `SuccessiveHalving(min_epochs, max_epochs, eta)` defines
rungs of `min_epochs * eta ** k` epochs up to `max_epochs`. A trial that
completes rung k is promoted to rung k + 1 (a new trial with the same
architecture, warm-started from its weights, trained from epoch `b_k` to
`b_{k+1}`) once it ranks in the top `1 / eta` of the trials completed at
rung k. Promotions are decided as trials complete, never waiting for a rung
to fill, so workers are never left idle (the asynchronous variant).

Budgets travel in a trial's values under KerasTuner's Hyperband names, which
`NASTuner` honours and `Architecture` leaves out: `tuner/epochs`,
`tuner/initial_epoch`, `tuner/trial_id` (the trial to warm-start from) and
`tuner/rung`.
"""

import dataclasses

from tfnas import trials
from tfnas.trials import EPOCHS, INITIAL_EPOCH, PARENT, RUNG, rung_of  # noqa: F401
from tfnas.validation import check_int


@dataclasses.dataclass(frozen=True)
class SuccessiveHalving:
    """Rungs of training budgets for asynchronous successive halving.

    Args:
        min_epochs: Epochs of the first rung, at least 1.
        max_epochs: Epochs of the last rung, at least `min_epochs`.
        eta: Reduction factor: the top 1/eta of a rung is promoted, and each
            rung trains eta times longer. At least 2.
    """

    min_epochs: int = 1
    max_epochs: int = 9
    eta: int = 3

    def __post_init__(self):
        for name, low in (("min_epochs", 1), ("eta", 2)):
            check_int(getattr(self, name), name, low)
        if not isinstance(self.max_epochs, int) or self.max_epochs < self.min_epochs:
            raise ValueError(
                "Expected an integer `max_epochs` >= `min_epochs`. Received: "
                f"min_epochs={self.min_epochs}, max_epochs={self.max_epochs!r}")

    def budgets(self):
        """Epochs of each rung: min_epochs * eta ** k, the last capped at max_epochs."""
        budgets = [self.min_epochs]
        while budgets[-1] < self.max_epochs:
            budgets.append(min(budgets[-1] * self.eta, self.max_epochs))
        return budgets

    def first_rung(self):
        """Budget values of a newly proposed architecture."""
        return {EPOCHS: self.budgets()[0], INITIAL_EPOCH: 0, RUNG: 0}

    def promotion(self, started, completed, architecture_key, maximize):
        """The next promotion, or None.

        Args:
            started: Every trial of the search (running and failed included),
                so that an architecture is promoted to a rung only once.
            completed: The completed trials with a score.
            architecture_key: Maps a trial to its architecture's identity.
            maximize: Whether higher scores are better.

        Returns:
            Values for the promoted trial: the parent's architecture with the
            next rung's budget and the parent's trial id, or None.
        """
        budgets = self.budgets()
        reached = {(architecture_key(t), rung_of(t)) for t in started}
        # Prefer the highest rung: it finishes candidates instead of widening.
        for rung in range(len(budgets) - 2, -1, -1):
            at_rung = sorted((t for t in completed if rung_of(t) == rung),
                             key=lambda t: int(t.trial_id))
            ranked = trials.ranked(at_rung, "max" if maximize else "min")
            for parent in ranked[:len(at_rung) // self.eta]:
                if ((architecture_key(parent), rung + 1) in reached
                        or trials.is_stopped_early(parent)):  # judged hopeless
                    continue
                values = trials.without_budget(parent.hyperparameters.values)
                values.update({EPOCHS: budgets[rung + 1], INITIAL_EPOCH: budgets[rung],
                               PARENT: parent.trial_id, RUNG: rung + 1})
                return values
        return None


def with_halving(cls, objective, max_trials, seed=None, space=None, max_epochs=9,
                 halving=None, **kwargs):
    """`cls` (an oracle) with successive halving, by default from 1 to
    `max_epochs` epochs with eta 3 (the "sha" strategy)."""
    halving = halving or SuccessiveHalving(min_epochs=1, max_epochs=max_epochs, eta=3)
    return cls(objective=objective, max_trials=max_trials, seed=seed, halving=halving,
               **kwargs)


def schedule(min_epochs, max_epochs, eta):
    """The `halving` argument for the CLI's `--min-epochs`, `--epochs`, `--eta`."""
    return {"halving": SuccessiveHalving(min_epochs=min_epochs, max_epochs=max_epochs,
                                         eta=eta)}
