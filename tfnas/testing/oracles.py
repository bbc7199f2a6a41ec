"""The oracle (search strategy) conformance suite.

Oracles are driven by KerasTuner's own search loop (`BaseTuner.search`),
with a deterministic synthetic objective instead of training, so each check
runs in seconds while exercising the real create/update/end protocol,
persistence and reload.
"""

import os
import tempfile
import threading

import keras_tuner as kt

from tfnas import lookup, spaces
from tfnas.architecture import Architecture
from tfnas.moves import candidate_values

OBJECTIVE = kt.Objective("score", "max")


class SearchInterrupted(Exception):
    """Raised by `LookupTuner(interrupt_after=n)` to simulate a Ctrl-C."""


class LookupTuner(lookup.LookupTuner):
    """`tfnas.lookup.LookupTuner` that can stop as an interrupted search would.

    Args:
        interrupt_after: Raise `SearchInterrupted` once this many trials have
            ended, or None; the other arguments are `tfnas.lookup.LookupTuner`'s.
    """

    def __init__(self, *args, interrupt_after=None, **kwargs):
        self.interrupt_after = interrupt_after
        super().__init__(*args, **kwargs)

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        if self.interrupt_after is not None and (
            len(self.oracle.end_order) >= self.interrupt_after
        ):
            raise SearchInterrupted(f"after {self.interrupt_after} trials")


def synthetic_score(values):
    """A deterministic score in [0, 1) for an architecture."""
    return int(Architecture(values).hash[:8], 16) / 16**8


def tiny_mlp():
    """An MLP space of 6 architectures: depth 1 or 2, two widths, one activation."""
    return spaces.MLPSpace((4,), 2, max_layers=2, units=(8, 16), activations=("relu",))


def _architectures(oracle):
    """(architecture, rung) of each trial in order: with successive halving
    an architecture recurs once per rung it is promoted to."""
    ordered = sorted(oracle.trials.values(), key=lambda t: int(t.trial_id))
    return [(Architecture.from_trial(t), t.hyperparameters.values.get("tuner/rung", 0))
            for t in ordered]


def _search(make_oracle, space, directory, max_trials, seed=0, score=synthetic_score,
            interrupt_after=None, **kwargs):
    oracle = make_oracle(objective=OBJECTIVE, max_trials=max_trials, seed=seed, **kwargs)
    tuner = LookupTuner(oracle, space, score, signal_name=OBJECTIVE.name,
                        directory=directory, project_name="conformance",
                        interrupt_after=interrupt_after)
    try:
        tuner.search()
    except SearchInterrupted:
        pass
    return tuner.oracle


def check_values_are_valid(oracle):
    """Every trial holds valid values for exactly its active decisions."""
    space = oracle.hyperparameters
    for trial in oracle.trials.values():
        values = Architecture.from_trial(trial).values
        hps = kt.HyperParameters()
        for hp in space.space:
            hps.merge([hp])
            if hps.is_active(hp) and hp.name in values:
                hps.values[hp.name] = values[hp.name]
        active = {hp.name for hp in space.space if hps.is_active(hp)}
        if set(values) != active:
            raise AssertionError(
                f"trial {trial.trial_id}: decisions {sorted(set(values) ^ active)} "
                f"are inactive but set, or active but missing: {values}")
        for hp in space.space:
            allowed = candidate_values(hp)
            if hp.name in values and allowed is not None and values[hp.name] not in allowed:
                raise AssertionError(
                    f"trial {trial.trial_id}: {hp.name}={values[hp.name]!r} is not "
                    f"one of {allowed}")


