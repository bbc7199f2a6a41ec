"""KerasTuner's oracle, hardened: what every tfnas strategy inherits.

Fixes to `keras_tuner.Oracle` that have nothing to do with a search
strategy: locks released on errors, atomic state files, reload and
distributed-search repairs. `tfnas.oracles.base.NASOracle` (the strategy
template) builds on it.
"""

import functools
import json
import os
import time

import keras_tuner as kt

from tfnas import compat
from tfnas import early_stopping
from tfnas.atomic import write_atomically
from tfnas.trials import COMPLETED, RUNNING


class OracleStateError(RuntimeError):
    """The saved state of an oracle cannot be read."""


def synchronized(method):
    """`keras_tuner.synchronized` that releases the lock when `method` raises.

    Shares KerasTuner's per-oracle lock, so it also guards the KerasTuner
    methods that `method` calls (they see the lock held by this thread).
    """
    @functools.wraps(method)
    def wrapped(oracle, *args, **kwargs):
        with compat.oracle_lock(oracle):
            return method(oracle, *args, **kwargs)

    return wrapped


class HardenedOracle(kt.Oracle):
    """`keras_tuner.Oracle` with its failure modes fixed.

    Fixes KerasTuner behaviours for every strategy: `seed=0` is a seed
    (KerasTuner replaces it with a random one); the oracle's state is saved
    again after `end_trial` has removed the trial from the ongoing ones, so
    a restarted search does not run a finished trial again; `oracle.json` is
    written atomically (a crash mid-write leaves the previous state), and a
    corrupt one is reported by name instead of failing obscurely; an
    exception inside `create_trial`, `update_trial` or `end_trial` releases
    the oracle's lock instead of blocking every other worker.

    For distributed search (KerasTuner's chief and workers), also: trial
    files are written atomically too; a restarted chief keeps each running
    trial with the worker that runs it (KerasTuner queues them all for a
    retry, so the next worker to ask runs a trial that its owner is still
    training, and it is evaluated twice), and a restarted worker gets its
    trial back under its name; a second report of a trial that has already
    ended is ignored. (A failed trial's reason sent by a worker is moved to
    its message by the chief's servicer, `tfnas.leases`.)

    Subclasses learn from a finished trial in `trial_ended(trial)`, called
    before the state is saved.

    Takes per-epoch reports (`tfnas.early_stopping`): their learning curves
    are recorded in the trial's metrics, and the oracle's `early_stopping`
    rule (None by default) may answer STOPPED.
    """

    takes_epoch_reports = True

    def __init__(self, objective=None, max_trials=100, seed=None, **kwargs):
        super().__init__(objective=objective, max_trials=max_trials, seed=seed, **kwargs)
        if seed is not None:
            self.seed = int(seed)
            self._seed_state = self.seed
        self.runners = {}  # trial id -> the tuner ids (workers) that were given it
        self.busy_seconds = 0.0  # time spent in create_trial and end_trial
        self.early_stopping = None  # a tfnas.early_stopping.StoppingRule

    def trial_ended(self, trial):
        """Called after `trial` has ended, before the state is saved."""

    def get_state(self):
        state = super().get_state()
        state["runners"] = self.runners
        state["busy_seconds"] = self.busy_seconds
        return state

    def set_state(self, state):
        super().set_state(state)
        self.runners = dict(state.get("runners", {}))
        self.busy_seconds = float(state.get("busy_seconds", 0.0))

    @synchronized
    def create_trial(self, tuner_id):
        start = time.perf_counter()
        trial = super().create_trial(tuner_id)
        if trial.status == RUNNING:
            runners = self.runners.setdefault(trial.trial_id, [])
            if not runners or runners[-1] != tuner_id:
                runners.append(tuner_id)
            # A trial handed back after a reload (see `reload`) comes through
            # KerasTuner's early return, which skips its display: record the
            # start there too, or the display's `on_trial_end` raises KeyError.
            compat.show_trial_start(self, trial)
        self.busy_seconds += time.perf_counter() - start
        return trial

    @synchronized
    def update_trial(self, trial_id, metrics, step=0):
        metrics, planned_epochs = early_stopping.take_planned_epochs(metrics)
        if planned_epochs is None:
            return super().update_trial(trial_id, metrics, step=step)
        trial = self.trials[trial_id]  # a per-epoch report: a learning curve
        for name, value in metrics.items():
            trial.metrics.update(name, value, step=int(step))
        answer = early_stopping.judge(self, trial, int(step), planned_epochs)
        self._save_trial(trial)
        return answer

    @synchronized
    def end_trial(self, trial=None, status=COMPLETED, trial_id=None):
        """Ends a trial, as `keras_tuner.Oracle.end_trial(trial)` does.

        KerasTuner's older signature `end_trial(trial_id, status="COMPLETED")`
        is accepted too (as KerasTuner's `synchronized` accepts it); the
        trial keeps its values and metrics.
        """
        if isinstance(trial, str) or trial_id is not None:
            trial = self._trial_to_end(trial_id or trial, status)
        start = time.perf_counter()
        self._end_trial(trial)
        self.busy_seconds += time.perf_counter() - start

    def _trial_to_end(self, trial_id, status):
        """A copy of trial `trial_id` with `status`, for the old signature."""
        if trial_id not in self.trials:
            raise ValueError(
                f"Received an invalid value for `trial_id`, expected one of this "
                f"oracle's trials. Received: trial_id={trial_id!r}")
        known = self.trials[trial_id]
        trial = kt.engine.trial.Trial(known.hyperparameters.copy(), trial_id=trial_id,
                                      status=status)
        trial.message = known.message
        return trial

    def _end_trial(self, trial):
        if trial.trial_id in self.end_order:
            # E.g. a worker that lost the chief reports again after a restart.
            self._release(trial.trial_id)
            return
        super().end_trial(trial)
        self.trial_ended(trial)
        self.save()  # now that the trial is no longer ongoing

    def _release(self, trial_id):
        """Forgets which worker runs `trial_id`."""
        for tuner_id, ongoing in list(self.ongoing_trials.items()):
            if ongoing.trial_id == trial_id:
                del self.ongoing_trials[tuner_id]
        self.save()

    # The oracle's and the trials' state are rewritten at every trial's start,
    # report and end, and the oracle's grows with the trials: one line of
    # JSON each, which the C encoder writes (see `write_atomically`).

    def save(self):
        write_atomically(self._get_oracle_fname(), self.get_state(), indent=None)

    def _save_trial(self, trial):
        write_atomically(os.path.join(self._get_trial_dir(trial.trial_id), "trial.json"),
                         trial.get_state(), indent=None)

    def reload(self):
        path = self._get_oracle_fname()
        try:
            with open(path) as file:
                state = json.load(file)
        except (OSError, ValueError) as error:
            raise OracleStateError(
                f"The oracle state {path} cannot be read ({error}). The finished "
                f"trials are intact in {os.path.dirname(path)}/trial_*/trial.json; "
                "restore oracle.json from a backup to resume, or start the "
                "search over with overwrite=True (or another project name)."
            ) from error
        super().reload()
        # KerasTuner's reload appends the running trials to the retry queue;
        # give them back to their workers instead (see the class docstring).
        for tuner_id, trial_id in state.get("ongoing_trials", {}).items():
            queue = compat.retry_queue(self)
            if trial_id in queue:
                del queue[len(queue) - 1 - queue[::-1].index(trial_id)]
            self.ongoing_trials[tuner_id] = self.trials[trial_id]
