"""KerasTuner's Oracle contract, which every tfnas strategy must keep.

Each check drives an oracle the way KerasTuner does (its own search loop in
`keras_tuner.engine.base_tuner.BaseTuner`, or direct `create_trial`,
`update_trial` and `end_trial` calls as a KerasTuner worker makes them) and
asserts behaviour that KerasTuner documents for every `keras_tuner.Oracle`:
resuming a killed search with the trial display on, retries of failed
trials (`max_retries_per_trial`), `max_consecutive_failed_trials`,
`tune_new_entries` and `allow_new_entries`, a list of objectives
(`MultiObjective`), IDLE responses, NaN results in the best trials, the old
`end_trial(trial_id, status)` signature, and several tuner ids at once.

No training: each trial is answered by a function of its values, so a
check takes well under a second for most strategies. A new strategy passes
when `check_keras_tuner_contract(make_oracle)` does.
"""

import math
import os
import tempfile

import keras_tuner as kt

from tfnas.architecture import Architecture

OBJECTIVE = kt.Objective("score", "max")
_MAX_LOOPS = 2_000  # create_trial calls before a search is deemed stuck


class ContractSpace(kt.HyperModel):
    """A small space of the kinds a KerasTuner user declares: a choice, a
    narrow and a wide integer, and a log-sampled float (KerasTuner's
    getting-started learning rate). Builds no model.

    Args:
        extra: Also declare `extra` (Choice of 1, 2, 3, default 2), e.g. a
            hyperparameter the oracle was told not to tune.
        fixed_space: Declare only `units` (the space of `known_space()`).
    """

    def __init__(self, extra=False, fixed_space=False):
        super().__init__()
        self.extra = extra
        self.fixed_space = fixed_space

    def build(self, hp):
        hp.Int("units", 1, 40)
        if not self.fixed_space:
            hp.Choice("activation", ["relu", "tanh"])
            hp.Int("width", 1, 1000)
            hp.Float("learning_rate", 1e-4, 1e-2, sampling="log")
        if self.extra:
            hp.Choice("extra", [1, 2, 3], default=2)
        return None


def known_space():
    """The `HyperParameters` of `ContractSpace(fixed_space=True)`."""
    hp = kt.HyperParameters()
    ContractSpace(fixed_space=True).build(hp)
    return hp


def value_score(values):
    """A deterministic score in [0, 1) of a trial's values."""
    return int(Architecture(values).hash[:8], 16) / 16**8


class Killed(BaseException):
    """Raised inside a trial to simulate killing the search process (like
    KeyboardInterrupt, it escapes KerasTuner's per-trial error handling)."""


class ContractTuner(kt.engine.base_tuner.BaseTuner):
    """KerasTuner's own search loop, answering each trial with `evaluate`.

    The oracle's trial display stays on (KerasTuner's default, verbose=1).

    Args:
        oracle: The oracle under test.
        hypermodel: The space (a `ContractSpace`).
        evaluate: `evaluate(trial, run) -> float or dict`, `run` counting
            from 1 the times this trial has been run by this tuner; it may
            raise to fail the run.
        **kwargs: `directory`, `project_name`, `overwrite`.
    """

    def __init__(self, oracle, hypermodel, evaluate, **kwargs):
        self.evaluate = evaluate
        self.runs = {}  # trial id -> times run by this tuner
        self.loops = 0
        super().__init__(oracle, hypermodel, **kwargs)

    def pre_create_trial(self):
        self.loops += 1
        if self.loops > _MAX_LOOPS:
            raise AssertionError(
                f"the search did not stop after {_MAX_LOOPS} calls of create_trial")

    def run_trial(self, trial, *args, **kwargs):
        self.hypermodel.build(trial.hyperparameters)  # declares new entries
        self.runs[trial.trial_id] = self.runs.get(trial.trial_id, 0) + 1
        return self.evaluate(trial, self.runs[trial.trial_id])

    def total_runs(self):
        return sum(self.runs.values())


def _score(trial, run):
    return value_score(trial.hyperparameters.values)


def _tuner(make_oracle, directory, evaluate=_score, hypermodel=None, max_trials=6,
           objective=OBJECTIVE, **oracle_args):
    oracle = make_oracle(objective=objective, max_trials=max_trials, seed=1, **oracle_args)
    return ContractTuner(oracle, hypermodel or ContractSpace(), evaluate,
                         directory=directory, project_name="contract")


def _expect(condition, message):
    if not condition:
        raise AssertionError(message)


def _statuses(oracle):
    return {trial_id: t.status for trial_id, t in oracle.trials.items()}


