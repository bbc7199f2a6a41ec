"""`NASOracle`: what tfnas's search strategies share.

A strategy subclasses `NASOracle` and implements `populate_space(trial_id)`,
using the helpers here: seeded random numbers that survive a restart,
random architectures, mutations and neighbourhoods that respect conditional
decisions, and the completed trials in the order they finished. Strategies
derive their population or incumbent from the trial history that KerasTuner
persists, so a restarted search continues where it stopped.
"""

import functools
import json
import os
import time

import keras_tuner as kt
import numpy as np

from tfnas import compat, moves, trials
from tfnas.architecture import Architecture
from tfnas.atomic import write_atomically
from tfnas.moves import candidate_values  # noqa: F401 (re-exported)
from tfnas.oracles import halving as halving_module
from tfnas.trials import COMPLETED, RUNNING, STOPPED  # noqa: F401 (re-exported)
from tfnas.validation import check_positive_int


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


def check_max_trials(max_trials):
    """Raises a clear error unless `max_trials` is a positive integer (or None)."""
    if max_trials is not None:
        check_positive_int(max_trials, "max_trials")


class NASOracle(kt.Oracle):
    """Base class of tfnas's search strategies (KerasTuner oracles).

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
    """

    def __init__(self, objective=None, max_trials=100, seed=None, halving=None,
                 **kwargs):
        check_max_trials(max_trials)
        if halving is not None and not isinstance(halving, halving_module.SuccessiveHalving):
            raise TypeError(
                "Received an invalid value for `halving`, expected a "
                f"SuccessiveHalving or None. Received: halving={halving!r}")
        super().__init__(objective=objective, max_trials=max_trials, seed=seed, **kwargs)
        if seed is not None:
            self.seed = int(seed)
            self._seed_state = self.seed
        self.halving = halving
        self._seen = (0, set())
        self._seen_names = None
        self.runners = {}  # trial id -> the tuner ids (workers) that were given it
        self.busy_seconds = 0.0  # time spent in create_trial and end_trial

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
        response = self.propose(rng)
        if "remember" in response:
            self.remember(trial_id, response.pop("remember"))
        if self.halving is not None and response["status"] == RUNNING:
            response["values"] = {**response["values"], **self.halving.first_rung()}
        return response

    def get_state(self):
        state = super().get_state()
        state["runners"] = self.runners
        state["busy_seconds"] = self.busy_seconds
        return state

    def set_state(self, state):
        super().set_state(state)
        self._seen = (0, set())  # the trials were reloaded
        self.runners = dict(state.get("runners", {}))
        self.busy_seconds = float(state.get("busy_seconds", 0.0))

    def learn(self):
        """Learns from the trial history; called after each trial ends.

        A strategy with a model of its own (e.g. the controller) trains it
        here; its state is saved right after.
        """

    def scalars(self):
        """The strategy's own training figures to log after a trial, e.g.
        the controller's reward, baseline and entropy (`{name: float}`)."""
        return {}

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
            if not compat.display_has_started(self, trial.trial_id):
                self._display.on_trial_begin(trial)  # a no-op when verbose=0
        self.busy_seconds += time.perf_counter() - start
        return trial

    @synchronized
    def update_trial(self, trial_id, metrics, step=0):
        return super().update_trial(trial_id, metrics, step=step)

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
        self.learn()
        self.save()  # now that the trial is no longer ongoing

    def _release(self, trial_id):
        """Forgets which worker runs `trial_id`."""
        for tuner_id, ongoing in list(self.ongoing_trials.items()):
            if ongoing.trial_id == trial_id:
                del self.ongoing_trials[tuner_id]
        self.save()

    def save(self):
        write_atomically(self._get_oracle_fname(), self.get_state())

    def _save_trial(self, trial):
        write_atomically(os.path.join(self._get_trial_dir(trial.trial_id), "trial.json"),
                         trial.get_state())

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


class RandomOracle(NASOracle):
    """Random search: every trial samples each active decision uniformly.

    The baseline every NAS strategy must beat (Li & Talwalkar, 2019). Never
    proposes an architecture twice; stops early when the space is exhausted.
    """

    def propose(self, rng):
        return self.random_proposal(rng)