def check_oracle(make_oracle, max_trials=12):
    """Checks the contract of a search strategy.

    Args:
        make_oracle: A callable `make_oracle(objective=, max_trials=, seed=,
            **kwargs) -> keras_tuner.Oracle`, e.g. `tfnas.oracles.get` with
            the name bound (`functools.partial(tfnas.oracles.get, "evolution")`).
        max_trials: Trials per search in the checks.

    Raises:
        AssertionError: naming the failed check.
    """
    with tempfile.TemporaryDirectory() as root:
        def directory(name):
            return os.path.join(root, name)

        # Valid values, active decisions only, stop at max_trials, in spaces
        # with depth-conditional and operation-conditional decisions.
        for name, space in (
            ("mlp", spaces.MLPSpace((4,), 2, max_layers=3)),
            ("chain", spaces.ChainSpace((4, 4, 1), 2, max_layers=3, filters=(4, 8))),
        ):
            oracle = _search(make_oracle, space, directory(name), max_trials)
            check_values_are_valid(oracle)
            if len(oracle.trials) != max_trials:
                raise AssertionError(
                    f"{name}: {len(oracle.trials)} trials, expected max_trials={max_trials}")
            if len(set(_architectures(oracle))) != max_trials:
                raise AssertionError(f"{name}: an architecture was proposed twice")

        # A small space: no repeats while unexplored architectures remain.
        oracle = _search(make_oracle, tiny_mlp(), directory("tiny"), 10)
        found = _architectures(oracle)
        first_rung = [architecture for architecture, rung in found if rung == 0]
        if len(set(found)) != len(found) or len(set(first_rung)) != 6:
            raise AssertionError(
                f"tiny space of 6: {len(found)} trials, {len(set(found))} distinct, "
                f"{len(set(first_rung))} architectures")

        # Reload mid-search: the same proposals as an uninterrupted search.
        straight = _architectures(
            _search(make_oracle, space, directory("straight"), max_trials))
        _search(make_oracle, space, directory("resumed"), max_trials,
                interrupt_after=max_trials // 2)
        resumed = _architectures(
            _search(make_oracle, space, directory("resumed"), max_trials))
        if resumed != straight:
            raise AssertionError(
                "a search reloaded after half its trials proposed other architectures "
                "than an uninterrupted one with the same seed")

        # Failed trials: recorded, the search goes on to max_trials.
        def failing(values):
            if int(Architecture(values).hash[-1], 16) % 3 == 0:
                raise kt.errors.FailedTrialError("synthetic failure")
            return synthetic_score(values)

        oracle = _search(make_oracle, space, directory("failing"), max_trials,
                         score=failing, max_consecutive_failed_trials=max_trials)
        statuses = [t.status for t in oracle.trials.values()]
        if len(statuses) != max_trials or "FAILED" not in statuses:
            raise AssertionError(f"failing trials: statuses {statuses}")

        check_concurrent_workers(make_oracle, space, directory("threads"), max_trials)


def check_concurrent_workers(make_oracle, space, directory, max_trials, workers=2):
    """Several threads create, update and end trials on one oracle at once."""
    oracle = make_oracle(objective=OBJECTIVE, max_trials=max_trials, seed=0)
    LookupTuner(oracle, space, synthetic_score, signal_name=OBJECTIVE.name,
                directory=directory, project_name="threads")
    errors = []

    def worker(tuner_id):
        try:
            while True:
                trial = oracle.create_trial(tuner_id)
                if trial.status == "STOPPED":
                    return
                if trial.status == "IDLE":
                    continue
                score = synthetic_score(trial.hyperparameters.values)
                oracle.update_trial(trial.trial_id, {OBJECTIVE.name: score})
                trial.status = "COMPLETED"
                oracle.end_trial(trial)
        except Exception as error:  # reported below, in the main thread
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(f"worker{i}",))
               for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    if errors:
        raise AssertionError(f"concurrent workers raised: {errors!r}")
    statuses = [t.status for t in oracle.trials.values()]
    if statuses != ["COMPLETED"] * max_trials:
        raise AssertionError(f"concurrent workers: statuses {statuses}")
    if len(set(_architectures(oracle))) != max_trials:
        raise AssertionError("concurrent workers: an architecture was proposed twice")
