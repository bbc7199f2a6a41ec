"""TensorBoard logs of a search: HParams sessions, search scalars, diagrams.

Layout under the log directory (one TensorBoard "run" per folder):

- `.` (the root): the HParams experiment: the architecture decisions as
  hyperparameters, the objective and the costs as metrics. Rewritten as the
  search discovers decisions.
- `<trial_id>`: the trial's HParams session: its decision values, a readable
  summary, and the objective, `params`, `flops`, `latency_ms`,
  `train_time_s` as scalars; failed trials end with a failure status and
  their root cause as the text `failure_reason`.
- `<trial_id>/execution0/{train,validation}`: the training curves, written by
  Keras's TensorBoard callback.
- `search`: `best_<objective>` by trial number (wall time is on every
  point: use TensorBoard's "Relative" axis), `best_<objective>_by_seconds`
  by seconds since the search began, each trial's `<objective>`, the
  strategy's own figures as `strategy/<name>` (the controller's reward,
  baseline, entropy and loss), and the image `best_architecture` each time
  the best trial changes.
"""

import contextlib
import glob
import os
import time

import keras_tuner as kt
import tensorflow as tf
from tensorboard.plugins.hparams import api as hparams_api
from tensorboard.plugins.hparams import api_pb2
from tensorboard.plugins.hparams import summary as hparams_summary

from tfnas import plots, progress, trials
from tfnas.architecture import BUDGET_PREFIX, Architecture

COST_METRICS = ("params", "flops", "latency_ms", "predicted_latency_ms", "train_time_s")
SUMMARY_HPARAM = "architecture"
FAILURE_REASON = "failure_reason"
SEARCH_RUN = "search"


def _domain(hp):
    """The TensorBoard domain of a KerasTuner hyperparameter, or None."""
    if isinstance(hp, kt.engine.hyperparameters.Boolean):
        return hparams_api.Discrete([False, True])
    if isinstance(hp, kt.engine.hyperparameters.Fixed):
        return hparams_api.Discrete([hp.value])
    if isinstance(hp, kt.engine.hyperparameters.Choice):
        return hparams_api.Discrete(list(hp.values))
    if isinstance(hp, kt.engine.hyperparameters.Int):
        return hparams_api.IntInterval(hp.min_value, hp.max_value)
    if isinstance(hp, kt.engine.hyperparameters.Float):
        return hparams_api.RealInterval(float(hp.min_value), float(hp.max_value))
    return None


def _write_once(path, write):
    writer = tf.summary.create_file_writer(path)
    with writer.as_default():
        write()
    writer.close()


