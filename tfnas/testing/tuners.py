"""KerasTuner's Tuner contract, which `NASTuner` must keep.

The checks a KerasTuner user relies on with a `keras_tuner.Tuner`, run on
real (tiny) training: resuming a killed search with the trial display on,
retries of build errors and NaN results (`max_retries_per_trial`),
`max_consecutive_failed_trials`, a list objective, `hypermodel=None` with a
custom `run_trial` and a search without data, `search(verbose=0)`,
`tune_new_entries=False`, and a clear error for a `fit` result without the
objective. `check_tuner_contract(keras_tuner.RandomSearch)` passes too,
except `nan_result_retried` (see there): that keeps the checks honest about
KerasTuner's behaviour.
"""

import contextlib
import io
import os
import tempfile

import keras
import keras_tuner as kt

from tfnas import gc_scope
from tfnas.data import digits_arrays
from tfnas.testing.contract import Killed

ACCURACY = kt.Objective("val_accuracy", "max")


def tiny_digits(train=240, validation=80):
    """A few of the embedded digits: `(x, y, validation_data)`."""
    splits = digits_arrays(0)
    x, y = splits["train"]
    val_x, val_y = splits["validation"]
    return x[:train], y[:train], (val_x[:validation], val_y[:validation])


class TinyModel(kt.HyperModel):
    """A one-hidden-layer classifier of the digits, counting builds and fits.

    Args:
        fail_build: `fail_build(build_number) -> bool`: raise ValueError in
            that build (counting from 1).
        nan_fit: `nan_fit(fit_number) -> bool`: report a NaN objective from
            that fit instead of training.
        fit_result: If set, `fit` returns this instead of the History.
        killed_fit: Raise `Killed` in this fit (counting from 1).
        extra: Also declare `dropout`, Choice of 0.0 and 0.5, default 0.0.
    """

    def __init__(self, fail_build=None, nan_fit=None, fit_result=None, killed_fit=None,
                 extra=False):
        super().__init__()
        self.fail_build = fail_build
        self.nan_fit = nan_fit
        self.fit_result = fit_result
        self.killed_fit = killed_fit
        self.extra = extra
        self.builds = self.fits = 0

    def build(self, hp):
        units = hp.Int("units", 2, 32)
        rate = hp.Choice("dropout", [0.0, 0.5], default=0.0) if self.extra else 0.0
        self.builds += 1
        if self.fail_build is not None and self.fail_build(self.builds):
            raise ValueError(f"synthetic build error {self.builds}")
        model = keras.Sequential([
            keras.Input((8, 8, 1)), keras.layers.Flatten(),
            keras.layers.Dense(units, activation="relu"), keras.layers.Dropout(rate),
            keras.layers.Dense(10, activation="softmax")])
        # Eager: tracing a graph would cost more than the few steps it runs.
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"],
                      run_eagerly=True)
        return model

    def fit(self, hp, model, *args, **kwargs):
        self.fits += 1
        if self.killed_fit == self.fits:
            raise Killed()
        if self.nan_fit is not None and self.nan_fit(self.fits):
            return {"val_accuracy": float("nan"), "val_loss": float("nan")}
        history = model.fit(*args, **kwargs)
        return history if self.fit_result is None else dict(self.fit_result)


def _expect(condition, message):
    if not condition:
        raise AssertionError(message)


def _statuses(tuner):
    return {trial_id: t.status for trial_id, t in tuner.oracle.trials.items()}


def _search(tuner, **kwargs):
    x, y, validation = tiny_digits()
    tuner.search(x, y, validation_data=validation, epochs=1, batch_size=64, **kwargs)


def check_resume_with_display_on(make_tuner, directory, display_on):
    """A search killed during a trial resumes with KerasTuner's display on:
    the killed trial is trained once more, and a further resume trains
    nothing."""
    first = TinyModel(killed_fit=2)
    try:
        _search(make_tuner(first, directory, max_trials=3, **display_on))
        raise AssertionError("the search was not killed")
    except Killed:
        pass
    resumed = TinyModel()
    tuner = make_tuner(resumed, directory, max_trials=3, **display_on)
    _search(tuner)
    _expect(set(_statuses(tuner).values()) == {"COMPLETED"} and len(_statuses(tuner)) == 3,
            f"after a resume: {_statuses(tuner)}")
    _expect(first.fits + resumed.fits == 3 + 1,
            f"{first.fits + resumed.fits} trainings for 3 trials, one killed: expected 4")
    again = TinyModel()
    _search(make_tuner(again, directory, max_trials=3, **display_on))
    _expect(again.fits == 0, f"a finished search resumed again trained {again.fits} times")