def check_resume_with_display_on(make_oracle, directory):
    """A search killed during a trial resumes with the display on: the
    killed trial runs once more, every trial ends once, and a further
    resume runs nothing."""
    def killed_on_second_run(trial, run):
        killed_on_second_run.calls += 1
        if killed_on_second_run.calls == 2:
            raise Killed()
        return _score(trial, run)

    killed_on_second_run.calls = 0
    first = _tuner(make_oracle, directory, killed_on_second_run, max_trials=4)
    try:
        first.search()
        raise AssertionError("the search was not killed")
    except Killed:
        pass
    resumed = _tuner(make_oracle, directory, max_trials=4)
    resumed.search()
    oracle = resumed.oracle
    trials = len(oracle.trials)
    _expect(set(_statuses(oracle).values()) == {"COMPLETED"},
            f"after a resume: statuses {_statuses(oracle)}")
    _expect(sorted(oracle.end_order) == sorted(oracle.trials),
            f"after a resume: each trial must end once, end order {oracle.end_order}")
    runs = first.total_runs() + resumed.total_runs()
    _expect(runs == trials + 1,
            f"{runs} trial runs for {trials} trials, one of them killed: expected "
            f"{trials + 1}")
    again = _tuner(make_oracle, directory, max_trials=4)
    again.search()
    _expect(again.total_runs() == 0,
            f"a finished search resumed again ran {again.runs}")


def check_retries(make_oracle, directory):
    """A trial that raises is run again up to `max_retries_per_trial` times,
    then FAILED with its error message."""
    def fails_twice(trial, run):
        if run <= 2:
            raise RuntimeError(f"synthetic error {run}")
        return _score(trial, run)

    tuner = _tuner(make_oracle, os.path.join(directory, "recovers"), fails_twice,
                   max_trials=3, max_retries_per_trial=2)
    tuner.search()
    statuses = _statuses(tuner.oracle)
    _expect(set(statuses.values()) == {"COMPLETED"}, f"retried trials: {statuses}")
    _expect(set(tuner.runs.values()) == {3},
            f"max_retries_per_trial=2: each trial must run 3 times, ran {tuner.runs}")

    def always_fails(trial, run):
        raise RuntimeError("synthetic error")

    tuner = _tuner(make_oracle, os.path.join(directory, "fails"), always_fails,
                   max_trials=3, max_retries_per_trial=1,
                   max_consecutive_failed_trials=_MAX_LOOPS)  # Hyperband sets its own trials
    tuner.search()
    oracle = tuner.oracle
    _expect(set(_statuses(oracle).values()) == {"FAILED"}, f"failing: {_statuses(oracle)}")
    _expect(set(tuner.runs.values()) == {2},
            f"max_retries_per_trial=1: each trial must run twice, ran {tuner.runs}")
    _expect(all("synthetic error" in (t.message or "") for t in oracle.trials.values()),
            "a failed trial must keep its error message")


def check_consecutive_failures(make_oracle, directory):
    """The search stops with RuntimeError after `max_consecutive_failed_trials`
    failed trials in a row."""
    def fails(trial, run):
        raise kt.errors.FailedTrialError("synthetic failure")

    tuner = _tuner(make_oracle, directory, fails, max_trials=6,
                   max_consecutive_failed_trials=2)
    try:
        tuner.search()
        raise AssertionError("max_consecutive_failed_trials=2 did not stop the search")
    except RuntimeError as error:
        _expect("consecutive failures" in str(error), f"unexpected error: {error}")
    _expect(len(tuner.oracle.end_order) == 2,
            f"stopped after {len(tuner.oracle.end_order)} trials, expected 2")


def check_new_entries(make_oracle, directory):
    """`tune_new_entries=False` keeps undeclared hyperparameters at their
    defaults for a whole search; `allow_new_entries=False` refuses them;
    both need `hyperparameters`."""
    tuner = _tuner(make_oracle, os.path.join(directory, "tune"),
                   hypermodel=ContractSpace(extra=True, fixed_space=True), max_trials=8,
                   hyperparameters=known_space(), tune_new_entries=False)
    tuner.search()
    oracle = tuner.oracle
    _expect(set(_statuses(oracle).values()) == {"COMPLETED"},
            f"tune_new_entries=False: statuses {_statuses(oracle)}")
    _expect([hp.name for hp in oracle.get_space().space] == ["units"],
            f"tune_new_entries=False: the space became {oracle.get_space().space}")
    extras = {t.hyperparameters.values.get("extra", 2) for t in oracle.trials.values()}
    _expect(extras == {2}, f"tune_new_entries=False tuned `extra`: {extras}")
    _expect(len({t.hyperparameters.values["units"] for t in oracle.trials.values()}) > 1,
            "tune_new_entries=False: `units` was not tuned")

    try:
        _tuner(make_oracle, os.path.join(directory, "refuse"),
               hypermodel=ContractSpace(extra=True, fixed_space=True),
               hyperparameters=known_space(), allow_new_entries=False)
        raise AssertionError("allow_new_entries=False accepted a new hyperparameter")
    except RuntimeError as error:
        _expect("allow_new_entries" in str(error), f"unexpected error: {error}")
    tuner = _tuner(make_oracle, os.path.join(directory, "allow"),
                   hypermodel=ContractSpace(fixed_space=True), max_trials=3,
                   hyperparameters=known_space(), allow_new_entries=False)
    tuner.search()
    _expect(len(tuner.oracle.end_order) >= 3, "allow_new_entries=False: the search stopped")

    for argument in ("tune_new_entries", "allow_new_entries"):
        try:
            make_oracle(objective=OBJECTIVE, max_trials=3, **{argument: False})
            raise AssertionError(f"{argument}=False accepted without `hyperparameters`")
        except ValueError:
            pass