class SearchLog:
    """Writes the TensorBoard logs of one search (see the module docstring).

    Args:
        log_dir: The search's log directory.
        objective: The objective's name.
        direction: "max" or "min".
        describe: Optional `values -> str`, the space's one-line summary.
        diagram: Optional `values -> graphs`, the space's diagram (see
            `tfnas.spaces.SearchSpace.diagram`); without it, no image.
        started_at: Unix time at which the search began (the origin of
            `best_<objective>_by_seconds`); defaults to now.
    """

    def __init__(self, log_dir, objective, direction, describe=None, diagram=None,
                 started_at=None):
        self.log_dir = str(log_dir)
        self.objective = objective
        self.direction = direction
        self.describe = describe
        self.diagram = diagram
        self.started_at = time.time() if started_at is None else started_at
        self._search_writer = None
        self._best_trial_id = None

    def _search(self):
        if self._search_writer is None:
            self._search_writer = tf.summary.create_file_writer(
                os.path.join(self.log_dir, SEARCH_RUN))
        return self._search_writer

    def write_experiment(self, hyperparameters):
        """(Re)writes the HParams experiment for the decisions known so far.

        Args:
            hyperparameters: The oracle's `keras_tuner.HyperParameters`.
        """
        hparams = [hparams_api.HParam(hp.name, _domain(hp))
                   for hp in hyperparameters.space
                   if not hp.name.startswith(BUDGET_PREFIX)]
        hparams.append(hparams_api.HParam(SUMMARY_HPARAM))
        metrics = [hparams_api.Metric(name)
                   for name in (self.objective, *COST_METRICS, trials.STOPPED_AT)]
        os.makedirs(self.log_dir, exist_ok=True)
        previous = glob.glob(os.path.join(self.log_dir, "events.out.tfevents.*"))
        _write_once(self.log_dir, lambda: hparams_api.hparams_config(hparams, metrics))
        for path in previous:  # only after the new one exists
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)

    def log_trial(self, trial, number, best_trial=None, strategy_scalars=None):
        """Writes a finished trial's session and the search scalars.

        Args:
            trial: The finished `keras_tuner.engine.trial.Trial`.
            number: Its 1-based position among the finished trials; None to
                log the session only, without the search scalars.
            best_trial: The best completed trial so far, if any.
            strategy_scalars: The strategy's own figures (`{name: float}`,
                e.g. the controller's reward, baseline and entropy), logged
                as `strategy/<name>` in the search run.
        """
        values = Architecture.from_trial(trial).values
        summary = progress.describe(trial, self.describe, max_length=1000)
        completed = trial.status == trials.COMPLETED

        def write_session():
            hparams_api.hparams({**values, SUMMARY_HPARAM: summary},
                                trial_id=trial.trial_id)
            for name in (self.objective, *COST_METRICS, trials.STOPPED_AT):
                if trial.metrics.exists(name):
                    tf.summary.scalar(name, trial.metrics.get_last_value(name), step=0)
            if not completed:
                tf.summary.text(FAILURE_REASON, progress.failure_reason(trial), step=0)
            status = api_pb2.STATUS_SUCCESS if completed else api_pb2.STATUS_FAILURE
            end = hparams_summary.session_end_pb(status)
            tf.summary.experimental.write_raw_pb(end.SerializeToString(), step=0)

        _write_once(os.path.join(self.log_dir, str(trial.trial_id)), write_session)
        if number is None:
            return
        with self._search().as_default():
            for name, value in (strategy_scalars or {}).items():
                tf.summary.scalar(f"strategy/{name}", value, step=number)
            if completed and trial.score is not None:
                tf.summary.scalar(self.objective, trial.score, step=number)
            if best_trial is not None and best_trial.score is not None:
                tf.summary.scalar(f"best_{self.objective}", best_trial.score, step=number)
                seconds = int(round(time.time() - self.started_at))
                tf.summary.scalar(f"best_{self.objective}_by_seconds", best_trial.score,
                                  step=seconds)
                if best_trial.trial_id != self._best_trial_id:
                    self._best_trial_id = best_trial.trial_id
                    self._log_architecture(best_trial, number)
        self._search().flush()

    def log_probabilities(self, rows):
        """Writes a supernet's architecture distribution over training:
        `supernet/<decision>/<candidate>` by epoch (rows as recorded by
        `tfnas.supernet.oneshot.ProbabilityLog`)."""
        with self._search().as_default():
            for row in rows:
                tf.summary.scalar(f"supernet/{row['decision']}/{row['candidate']}",
                                  row["probability"], step=row["epoch"])
        self.close()

    def _log_architecture(self, trial, step):
        if self.diagram is None:
            return
        values = Architecture.from_trial(trial).values
        title = (f"best: trial {trial.trial_id}, {self.objective}="
                 f"{trial.score:.4f}")
        png = plots.to_png(plots.architecture_diagram(self.diagram(values), title))
        image = tf.io.decode_png(png, channels=3)[tf.newaxis]
        tf.summary.image("best_architecture", image, step=step,
                         description=progress.describe(trial, self.describe, 1000))

    def close(self):
        if self._search_writer is not None:
            self._search_writer.close()
            self._search_writer = None
