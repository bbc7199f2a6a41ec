"""`LookupTuner`: KerasTuner's search loop, with a function in place of training.

Tabular benchmarks (`tfnas.bench`), the supernet's architecture search
(`tfnas.supernet`) and the strategy conformance suite (`tfnas.testing`) drive
oracles with it.
"""

import keras_tuner as kt

from tfnas import objectives

SIGNAL = "signal"


class LookupTuner(kt.engine.base_tuner.BaseTuner):
    """A tuner that answers each trial with a function instead of training.

    KerasTuner's own search loop drives the oracle (create, update and end
    trials, persistence, reload), so a strategy behaves exactly as in a
    training search.

    Args:
        oracle: The oracle to drive; its objective must be `signal_name`.
        hypermodel: The space whose decisions the oracle searches.
        score: A function from decision values to a float (reported as
            `signal_name`) or a dict of metrics. It may raise
            `keras_tuner.errors.FailedTrialError` to fail a trial. Computed
            objectives (e.g. `tfnas.objectives.MnasNetReward`) are added.
        signal_name: The metric name under which scores are reported.
        **kwargs: `directory`, `project_name`, `overwrite`.
    """

    def __init__(self, oracle, hypermodel, score, signal_name=SIGNAL, **kwargs):
        self.score = score
        self.signal_name = signal_name
        super().__init__(oracle, hypermodel, **kwargs)
        self.oracle.verbose = 0

    def run_trial(self, trial):
        result = self.score(trial.hyperparameters.values)
        metrics = ({name: float(value) for name, value in result.items()}
                   if isinstance(result, dict) else {self.signal_name: float(result)})
        return objectives.add_derived_metrics(self.oracle.objective, metrics)
