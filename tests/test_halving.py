import warnings

import keras_tuner as kt
import numpy as np
import pytest

import tfnas
from tfnas import Architecture, cli, oracles, spaces
from tfnas.bench import LookupTuner
from tfnas.oracles.halving import EPOCHS, INITIAL_EPOCH, PARENT, RUNG, SuccessiveHalving

OBJECTIVE = kt.Objective("score", "max")


def test_rung_budgets():
    assert SuccessiveHalving(1, 9, 3).budgets() == [1, 3, 9]
    assert SuccessiveHalving(1, 10, 3).budgets() == [1, 3, 9, 10]
    assert SuccessiveHalving(2, 2, 2).budgets() == [2]
    for kwargs, match in (({"min_epochs": 0}, "`min_epochs`"), ({"eta": 1}, "`eta`"),
                          ({"min_epochs": 5, "max_epochs": 4}, "max_epochs")):
        with pytest.raises(ValueError, match=match):
            SuccessiveHalving(**kwargs)


def _budget_score(values):
    """Longer training helps; the architecture sets the ceiling."""
    quality = int(Architecture({k: v for k, v in values.items()
                                if not k.startswith("tuner/")}).hash[:6], 16) / 16**6
    epochs = values[EPOCHS]
    return quality * epochs / (epochs + 1)


def _run(name, max_trials, tmp_path, **kwargs):
    oracle = oracles.get(name, OBJECTIVE, max_trials, seed=0, **kwargs)
    space = spaces.ChainSpace((4, 4, 1), 2, max_layers=3)
    LookupTuner(oracle, space, _budget_score, signal_name="score",
                directory=tmp_path).search()
    return sorted(oracle.trials.values(), key=lambda t: int(t.trial_id))


