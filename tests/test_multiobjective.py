"""Multi-objective search: the MnasNet reward, Pareto selection and fronts."""

import itertools

import keras_tuner as kt
import numpy as np
import pytest

import tfnas
from tfnas import bench, oracles, pareto
from tfnas.objectives import MnasNetReward, mnasnet_reward
from tfnas.testing import LookupTuner


def test_mnasnet_reward_on_hand_computed_values():
    # Soft constraint: w = -0.07 on both sides of the target.
    assert mnasnet_reward(0.9, 10.0, 5.0) == pytest.approx(0.9 * 2 ** -0.07)
    assert mnasnet_reward(0.9, 10.0, 5.0) == pytest.approx(0.857374, abs=1e-6)
    assert mnasnet_reward(0.9, 2.5, 5.0) == pytest.approx(0.944745, abs=1e-6)
    assert mnasnet_reward(0.9, 5.0, 5.0) == pytest.approx(0.9)
    # Hard constraint: no reward for being faster, halved at twice the target.
    hard = MnasNetReward(5.0, accuracy="acc", cost="lat", hard_constraint=True)
    assert hard.compute({"acc": 0.9, "lat": 2.5}) == pytest.approx(0.9)
    assert hard.compute({"acc": 0.9, "lat": 10.0}) == pytest.approx(0.45)
    with pytest.raises(ValueError, match="target"):
        MnasNetReward(0)
    with pytest.raises(ValueError, match="cost"):
        mnasnet_reward(0.9, 0.0, 5.0)
    with pytest.raises(kt.errors.FatalValueError, match="lat"):
        hard.compute({"acc": 0.9})


def test_reward_is_the_objective_of_any_oracle_on_a_table(tmp_path):
    table = bench.load_nas_bench_macro()
    target = 1_500_000.0
    reward = MnasNetReward(target, accuracy="accuracy", cost="params")

    def measure(values):
        return {"accuracy": table.lookup(values, "test_acc[0]"),
                "params": table.lookup(values, "params")}

    for name in ("controller", "evolution"):
        oracle = oracles.get(name, reward, 12, seed=0)
        LookupTuner(oracle, table.space, measure, directory=tmp_path,
                    project_name=name).search()
        for trial in oracle.trials.values():
            metrics = measure(trial.hyperparameters.values)
            assert trial.score == pytest.approx(
                mnasnet_reward(metrics["accuracy"], metrics["params"], target), rel=1e-6)


class ScoredMLP(tfnas.spaces.MLPSpace):
    """An MLP space whose 'training' is a formula of the decisions (fast)."""

    def fit(self, hp, model, *args, **kwargs):
        units = [hp.get(f"layer_{i}/units") for i in range(hp.get("num_layers"))]
        return {"val_accuracy": 1 - 1 / (1 + sum(units)), "loss": 1.0}


def test_nastuner_records_the_reward_and_checkpoints_by_accuracy(tmp_path, digits):
    space = tfnas.spaces.ChainSpace((8, 8, 1), 10, max_layers=2, filters=(8,))
    reward = MnasNetReward(target=1.0)
    tuner = tfnas.NASTuner(space, oracle=oracles.get("random", reward, 2, seed=0),
                           directory=tmp_path, progress=False, log_dir=None)
    tuner.search(digits.train, validation_data=digits.validation, epochs=2, verbose=0)
    for trial in tuner.oracle.trials.values():
        accuracy = trial.metrics.get_last_value("val_accuracy")
        latency = trial.metrics.get_last_value("latency_ms")
        assert trial.score == pytest.approx(mnasnet_reward(accuracy, latency, 1.0), rel=1e-5)
    best = tuner.oracle.get_best_trials(1)[0]
    model = tuner.load_model(best)
    evaluated = model.evaluate(digits.validation, verbose=0, return_dict=True)
    assert evaluated["accuracy"] == pytest.approx(
        best.metrics.get_last_value("val_accuracy"), abs=1e-4)


def _grid_space():
    class Grid(kt.HyperModel):
        def build(self, hp):
            for name in ("a", "b", "c"):
                hp.Choice(name, [0, 1, 2])
    return Grid()


def _two_metrics(values):
    a, b, c = values["a"], values["b"], values["c"]
    return {"quality": a + b + 0.5 * c, "cost": (a + 1) * (b + 1) + c}


