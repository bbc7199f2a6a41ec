"""The trial vocabulary: statuses, budget keys, end order, ranking, the best.

Every module that reads trials (the oracles, the tuner, the report, the
export, the benchmark runner, the plots) speaks through this one, so that
"completed", "best" and "in the order they ended" mean the same everywhere.
No tfnas imports.
"""

import keras_tuner as kt

_STATUS = kt.engine.trial.TrialStatus
RUNNING = _STATUS.RUNNING
IDLE = _STATUS.IDLE
COMPLETED = _STATUS.COMPLETED
FAILED = _STATUS.FAILED
INVALID = _STATUS.INVALID
STOPPED = _STATUS.STOPPED

#: Values under this prefix are training budgets (KerasTuner's Hyperband
#: convention), not decisions.
BUDGET_PREFIX = "tuner/"
EPOCHS = "tuner/epochs"
INITIAL_EPOCH = "tuner/initial_epoch"
PARENT = "tuner/trial_id"
RUNG = "tuner/rung"
#: The metric of a trial that an early stopping rule stopped: the number of
#: epochs it had trained (see `tfnas.early_stopping`).
STOPPED_AT = "stopped_at_epoch"


def without_budget(values):
    """`values` without the training-budget entries (`tuner/epochs`, ...)."""
    return {k: v for k, v in values.items() if not k.startswith(BUDGET_PREFIX)}


def rung_of(trial):
    """The successive-halving rung of a trial (0 for trials without budgets)."""
    return trial.hyperparameters.values.get(RUNG, 0)


def is_completed(trial):
    """Whether `trial` completed with a score."""
    return trial.status == COMPLETED and trial.score is not None


def is_stopped_early(trial):
    """Whether an early stopping rule stopped `trial`: its score is partial
    (the best of the epochs it trained)."""
    return trial.metrics.exists(STOPPED_AT)


def stopped_at(trial):
    """The epochs `trial` trained before an early stopping rule stopped it,
    or None."""
    return int(trial.metrics.get_last_value(STOPPED_AT)) if is_stopped_early(trial) else None


def in_end_order(oracle):
    """The oracle's trials in the order they ended, then the ones that have
    not ended, in start order."""
    ended = [oracle.trials[i] for i in oracle.end_order if i in oracle.trials]
    ended_ids = set(oracle.end_order)
    return ended + [t for t in oracle.trials.values() if t.trial_id not in ended_ids]


def completed_in_end_order(oracle, rung=None):
    """Completed trials with a score, in the order they ended.

    Args:
        oracle: A KerasTuner oracle.
        rung: Only the trials of this successive-halving rung, or None for all.
    """
    trials = (oracle.trials[i] for i in oracle.end_order if i in oracle.trials)
    return [t for t in trials if is_completed(t) and (rung is None or rung_of(t) == rung)]


def ranked(trials, direction, score=lambda t: t.score):
    """`trials` best first; ties keep their given order (sort is stable), so
    a ranking of trials in end order is the same after a reload."""
    return sorted(trials, key=score, reverse=direction == "max")


def is_better(score, other, direction):
    """Whether `score` beats `other` under `direction` ("max" or "min")."""
    return score > other if direction == "max" else score < other


def best_of(trials, direction):
    """The best of `trials` (non-empty); the earliest wins a tie."""
    best = trials[0]
    for trial in trials[1:]:
        if is_better(trial.score, best.score, direction):
            best = trial
    return best


def running_best(items, direction, score=lambda item: item):
    """The best item so far after each item (None before the first scored
    one); items whose score is None are skipped."""
    curve, best = [], None
    for item in items:
        value = score(item)
        if value is not None and (best is None or is_better(value, score(best), direction)):
            best = item
        curve.append(best)
    return curve