def check_multi_objective(make_oracle, directory):
    """A list objective is KerasTuner's `MultiObjective`: trials are scored
    by the weighted sum and ranked by it."""
    objective = [kt.Objective("accuracy", "max"), kt.Objective("cost", "min")]

    def two_metrics(trial, run):
        score = value_score(trial.hyperparameters.values)
        metrics = {"accuracy": score, "cost": (score * 7.3) % 1.0}
        metrics["multi_objective"] = tuner.oracle.objective.get_value(metrics)
        return metrics

    tuner = _tuner(make_oracle, directory, two_metrics, max_trials=6, objective=objective)
    tuner.search()
    oracle = tuner.oracle
    _expect(type(oracle.objective).__name__ == "MultiObjective",
            f"objective=[...] became {oracle.objective}")
    completed = [t for t in oracle.trials.values() if t.status == "COMPLETED"]
    _expect(len(completed) == len(oracle.trials) >= 6, f"statuses {_statuses(oracle)}")
    for trial in completed:
        expected = (trial.metrics.get_last_value("cost")
                    - trial.metrics.get_last_value("accuracy"))
        _expect(math.isclose(trial.score, expected, rel_tol=1e-6, abs_tol=1e-9),
                f"trial {trial.trial_id}: score {trial.score}, expected cost - "
                f"accuracy = {expected}")
    best = oracle.get_best_trials(len(completed))
    _expect([t.score for t in best] == sorted(t.score for t in completed),
            "a MultiObjective is minimized: best trials must be in increasing score")


def check_idle(make_oracle, directory):
    """An IDLE response creates no trial: its id is used by the next
    RUNNING trial, and the search goes on to its end."""
    tuner = _tuner(make_oracle, directory, max_trials=5)
    oracle = tuner.oracle
    populate = oracle.populate_space
    calls = []

    def sometimes_idle(trial_id):
        calls.append(trial_id)
        if len(calls) % 2:
            return {"status": "IDLE", "values": {"units": 3}}
        return populate(trial_id)

    oracle.populate_space = sometimes_idle
    tuner.search()
    ids = sorted(oracle.trials)
    _expect(ids == [f"{i:0{len(ids[0])}d}" for i in range(len(ids))],
            f"after IDLE responses, trial ids {ids} are not consecutive")
    _expect(set(_statuses(oracle).values()) == {"COMPLETED"}, f"statuses {_statuses(oracle)}")
    _expect(len(oracle.start_order) == len(ids) and len(set(oracle.start_order)) == len(ids),
            f"IDLE responses were recorded as started trials: {oracle.start_order}")


def check_best_trials_with_nan(make_oracle, directory):
    """A NaN result is not a score: the trial is retried, then FAILED, and
    the best trials rank the completed ones correctly, first."""
    def nan_for_odd(trial, run):
        if int(trial.trial_id) % 2:
            return float("nan")
        return _score(trial, run)

    tuner = _tuner(make_oracle, directory, nan_for_odd, max_trials=6,
                   max_consecutive_failed_trials=10)
    tuner.search()
    oracle = tuner.oracle
    for trial in oracle.trials.values():
        expected = "FAILED" if int(trial.trial_id) % 2 else "COMPLETED"
        _expect(trial.status == expected,
                f"trial {trial.trial_id}: {trial.status}, expected {expected}")
    completed = [t for t in oracle.trials.values() if t.status == "COMPLETED"]
    best = oracle.get_best_trials(len(oracle.trials))
    ranked = sorted((t.score for t in completed), reverse=True)
    _expect([t.score for t in best[:len(completed)]] == ranked,
            f"best trials {[(t.trial_id, t.score) for t in best]}: the completed "
            f"ones, best first, must come first")
    _expect(len(best) == len(oracle.trials), "get_best_trials dropped failed trials")