def check_retries(make_tuner, directory, display_on):
    """Build errors are retried up to `max_retries_per_trial` times; a trial
    that still fails is FAILED with its reason."""
    # Build 1 declares the space; builds 2 and 4 (first runs of trials) fail.
    model = TinyModel(fail_build=lambda n: n in (2, 4))
    tuner = make_tuner(model, os.path.join(directory, "recovers"), max_trials=2,
                       max_retries_per_trial=1)
    _search(tuner)
    _expect(set(_statuses(tuner).values()) == {"COMPLETED"},
            f"retried trials: {_statuses(tuner)}")
    _expect((model.builds, model.fits) == (1 + 4, 2),
            f"2 trials, each failing once: {model.builds - 1} builds, {model.fits} fits, "
            "expected 4 and 2")

    model = TinyModel(fail_build=lambda n: n > 1)  # the first build declares the space
    tuner = make_tuner(model, os.path.join(directory, "fails"), max_trials=2,
                       max_retries_per_trial=1, max_consecutive_failed_trials=5)
    _search(tuner)
    _expect(set(_statuses(tuner).values()) == {"FAILED"}, f"failing: {_statuses(tuner)}")
    _expect(model.builds == 1 + 4, f"2 trials run twice each: {model.builds - 1} builds")
    _expect(all("synthetic build error" in (t.message or "")
                for t in tuner.oracle.trials.values()),
            "a failed trial must keep its reason")


def check_nan_result_retried(make_tuner, directory, display_on):
    """A NaN result is retried like an error, and a retry that succeeds
    completes the trial with the retry's metrics. (KerasTuner retries it
    but keeps the NaN in the trial's metrics, so the trial fails anyway.)"""
    model = TinyModel(nan_fit=lambda n: n == 1)
    tuner = make_tuner(model, directory, max_trials=2, max_retries_per_trial=1)
    _search(tuner)
    _expect(set(_statuses(tuner).values()) == {"COMPLETED"},
            f"a NaN result retried: {_statuses(tuner)}")
    _expect(model.fits == 3, f"2 trials, one NaN result: {model.fits} fits, expected 3")


def check_consecutive_failures(make_tuner, directory, display_on):
    """`max_consecutive_failed_trials` failed trials in a row stop the search."""
    model = TinyModel(fail_build=lambda n: n > 1)
    tuner = make_tuner(model, directory, max_trials=5, max_consecutive_failed_trials=2)
    try:
        _search(tuner)
        raise AssertionError("max_consecutive_failed_trials=2 did not stop the search")
    except RuntimeError as error:
        _expect("consecutive failures" in str(error), f"unexpected error: {error}")
    _expect(len(tuner.oracle.end_order) == 2, f"ended {tuner.oracle.end_order}")


def check_multi_objective(make_tuner, directory, display_on):
    """A list objective is computed per epoch, as KerasTuner does."""
    objective = [kt.Objective("val_accuracy", "max"), kt.Objective("val_loss", "min")]
    tuner = make_tuner(TinyModel(), directory, max_trials=2, objective=objective)
    _search(tuner)
    _expect(set(_statuses(tuner).values()) == {"COMPLETED"}, f"statuses {_statuses(tuner)}")
    for trial in tuner.oracle.trials.values():
        metrics = trial.metrics
        expected = metrics.get_last_value("val_loss") - metrics.get_last_value("val_accuracy")
        _expect(abs(trial.score - expected) < 1e-5,
                f"trial {trial.trial_id}: score {trial.score}, expected {expected}")


