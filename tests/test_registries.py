"""The strategy and space registries, and the public surface of `tfnas`."""

import json
import os

import keras
import keras_tuner as kt
import pytest

import tfnas
from tfnas import cli, decisions, oracles, spaces, strategies
from tfnas.oracles.base import RandomOracle
from tfnas.supernet import oneshot
from tfnas.supernet.strategies import OneShotStrategy
from tfnas.supernet.tuner import PATHS_FILE, PROBABILITIES_FILE, OneShotTuner
from tests.waiting import run_fresh_python


@pytest.mark.slow
def test_documented_names_resolve_after_a_fresh_import():
    names = ["OneShotTuner", "SearchSpace", "objectives", "latency", "supernet",
             "strategies", "spaces", "oracles", "NASTuner", "rebuild"]
    code = ("import tfnas\n"
            f"for name in {names!r}:\n"
            "    assert getattr(tfnas, name) is not None, name\n"
            "assert tfnas.OneShotTuner.__name__ == 'OneShotTuner'\n"
            "assert tfnas.SearchSpace is tfnas.spaces.SearchSpace\n"
            "assert callable(tfnas.objectives.MnasNetReward)\n")
    run_fresh_python(code, timeout=300)


def test_nas_tuner_given_a_one_shot_strategy_says_how_to_run_it(tmp_path):
    space = spaces.MLPSpace((4,), 2, max_layers=2)
    with pytest.raises(ValueError, match=r"tfnas\.OneShotTuner\(space, strategy='darts'"):
        tfnas.NASTuner(space, oracle="darts", directory=tmp_path)


def test_the_cli_reads_its_strategy_lists_from_the_registry():
    choices = next(action.choices for action in cli.build_parser()._subparsers
                   ._group_actions[0].choices["search"]._actions
                   if action.dest == "strategy")
    assert sorted(choices) == strategies.names()
    assert strategies.names(one_shot=True) == [
        "beta-darts", "darts", "darts-pt", "darts2", "enas", "gdas", "proxyless",
        "spos"]
    assert strategies.names(halving=True) == [
        "controller", "dpp", "evolution", "local", "pnas", "ppo", "predictor", "random"]
    assert sorted(oracles.ORACLES) == strategies.names(one_shot=False)
    with pytest.raises(TypeError):
        oracles.ORACLES["mine"] = RandomOracle  # a read-only view


class FirstOracle(RandomOracle):
    """A user's strategy: random search, with the budget it was given."""

    def __init__(self, *args, warmup=0, **kwargs):
        super().__init__(*args, **kwargs)
        self.warmup = warmup


