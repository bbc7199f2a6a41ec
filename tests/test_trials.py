"""The trial vocabulary (tfnas.trials), the explicit rung, and the rooms."""

import ast
import pathlib

import keras_tuner as kt
import pytest

from tfnas import oracles, spaces, trials, validation
from tfnas.lookup import LookupTuner
from tfnas.oracles.halving import RUNG, SuccessiveHalving

OBJECTIVE = kt.Objective("score", "max")
TFNAS = pathlib.Path(__file__).resolve().parent.parent / "tfnas"


def _trial(trial_id, score, status=trials.COMPLETED, rung=None):
    hps = kt.HyperParameters()
    if rung is not None:
        hps.values[RUNG] = rung
    trial = kt.engine.trial.Trial(hps, trial_id=trial_id, status=status)
    trial.score = score
    return trial


def test_ranking_is_stable_and_follows_the_direction():
    ended = [_trial("0", 0.5), _trial("1", 0.9), _trial("2", 0.5), _trial("3", 0.1)]
    assert [t.trial_id for t in trials.ranked(ended, "max")] == ["1", "0", "2", "3"]
    assert [t.trial_id for t in trials.ranked(ended, "min")] == ["3", "0", "2", "1"]
    assert trials.best_of(ended, "max").trial_id == "1"
    assert trials.best_of([ended[0], ended[2]], "min").trial_id == "0"  # earliest wins a tie
    assert trials.is_better(2, 1, "max") and trials.is_better(1, 2, "min")
    assert not trials.is_better(1, 1, "max")


def test_running_best_skips_missing_scores():
    assert trials.running_best([None, 3, 1, None, 4], "max") == [None, 3, 3, 3, 4]
    assert trials.running_best([None, 3, 1, None, 4], "min") == [None, 3, 1, 1, 1]


def test_budget_keys_and_statuses_are_keras_tuners():
    assert trials.COMPLETED == kt.engine.trial.TrialStatus.COMPLETED
    assert trials.without_budget({"a": 1, trials.EPOCHS: 3, trials.RUNG: 1}) == {"a": 1}
    assert trials.rung_of(_trial("0", 1.0)) == 0
    assert trials.rung_of(_trial("0", 1.0, rung=2)) == 2


def test_completed_trials_keeps_every_rung_unless_asked(tmp_path):
    oracle = oracles.get("sha", OBJECTIVE, 30, seed=0, halving=SuccessiveHalving(1, 3, 3))
    LookupTuner(oracle, spaces.ChainSpace((4, 4, 1), 2, max_layers=3),
                lambda values: float(len(str(values))), signal_name="score",
                directory=tmp_path).search()
    every = oracle.completed_trials()
    first = oracle.completed_trials(rung=0)
    assert {trials.rung_of(t) for t in every} == {0, 1}  # higher rungs are not dropped
    assert first and all(trials.rung_of(t) == 0 for t in first)
    assert oracle.completed_trials(oracle.learning_rung) == first
    assert [t.trial_id for t in every] == [i for i in oracle.end_order
                                           if i in {t.trial_id for t in every}]


def test_check_int_says_what_was_expected():
    assert validation.check_int(3, "n", 1, 5) == 3
    with pytest.raises(ValueError, match=r"`units`, expected a positive integer. "
                                         r"Received: units=-3"):
        validation.check_positive_int(-3, "units")
    with pytest.raises(ValueError, match=r"expected an integer from 1 to 5. Received: n=6"):
        validation.check_int(6, "n", 1, 5)
    with pytest.raises(ValueError, match=r"expected an integer >= 2. Received: n=True"):
        validation.check_int(True, "n", 2)


def _imports(path):
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("path", sorted((TFNAS / "oracles").glob("*.py")), ids=lambda p: p.name)
def test_oracles_never_import_the_transport_or_the_spaces(path):
    imported = _imports(path)
    for module in ("tfnas.distributed", "tfnas.leases", "tfnas.secure_channel",
                   "tfnas.project", "tfnas.spaces"):
        assert module not in imported, f"{path.name} imports {module}"


def test_ground_floor_modules_import_nothing_of_tfnas():
    for name in ("atomic.py", "validation.py", "trials.py", "gc_scope.py"):
        assert not any(m.startswith("tfnas") for m in _imports(TFNAS / name)), name


def test_cli_does_not_import_the_test_kit():
    assert not any(m.startswith("tfnas.testing") for m in _imports(TFNAS / "cli.py"))