def test_asynchronous_successive_halving_promotes_the_top_of_each_rung(tmp_path):
    trials = _run("sha", 60, tmp_path, halving=SuccessiveHalving(1, 9, 3))
    by_id = {t.trial_id: t for t in trials}
    promoted = set()
    for index, trial in enumerate(trials):
        values = trial.hyperparameters.values
        rung = values[RUNG]
        assert values[EPOCHS] == [1, 3, 9][rung]
        if rung == 0:
            assert values[INITIAL_EPOCH] == 0 and PARENT not in values
            continue
        parent = by_id[values[PARENT]]
        assert parent.hyperparameters.values[RUNG] == rung - 1
        assert values[INITIAL_EPOCH] == parent.hyperparameters.values[EPOCHS]
        architecture = Architecture.from_trial(trial)
        assert architecture == Architecture.from_trial(parent)
        assert (architecture, rung) not in promoted
        promoted.add((architecture, rung))
        # When it was promoted, the parent ranked in the top 1/eta of its rung.
        peers = [t for t in trials[:index]
                 if t.hyperparameters.values[RUNG] == rung - 1 and t.status == "COMPLETED"]
        ranked = sorted(peers, key=lambda t: t.score, reverse=True)
        assert parent in ranked[:len(peers) // 3]
    rungs = [t.hyperparameters.values[RUNG] for t in trials]
    assert rungs.count(2) >= 1 and rungs.count(1) >= 3 and rungs.count(0) >= 20


def test_evolution_with_halving_learns_from_first_rung_results(tmp_path):
    trials = _run("evolution", 40, tmp_path, halving=SuccessiveHalving(1, 3, 3),
                  population_size=6)
    first_rung = [Architecture.from_trial(t) for t in trials
                  if t.hyperparameters.values[RUNG] == 0]
    assert len(first_rung) == len(set(first_rung))  # no architecture proposed twice
    assert any(t.hyperparameters.values[RUNG] == 1 for t in trials)


def test_nas_tuner_trains_promoted_trials_from_their_parents(tmp_path, digits):
    oracle = oracles.get("sha", "val_accuracy", 4, seed=0,
                         halving=SuccessiveHalving(1, 3, 3))
    space = spaces.ChainSpace((8, 8, 1), 10, max_layers=2, filters=(8,))
    tuner = tfnas.NASTuner(space, oracle=oracle, directory=tmp_path)
    tuner.search(digits.train, validation_data=digits.validation, epochs=99, verbose=0)
    trials = sorted(tuner.oracle.trials.values(), key=lambda t: int(t.trial_id))
    assert [t.status for t in trials] == ["COMPLETED"] * 4
    first, promoted = trials[:3], trials[3]
    for trial in first:  # the search's epochs=99 is overridden by the budget
        assert trial.metrics.get_last_value("epochs") == 1
    assert promoted.hyperparameters.values[RUNG] == 1
    assert promoted.metrics.get_last_value("epochs") == 2  # epochs 1 -> 3
    parent = tuner.oracle.trials[promoted.hyperparameters.values[PARENT]]
    assert parent.score == max(t.score for t in first)
    assert "tuner/epochs" not in tuner.get_best_architectures(1)[0].values

    # The promoted trial starts from its parent's weights and optimizer state.
    model = tuner.hypermodel.build(promoted.hyperparameters.copy())
    parent_model = tuner.load_model(parent)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing of the checkpoint is skipped
        tuner._apply_budget(promoted, model, {})
    steps = len(digits.train)  # the parent trained one epoch
    assert int(model.optimizer.iterations.numpy()) == steps > 0
    for loaded, saved in zip(model.weights, parent_model.weights):
        np.testing.assert_array_equal(loaded.numpy(), saved.numpy())


def test_keras_tuner_hyperband_drives_nas_tuner(tmp_path, digits):
    oracle = oracles.get("hyperband", "val_accuracy", None, seed=0, max_epochs=3,
                         factor=3)
    space = spaces.ChainSpace((8, 8, 1), 10, max_layers=2, filters=(8,))
    tuner = tfnas.NASTuner(space, oracle=oracle, directory=tmp_path)
    tuner.search(digits.train, validation_data=digits.validation, verbose=0)
    trials = list(tuner.oracle.trials.values())
    assert len(trials) >= 4 and all(t.status == "COMPLETED" for t in trials)
    epochs = {t.hyperparameters.values["tuner/epochs"] for t in trials}
    assert epochs == {1, 3}
    assert all(not k.startswith("tuner/") for a in tuner.get_best_architectures(3)
               for k in a.values)


def test_cli_halving_options(tmp_path, capsys):
    args = ["search", "--max-trials", "4", "--epochs", "3", "--directory", str(tmp_path),
            "--space-arg", "max_layers=1", "--space-arg", "filters=[8]"]
    assert cli.main(args + ["--strategy", "sha"]) == 0
    assert "Test accuracy" in capsys.readouterr().out
    assert cli.main(args + ["--strategy", "kt-random", "--halving",
                            "--project-name", "x"]) == 2
    assert "--halving works with the strategies" in capsys.readouterr().err


def test_promotion_without_the_parent_checkpoint_trains_from_scratch(tmp_path, digits):
    space = spaces.ChainSpace((8, 8, 1), 10, max_layers=2, filters=(8,))

    def tuner(max_trials):
        oracle = oracles.get("sha", "val_accuracy", max_trials, seed=0,
                             halving=SuccessiveHalving(1, 3, 3))
        return tfnas.NASTuner(space, oracle=oracle, directory=tmp_path, project_name="p")

    tuner(3).search(digits.train, validation_data=digits.validation, verbose=0)
    for checkpoint in (tmp_path / "p").glob("trial_*/checkpoint.weights.h5"):
        checkpoint.unlink()  # as if the parents trained on another worker
    resumed = tuner(4)
    with pytest.warns(UserWarning, match="training from scratch"):
        resumed.search(digits.train, validation_data=digits.validation, verbose=0)
    promoted = resumed.oracle.trials["3"]
    assert promoted.status == "COMPLETED"
    assert promoted.metrics.get_last_value("epochs") == 3  # the whole budget