def check_old_end_trial_signature(make_oracle, directory):
    """`end_trial(trial_id, status)`, KerasTuner's older signature, ends the
    trial with that status (positional or by keyword)."""
    tuner = _tuner(make_oracle, directory, max_trials=5)
    oracle = tuner.oracle

    def start():
        trial = oracle.create_trial("tuner0")
        _expect(trial.status == "RUNNING", f"create_trial gave {trial.status}")
        return trial

    trial = start()
    oracle.update_trial(trial.trial_id, {"score": 0.25})
    oracle.end_trial(trial.trial_id, "COMPLETED")
    ended = oracle.get_trial(trial.trial_id)
    _expect(ended.status == "COMPLETED" and ended.score == 0.25,
            f"end_trial(id, 'COMPLETED'): {ended.status}, score {ended.score}")
    trial = start()
    oracle.end_trial(trial_id=trial.trial_id, status="FAILED")
    _expect(oracle.get_trial(trial.trial_id).status == "FAILED",
            "end_trial(trial_id=..., status='FAILED') did not fail the trial")
    _expect(not oracle.ongoing_trials, f"trials still ongoing: {oracle.ongoing_trials}")
    _expect(start().trial_id not in oracle.end_order, "a new trial was not created")


def check_concurrent_tuner_ids(make_oracle, directory):
    """Several tuners (ids) share one oracle: each gets its own trial, asking
    again returns its ongoing trial, trials may end in any order, and every
    tuner is eventually told to stop."""
    tuner = _tuner(make_oracle, directory, max_trials=7)
    oracle = tuner.oracle
    ids = ["tuner0", "tuner1", "tuner2"]
    running, stopped = {}, set()
    for _ in range(_MAX_LOOPS):
        for tuner_id in ids:
            if tuner_id in running or tuner_id in stopped:
                continue
            trial = oracle.create_trial(tuner_id)
            if trial.status == "STOPPED":
                stopped.add(tuner_id)
            elif trial.status == "RUNNING":
                again = oracle.create_trial(tuner_id)
                _expect(again.trial_id == trial.trial_id,
                        f"{tuner_id} asked again and got trial {again.trial_id} "
                        f"instead of its ongoing {trial.trial_id}")
                running[tuner_id] = trial
        if len(stopped) == len(ids):
            break
        trial_ids = [t.trial_id for t in running.values()]
        _expect(len(set(trial_ids)) == len(trial_ids),
                f"two tuners run the same trial: {running}")
        for tuner_id in sorted(running, reverse=True)[:2]:  # the newest ids first
            trial = running.pop(tuner_id)
            oracle.update_trial(trial.trial_id,
                                {"score": value_score(trial.hyperparameters.values)})
            trial.status = "COMPLETED"
            oracle.end_trial(trial)
    else:
        raise AssertionError("the tuners were never all stopped")
    _expect(not oracle.ongoing_trials, f"trials still ongoing: {oracle.ongoing_trials}")
    _expect(set(_statuses(oracle).values()) == {"COMPLETED"}, f"statuses {_statuses(oracle)}")
    _expect(sorted(oracle.end_order) == sorted(oracle.trials),
            f"end order {oracle.end_order} for trials {sorted(oracle.trials)}")


ORACLE_CHECKS = {
    "resume_with_display_on": check_resume_with_display_on,
    "retries": check_retries,
    "consecutive_failures": check_consecutive_failures,
    "new_entries": check_new_entries,
    "multi_objective": check_multi_objective,
    "idle": check_idle,
    "best_trials_with_nan": check_best_trials_with_nan,
    "old_end_trial_signature": check_old_end_trial_signature,
    "concurrent_tuner_ids": check_concurrent_tuner_ids,
}


def check_keras_tuner_contract(make_oracle, checks=None):
    """Runs KerasTuner's Oracle contract checks on a strategy.

    Args:
        make_oracle: A callable `make_oracle(objective=, max_trials=, seed=,
            **oracle_args) -> keras_tuner.Oracle` that accepts KerasTuner's
            Oracle arguments (`hyperparameters`, `tune_new_entries`,
            `max_retries_per_trial`, ...), e.g.
            `functools.partial(tfnas.oracles.get, "evolution")`.
        checks: Names from `ORACLE_CHECKS`; all by default.

    Raises:
        AssertionError: naming the failed check.
    """
    for name in checks or ORACLE_CHECKS:
        with tempfile.TemporaryDirectory() as directory:
            try:
                ORACLE_CHECKS[name](make_oracle, directory)
            except AssertionError as error:
                raise AssertionError(f"{name}: {error}") from error