def test_pareto_evolution_front_matches_brute_force_on_a_small_space(tmp_path):
    objectives_ = [("quality", "max"), ("cost", "min")]
    oracle = oracles.get("evolution", kt.Objective("quality", "max"), 27, seed=0,
                         pareto_objectives=objectives_, population_size=6, sample_size=3)
    LookupTuner(oracle, _grid_space(), _two_metrics, directory=tmp_path).search()
    assert len(oracle.trials) == 27  # the whole space
    front = pareto.pareto_front(list(oracle.trials.values()), objectives_)
    found = {tuple(sorted(t.hyperparameters.values.items())) for t in front}

    every = [dict(zip("abc", v)) for v in itertools.product([0, 1, 2], repeat=3)]
    points = [(_two_metrics(v)["quality"], _two_metrics(v)["cost"]) for v in every]
    brute = set()
    for i, (q, c) in enumerate(points):
        if not any(q2 >= q and c2 <= c and (q2 > q or c2 < c) for q2, c2 in points):
            brute.add(tuple(sorted(every[i].items())))
    assert found == brute


def test_pareto_tournament_prefers_the_front_then_the_isolated(tmp_path):
    oracle = oracles.get("evolution", kt.Objective("quality", "max"), 12, seed=0,
                         pareto_objectives=[("quality", "max"), ("cost", "min")],
                         population_size=12, sample_size=2)
    LookupTuner(oracle, _grid_space(), _two_metrics, directory=tmp_path).search()
    population = oracle.population()
    _, points = pareto.trial_points(population, oracle.pareto_objectives)
    ranks = pareto.ranks(points, ["max", "min"])
    crowding = pareto.crowding_distances(points, ["max", "min"])
    # A dominated member of higher quality than a front member: plain
    # evolution would pick it, Pareto selection must not.
    pairs = [(i, j) for i in range(len(population)) for j in range(len(population))
             if ranks[i] > 0 and ranks[j] == 0 and points[i][0] > points[j][0]]
    assert pairs
    for i, j in pairs:
        tournament = [population[i], population[j]]
        assert oracle.best_of(tournament) is population[i]
        assert oracle._winner(tournament, population) is population[j]
    # Within the front, the more isolated member wins.
    front = [i for i in range(len(population)) if ranks[i] == 0]
    for i, j in itertools.combinations(front, 2):
        if crowding[i] != crowding[j]:
            winner = i if crowding[i] > crowding[j] else j
            assert oracle._winner([population[i], population[j]], population) is \
                population[winner]
    with pytest.raises(ValueError, match="two objectives"):
        oracles.get("evolution", kt.Objective("quality", "max"), 9,
                    pareto_objectives=[("quality", "max")])


def test_ranks_crowding_and_hypervolume_on_hand_computed_values():
    points = [(1, 5), (2, 3), (3, 1), (2, 4), (3, 3), (4, 4)]  # both minimized
    assert pareto.ranks(points, ["min", "min"]) == [0, 0, 0, 1, 1, 2]
    crowding = pareto.crowding_distances([(1, 5), (2, 3), (3, 1)], ["min", "min"])
    assert crowding[0] == crowding[2] == float("inf")
    assert crowding[1] == pytest.approx((3 - 1) / 2 + (5 - 1) / 4)
    # Reference (4, 6): rectangles 3x1 + 2x2 + 1x2 = 9.
    assert pareto.hypervolume_2d([(1, 5), (2, 3), (3, 1)], ["min", "min"], (4, 6)) == 9
    assert pareto.hypervolume_2d([(1, 5), (2, 3), (3, 1), (3, 3)], ["min", "min"],
                                 (4, 6)) == 9  # a dominated point adds nothing
    # Maximizing the first objective mirrors it.
    assert pareto.hypervolume_2d([(-1, 5), (-2, 3), (-3, 1)], ["max", "min"], (-4, 6)) == 9


def test_get_pareto_front_of_a_tuner(tmp_path):
    space = ScoredMLP((4,), 2, max_layers=2, units=(4, 64, 256))
    oracle = oracles.get("evolution", "val_accuracy", 8, seed=0,
                         pareto_objectives=[("val_accuracy", "max"), ("params", "min")])
    tuner = tfnas.NASTuner(space, oracle=oracle, directory=tmp_path, progress=False,
                           measure_latency=False, count_flops=False, log_dir=None)
    x, y = np.zeros((4, 4)), np.zeros(4)
    tuner.search(x, y, validation_data=(x, y), epochs=1, verbose=0)
    front = tuner.get_pareto_front()
    trials = [t for t in tuner.oracle.trials.values() if t.status == "COMPLETED"]
    points = {t.trial_id: (t.score, t.metrics.get_last_value("params")) for t in trials}
    expected = {i for i, (s, p) in points.items()
                if not any(s2 >= s and p2 <= p and (s2 > s or p2 < p)
                           for s2, p2 in points.values())}
    assert {t.trial_id for t in front} == expected
    assert front == tuner.get_pareto_front([("val_accuracy", "max"), ("params", "min")])
    with pytest.raises(ValueError, match="objectives"):
        tfnas.NASTuner(space, max_trials=1, directory=tmp_path / "b").get_pareto_front()