def check_custom_run_trial(make_tuner, directory, display_on):
    """`hypermodel=None` is refused unless `run_trial` is overridden; a
    custom `run_trial` declares its hyperparameters and needs no data."""
    try:
        make_tuner(None, os.path.join(directory, "none"), max_trials=2)
        raise AssertionError("hypermodel=None was accepted without a custom run_trial")
    except ValueError:
        pass

    def run_trial(self, trial, *args, **kwargs):
        x = trial.hyperparameters.Int("x", 0, 20)
        return {"score": float(-(x - 7) ** 2)}

    base = make_tuner.tuner_class
    custom = type(f"Custom{base.__name__}", (base,), {"run_trial": run_trial})
    tuner = make_tuner(None, os.path.join(directory, "custom"), max_trials=4,
                       objective=kt.Objective("score", "max"), tuner_class=custom)
    tuner.search()
    _expect(set(_statuses(tuner).values()) == {"COMPLETED"} and len(_statuses(tuner)) == 4,
            f"custom run_trial: {_statuses(tuner)}")
    _expect([hp.name for hp in tuner.oracle.get_space().space] == ["x"],
            "hyperparameters declared in run_trial must join the space")


def check_quiet_search(make_tuner, directory, display_on):
    """`search(verbose=0)` prints nothing."""
    tuner = make_tuner(TinyModel(), directory, max_trials=2)
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        _search(tuner, verbose=0)
    _expect(not output.getvalue().strip(),
            f"search(verbose=0) printed: {output.getvalue()[:300]!r}")


def check_tune_new_entries(make_tuner, directory, display_on):
    """`tune_new_entries=False` keeps other hyperparameters at their default."""
    known = kt.HyperParameters()
    known.Int("units", 2, 32)
    tuner = make_tuner(TinyModel(extra=True), directory, max_trials=4,
                       hyperparameters=known, tune_new_entries=False)
    _search(tuner)
    _expect(set(_statuses(tuner).values()) == {"COMPLETED"}, f"statuses {_statuses(tuner)}")
    dropouts = {t.hyperparameters.get("dropout") for t in tuner.oracle.trials.values()}
    _expect(dropouts == {0.0}, f"tune_new_entries=False tuned `dropout`: {dropouts}")


def check_result_without_objective(make_tuner, directory, display_on):
    """A `fit` result without the objective stops the search with an error
    that names `HyperModel.fit()` and the objective, and only what it returned."""
    tuner = make_tuner(TinyModel(fit_result={"accuracy": 0.5}), directory, max_trials=2)
    try:
        _search(tuner)
        raise AssertionError("a result without the objective was accepted")
    except kt.errors.FatalError as error:
        message = str(error)
        _expect("HyperModel.fit()" in message and "val_accuracy" in message
                and "params" not in message, f"unclear error: {message}")


TUNER_CHECKS = {
    "resume_with_display_on": check_resume_with_display_on,
    "retries": check_retries,
    "nan_result_retried": check_nan_result_retried,
    "consecutive_failures": check_consecutive_failures,
    "multi_objective": check_multi_objective,
    "custom_run_trial": check_custom_run_trial,
    "quiet_search": check_quiet_search,
    "tune_new_entries": check_tune_new_entries,
    "result_without_objective": check_result_without_objective,
}


def check_tuner_contract(tuner_class, checks=None, display_on=None, **tuner_args):
    """Runs KerasTuner's Tuner contract checks on a tuner class.

    Args:
        tuner_class: `tfnas.NASTuner`, `keras_tuner.RandomSearch`, or a
            subclass, called as `tuner_class(hypermodel=, objective=,
            max_trials=, seed=, directory=, project_name=, **oracle_args,
            **tuner_args)`.
        checks: Names from `TUNER_CHECKS`; all by default.
        display_on: Arguments that leave KerasTuner's trial display on (e.g.
            `{"progress": False}` for `NASTuner`).
        **tuner_args: Other arguments of every tuner (e.g. `oracle="random"`).

    Raises:
        AssertionError: naming the failed check.
    """
    def make_tuner(hypermodel, directory, tuner_class=tuner_class, **kwargs):
        arguments = {"objective": ACCURACY, "seed": 1, **tuner_args, **kwargs}
        return tuner_class(hypermodel=hypermodel, directory=directory,
                           project_name="contract", **arguments)

    make_tuner.tuner_class = tuner_class
    for name in checks or TUNER_CHECKS:
        # The full collections before each trial (KerasTuner's, any tuner's)
        # walk only what the check made: NASTuner's own cheaper collections
        # for every tuner class, and for the several searches of a check.
        with tempfile.TemporaryDirectory() as directory, gc_scope.SearchCollections():
            try:
                TUNER_CHECKS[name](make_tuner, directory, display_on or {})
            except AssertionError as error:
                raise AssertionError(f"{name}: {error}") from error
