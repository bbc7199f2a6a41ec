"""Running strategies against a tabular benchmark."""

import dataclasses
import statistics
import tempfile

import keras_tuner as kt

from tfnas import oracles, trials
from tfnas.lookup import SIGNAL, LookupTuner  # noqa: F401 (re-exported)


@dataclasses.dataclass
class RunResult:
    """One strategy run on a table."""

    best_so_far: list  # final metric of the pick after each query
    picks: list  # table key of the pick after each query


def query(oracle, table):
    """Runs `oracle` (objective "signal") on `table` for its `max_trials`.

    Each trial is a lookup of its architecture's signal; an architecture the
    table lacks fails its trial. The trials are left in `oracle`.
    """
    def score(values):
        try:
            return table.lookup(values, table.signal)
        except KeyError as error:
            raise kt.errors.FailedTrialError(str(error)) from error

    with tempfile.TemporaryDirectory() as directory:
        LookupTuner(oracle, table.space, score, directory=directory).search()


def run(oracle, table):
    """Runs `oracle` on `table` (see `query`) and follows its pick.

    After each query the pick is the architecture with the best signal seen
    so far; the result records the pick's final metric after each query.
    """
    query(oracle, table)
    best_so_far, picks = [], []
    ended = [oracle.trials[trial_id] for trial_id in oracle.end_order]
    score = (lambda t: t.score if t.status == trials.COMPLETED else None)
    for best in trials.running_best(ended, table.direction, score=score):
        if best is not None:
            values = best.hyperparameters.values
            picks.append(table.key(values))
            best_so_far.append(table.lookup(values, table.final))
    return RunResult(best_so_far=best_so_far, picks=picks)


def compare(table, strategies, budgets, seeds, strategy_args=None):
    """Mean and standard deviation of the picked architecture's final metric.

    Each (strategy, seed) runs once for the largest budget; the pick at a
    smaller budget is the best signal among its first queries (an anytime
    evaluation), so budgets of one run are consistent with each other.

    Args:
        table: A `tfnas.bench.Table`.
        strategies: Names from `tfnas.oracles.ORACLES`.
        budgets: Numbers of queries.
        seeds: Seeds, e.g. `range(100)`.
        strategy_args: Optional {name: kwargs} for the oracles.

    Returns:
        A list of records `{strategy, budget, seeds, mean, std, regret}`,
        `regret` being the table's optimum minus the mean (plus for "min").
    """
    budgets = _checked_budgets(budgets)
    records = []
    for name in strategies:
        kwargs = (strategy_args or {}).get(name, {})
        curves = [run_seed(table, name, budgets[-1], seed, **kwargs) for seed in seeds]
        records.extend(summarize(table, name, curves, budgets))
    return records


def run_seed(table, strategy, budget, seed, **strategy_args):
    """The best-so-far curve of one seeded run of `strategy` for `budget` queries."""
    oracle = oracles.get(strategy, kt.Objective(SIGNAL, table.direction), budget,
                         seed=seed, space=table.space, **strategy_args)
    return run(oracle, table).best_so_far


def summarize(table, strategy, curves, budgets):
    """Records `{strategy, budget, seeds, mean, std, median, regret}` from
    best-so-far curves.

    A curve shorter than a budget (a search that ran out of architectures)
    counts with its last pick.
    """
    optimum = table.optimum()
    records = []
    for budget in _checked_budgets(budgets):
        finals = [curve[min(budget, len(curve)) - 1] for curve in curves if curve]
        if not finals:
            raise ValueError(f"No completed query in the runs of {strategy!r}.")
        mean = statistics.fmean(finals)
        records.append({
            "strategy": strategy, "budget": budget, "seeds": len(finals),
            "mean": mean, "std": statistics.pstdev(finals),
            "median": statistics.median(finals),
            "regret": (optimum - mean) if table.direction == "max" else (mean - optimum),
        })
    return records


def _checked_budgets(budgets):
    budgets = sorted(budgets)
    if not budgets or budgets[0] < 1:
        raise ValueError(f"Expected `budgets` to be positive query counts. Received: {budgets}")
    return budgets