def test_a_registered_strategy_is_known_to_get_the_tuner_and_the_cli(monkeypatch):
    monkeypatch.setattr(strategies, "_REGISTRY", dict(strategies._REGISTRY))
    strategies.register("mine", budget=lambda max_trials: {"warmup": max_trials // 2},
                        halving=True)(FirstOracle)
    assert oracles.ORACLES["mine"] is FirstOracle
    oracle = oracles.get("mine", "val_accuracy", 8, seed=0)
    assert isinstance(oracle, FirstOracle) and oracle.warmup == 4
    assert oracles.get("mine", "val_accuracy", 8, warmup=1).warmup == 1

    args = cli.build_parser().parse_args(
        ["search", "--strategy", "mine", "--halving", "--epochs", "4", "--min-epochs", "2"])
    oracle = cli._make_oracle(args, spaces.MLPSpace((4,), 2))
    assert isinstance(oracle, FirstOracle)
    assert (oracle.halving.min_epochs, oracle.halving.max_epochs) == (2, 4)


def test_strategies_that_schedule_their_epochs_take_them_from_the_cli():
    space = spaces.MLPSpace((4,), 2)
    args = cli.build_parser().parse_args(["search", "--strategy", "sha", "--epochs", "5",
                                          "--min-epochs", "2", "--eta", "2"])
    halving = cli._make_oracle(args, space).halving
    assert (halving.min_epochs, halving.max_epochs, halving.eta) == (2, 5, 2)
    args = cli.build_parser().parse_args(["search", "--strategy", "hyperband", "--epochs",
                                          "5", "--eta", "2"])
    hyperband = cli._make_oracle(args, space)
    assert (hyperband.max_epochs, hyperband.factor) == (5, 2)
    args = cli.build_parser().parse_args(["search", "--strategy", "kt-random", "--halving"])
    with pytest.raises(ValueError, match="--halving works with the strategies"):
        cli._make_oracle(args, space)


def regression(data):
    return data.map(lambda x, y: (x, keras.ops.cast(y, "float32")))


@pytest.mark.slow
def test_path_strategies_score_paths_by_the_objective_of_a_regression_space(tmp_path, digits):
    space = spaces.ChainSpace((8, 8, 1), 1, task="regression", max_layers=2, filters=(4,),
                              operations=("conv3x3", "sepconv3x3"))
    tuner = OneShotTuner(space, strategy="spos", supernet_epochs=1, spos_trials=5, seed=0,
                         objective="val_mean_absolute_error", directory=tmp_path,
                         progress=False)
    tuner.search(regression(digits.train.take(6)),
                 validation_data=regression(digits.validation.take(2)), epochs=1, verbose=0)
    history = tuner.architecture_history
    scores = [row["score"] for row in history]
    assert len(set(scores)) > 1 and all(score > 0 for score in scores)
    best = min(history, key=lambda row: row["score"])  # mean absolute error: lower wins
    assert tuner.oracle.architecture == best["architecture"]
    with open(os.path.join(tuner.project_dir, PATHS_FILE)) as file:
        assert json.load(file) == history
    assert not os.path.exists(os.path.join(tuner.project_dir, PROBABILITIES_FILE))


@spaces.register
class TwoWidthsSpace(tfnas.SearchSpace):
    """A space of the test's own: one dense layer of a chosen width."""

    space_name = "test-two-widths"
    input_rank = None

    def __init__(self, input_shape, num_classes, widths=(4, 8), **kwargs):
        super().__init__(input_shape, num_classes, **kwargs)
        self.widths = tuple(widths)

    def build_features(self, hp, inputs):
        x = keras.layers.Flatten()(inputs)
        layers = {str(width): (lambda w=width: keras.layers.Dense(w, activation="relu"))
                  for width in self.widths}
        return decisions.choose_op(hp, "width", layers)(x)

    def get_config(self):
        return {**super().get_config(), "widths": list(self.widths)}


@pytest.mark.slow
def test_a_registered_space_is_rebuilt_by_export_report_and_rebuild(tmp_path, digits, capsys):
    space = TwoWidthsSpace((8, 8, 1), 10, widths=(3, 5))
    tuner = tfnas.NASTuner(space, oracle="random", max_trials=2, seed=0,
                           directory=tmp_path / "search", project_name="mine", progress=False)
    tuner.search(digits.train.take(4), validation_data=digits.validation.take(2), epochs=1,
                 verbose=0)
    project_dir = tmp_path / "search" / "mine"

    assert cli.main(["export", str(project_dir), str(tmp_path / "out")]) == 0
    assert cli.main(["report", str(project_dir)]) == 0
    assert "width" in capsys.readouterr().out
    model = tfnas.rebuild(tmp_path / "out" / "architecture.json")
    best = tuner.oracle.get_best_trials(1)[0]
    width = int(best.hyperparameters.values["width"])
    assert model.count_params() == space.build(
        tfnas.Architecture.from_trial(best).to_hyperparameters()).count_params()
    assert any(getattr(layer, "units", None) == width for layer in model.layers)


def test_space_registration_names_what_is_wrong():
    with pytest.raises(ValueError, match="built-in space"):
        spaces.register("chain", TwoWidthsSpace)
    with pytest.raises(ValueError, match="name"):
        spaces.register(type("Nameless", (kt.HyperModel,), {"get_config": lambda self: {}}))


class FirstCandidates(OneShotStrategy):
    """A user's one-shot strategy: single-path training on the first
    candidates, which it then derives."""

    mode = "single_path"

    def search(self, tuner, model, train, validation, epochs):
        model.fit(oneshot.paired(train, validation), epochs=epochs, verbose=0)
        return {name: model.builder.values[name][0] for name in model.decisions}


@pytest.mark.slow
def test_a_registered_one_shot_strategy_runs_through_the_one_shot_tuner(
        monkeypatch, tmp_path, digits):
    monkeypatch.setattr(strategies, "_REGISTRY", dict(strategies._REGISTRY))
    strategies.register("first-candidates", one_shot=True)(FirstCandidates)
    assert "first-candidates" in strategies.names(one_shot=True)
    assert "first-candidates" not in oracles.ORACLES
    with pytest.raises(ValueError, match="OneShotTuner"):
        oracles.get("first-candidates", "val_accuracy", 2)
    space = spaces.ChainSpace((8, 8, 1), 10, max_layers=2, filters=(4,),
                              operations=("conv3x3", "sepconv3x3"))
    tuner = OneShotTuner(space, strategy="first-candidates", supernet_epochs=1, seed=0,
                         directory=tmp_path, progress=False)
    tuner.search(digits.train.take(4), validation_data=digits.validation.take(2), epochs=1,
                 verbose=0)
    assert tuner.oracle.architecture["layer_0/op"] == "conv3x3"
    assert tuner.oracle.get_best_trials(1)[0].status == "COMPLETED"
