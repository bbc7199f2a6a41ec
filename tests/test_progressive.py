"""Progressive NAS (`pnas`) and its device-aware Pareto form (`dpp`)."""

import numpy as np
import pytest

from tfnas import Architecture, oracles, sampling, spaces, trials
from tfnas.oracles import progressive
from tfnas.testing import LookupTuner
from tfnas.testing.oracles import OBJECTIVE

GOOD_OP = "conv3x3"


def _hyperparameters(hypermodel):
    """Every decision of `hypermodel`, discovered as a search discovers them."""
    return sampling.sample_architectures(hypermodel, 1)[0]


def chain():
    return spaces.ChainSpace((4, 4, 1), 2, max_layers=3, filters=(4, 8), skips=False)


def conv3x3_share(values):
    """A score the new block can raise: the share of layers that are conv3x3."""
    depth = values["num_layers"]
    return sum(values[f"layer_{i}/op"] == GOOD_OP for i in range(depth)) / depth


def _search(name, tmp_path, score=conv3x3_share, max_trials=24, space=None, **kwargs):
    oracle = oracles.get(name, OBJECTIVE, max_trials, seed=3, **kwargs)
    LookupTuner(oracle, space or chain(), score, signal_name="score",
                directory=tmp_path).search()
    return oracle, sorted(oracle.trials.values(), key=lambda t: int(t.trial_id))


def test_depth_decisions_are_the_repeats_of_each_space():
    assert progressive.depth_decisions(_hyperparameters(chain()).space) == {
        "num_layers": [1, 2, 3]}
    assert progressive.depth_decisions(_hyperparameters(
        spaces.MLPSpace((4,), 2, max_layers=3)).space) == {"num_layers": [1, 2, 3]}
    # The mobile space's layer counts add no decisions of their own (a block's
    # layers share its decisions), so they do not grow a searched structure.
    assert progressive.depth_decisions(_hyperparameters(
        spaces.MobileSpace((32, 32, 3), 10, num_blocks=2)).space) == {}
    assert progressive.depth_decisions(_hyperparameters(
        spaces.ChainSpace((4, 4, 1), 2, min_layers=2, max_layers=2)).space) == {}


def test_levels_grow_one_block_at_a_time_from_the_beam(tmp_path):
    oracle, ordered = _search("pnas", tmp_path, beam_size=6, max_trials=18)
    depths = [t.hyperparameters.values["num_layers"] for t in ordered]
    assert depths == [1] * 6 + [2] * 6 + [3] * 6
    by_level = {depth: [Architecture.from_trial(t).values for t in ordered
                        if t.hyperparameters.values["num_layers"] == depth]
                for depth in (1, 2, 3)}
    for depth in (2, 3):
        parents = by_level[depth - 1]
        for child in by_level[depth]:
            # Every child is a parent of the level below plus one layer.
            inherited = {k: v for k, v in child.items()
                         if not k.startswith(f"layer_{depth - 1}/") and k != "num_layers"}
            assert any(inherited == {k: v for k, v in parent.items() if k != "num_layers"}
                       for parent in parents), child


def _good_blocks(values):
    """A score a cell's new block can raise: the share of sep_conv_3x3 ops."""
    chosen = [v for k, v in values.items() if "/op_" in k]
    return sum(op == "sep_conv_3x3" for op in chosen) / len(chosen)


def test_pnas_grows_cells_block_by_block(tmp_path):
    space = spaces.CellSpace((8, 8, 1), 10, num_cells=3, min_blocks=1, max_blocks=3,
                             filters=4, operations=("sep_conv_3x3", "max_pool_3x3", "identity"))
    oracle, ordered = _search("pnas", tmp_path, score=_good_blocks, space=space,
                              beam_size=3, max_trials=9)
    assert progressive.depth_decisions(oracle.hyperparameters.space) == {
        "num_blocks": [1, 2, 3]}
    cells = [Architecture.from_trial(t).values for t in ordered]
    assert [c["num_blocks"] for c in cells] == [1] * 3 + [2] * 3 + [3] * 3
    for child in cells[3:]:
        # A cell of B blocks is one of the B - 1 block cells plus block B - 1.
        added = f"block_{child['num_blocks'] - 1}/"
        kept = {k: v for k, v in child.items() if added not in k and k != "num_blocks"}
        assert any(kept == {k: v for k, v in parent.items() if k != "num_blocks"}
                   for parent in cells if parent["num_blocks"] == child["num_blocks"] - 1)
        assert sum(added in k for k in child) == 8  # 2 inputs, 2 ops, 2 cell types


def test_the_surrogate_picks_the_added_block_it_learnt_from_shallower_ones(tmp_path):
    """Level 0 trains random one-layer architectures; the surrogate must
    carry "conv3x3 scores" to the second layer it has never seen trained
    (chance: 1 in 7 operations)."""
    _, ordered = _search("pnas", tmp_path / "a", beam_size=8, max_trials=24)
    second = [t.hyperparameters.values for t in ordered
              if t.hyperparameters.values["num_layers"] == 2]
    share = np.mean([v["layer_1/op"] == GOOD_OP for v in second])
    assert share >= 0.75, second


def test_a_level_waits_for_the_level_below(tmp_path):
    oracle = oracles.get("pnas", OBJECTIVE, 12, seed=0, beam_size=2)
    LookupTuner(oracle, chain(), conv3x3_share, signal_name="score", directory=tmp_path)
    first = oracle.create_trial("w0")
    second = oracle.create_trial("w1")
    assert first.status == second.status == "RUNNING"
    # Both level-0 trials run: level 1 cannot be chosen yet.
    assert oracle.create_trial("w2").status == "IDLE"
    for trial in (first, second):
        oracle.update_trial(trial.trial_id, {"score": conv3x3_share(
            trial.hyperparameters.values)})
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
    third = oracle.create_trial("w2")
    assert third.status == "RUNNING" and third.hyperparameters.values["num_layers"] == 2


def test_a_space_without_depth_is_searched_at_random_with_a_warning(tmp_path):
    space = spaces.ChainSpace((4, 4, 1), 2, min_layers=2, max_layers=2, skips=False)
    with pytest.warns(UserWarning, match="no depth-like decision"):
        _, ordered = _search("pnas", tmp_path, space=space, max_trials=5)
    assert len(ordered) == 5


def test_block_encoding_averages_a_decision_over_its_repetitions():
    hps = _hyperparameters(chain())
    one = {"num_layers": 1, "layer_0/op": GOOD_OP, "layer_0/stride": 1,
           "layer_0/filters": 4, "layer_0/activation": "relu"}
    two = {**one, "num_layers": 2, "layer_1/op": "maxpool3x3", "layer_1/stride": 1}
    bag_one = progressive.block_encoding(hps, one)
    bag_two = progressive.block_encoding(hps, two)
    width = len(oracles.predictor.encode(hps, one))
    ops = list(next(hp for hp in hps.space if hp.name == "layer_0/op").values)
    slots = progressive.block_slots(hps)
    op_slots = [width + slots[("layer_#/op", repr(op))] for op in ops]
    # The conv3x3 slot is 1 for one layer; 1/2 beside maxpool's 1/2 for two.
    assert list(bag_one[op_slots]) == [float(op == GOOD_OP) for op in ops]
    assert list(bag_two[op_slots]) == [0.5 * (op in (GOOD_OP, "maxpool3x3")) for op in ops]
    # The name-only part: the new layer adds its stride and operation features.
    assert bag_two[:width].sum() == bag_one[:width].sum() + 2


def test_select_is_best_first_with_one_objective_and_nsga_ii_with_two():
    assert progressive.select([(0.2,), (0.9,), (0.5,)], ["max"], 2) == [1, 2]
    points = [(0.9, 10.0), (0.8, 1.0), (0.7, 5.0), (0.95, 20.0)]
    # (0.7, 5) is dominated by (0.8, 1); the other three are the front.
    assert set(progressive.select(points, ["max", "min"], 3)) == {0, 1, 3}


def _accuracy_and_cost(values):
    """Accuracy favours conv3x3 layers; cost grows with filters and depth."""
    depth = values["num_layers"]
    cost = sum(values.get(f"layer_{i}/filters", 1) for i in range(depth))
    return {"score": conv3x3_share(values) + 0.01 * depth, "cost": float(cost)}


def test_dpp_keeps_a_front_of_accuracy_and_cost(tmp_path):
    oracle, ordered = _search("dpp", tmp_path, score=_accuracy_and_cost, max_trials=18,
                              beam_size=6,
                              pareto_objectives=[("score", "max"), ("cost", "min")])
    assert [o.name for o in oracle.pareto_objectives] == ["score", "cost"]
    deeper = [t.hyperparameters.values for t in ordered
              if t.hyperparameters.values["num_layers"] > 1]
    # Cheap expansions are on the predicted front: not all new layers are wide.
    assert any(v.get("layer_1/filters") == 4 or "layer_1/filters" not in v
               for v in deeper)
    assert oracle.selection_objectives() == oracle.pareto_objectives


def test_dpp_defaults_to_the_objective_and_parameters():
    oracle = oracles.get("dpp", OBJECTIVE, 10)
    assert [(o.name, o.direction) for o in oracle.pareto_objectives] == [
        ("score", "max"), ("params", "min")]


def test_beam_size_is_validated():
    with pytest.raises(ValueError, match="`beam_size`"):
        oracles.get("pnas", OBJECTIVE, 10, beam_size=0)


@pytest.mark.slow
def test_dpp_trains_real_candidates_and_reports_their_front(tmp_path, digits):
    """DPP with its default objectives (val_accuracy, params) in a real search."""
    import tfnas

    space = spaces.ChainSpace(digits.input_shape, 10, max_layers=2, filters=(4, 16),
                              operations=("conv3x3", "maxpool3x3"), skips=False)
    oracle = oracles.get("dpp", "val_accuracy", 4, seed=0, beam_size=2)
    tuner = tfnas.NASTuner(space, oracle=oracle, directory=tmp_path, progress=False,
                           measure_latency=False, count_flops=False, log_dir=None)
    tuner.search(digits.train, validation_data=digits.validation, epochs=1, verbose=0)
    depths = [t.hyperparameters.values["num_layers"] for t in sorted(
        tuner.oracle.trials.values(), key=lambda t: int(t.trial_id))]
    assert depths == [1, 1, 2, 2]
    front = tuner.get_pareto_front()
    assert front and all(t.metrics.get_last_value("params") > 0 for t in front)


@pytest.mark.parametrize("name", ["pnas", "dpp"])
def test_levels_grow_from_first_rung_results_under_successive_halving(name, tmp_path):
    from tfnas.oracles.halving import PARENT, RUNG, SuccessiveHalving

    kwargs = {"pareto_objectives": [("score", "max"), ("cost", "min")]} if name == "dpp" else {}
    oracle, ordered = _search(name, tmp_path, score=_accuracy_and_cost, max_trials=24,
                              beam_size=4, halving=SuccessiveHalving(1, 3, 3), **kwargs)
    by_id = {t.trial_id: t for t in ordered}
    first_rung = [t for t in ordered if t.hyperparameters.values[RUNG] == 0]
    promoted = [t for t in ordered if t.hyperparameters.values[RUNG] == 1]
    assert promoted and len(first_rung) + len(promoted) == 24
    # New architectures come level by level; promotions train the same ones longer.
    depths = [t.hyperparameters.values["num_layers"] for t in first_rung]
    assert depths[:12] == [1] * 4 + [2] * 4 + [3] * 4
    for trial in promoted:
        parent = by_id[trial.hyperparameters.values[PARENT]]
        assert Architecture.from_trial(trial) == Architecture.from_trial(parent)
    assert len({Architecture.from_trial(t) for t in first_rung}) == len(first_rung)


def _pools_stopped_early(values):
    """Wide convolutions score best; poolings look even better, but an early
    stopping rule stopped them: their scores are partial (reported as
    NASTuner reports a stopped trial)."""
    if values["layer_0/op"] == "conv3x3":
        return {"score": 0.3 + 0.01 * values["layer_0/filters"]}
    return {"score": 1.0, trials.STOPPED_AT: 1.0}


def test_a_trial_stopped_early_is_not_a_parent(tmp_path):
    space = spaces.ChainSpace((4, 4, 1), 2, max_layers=2, filters=(4, 8), skips=False,
                              operations=("conv3x3", "maxpool3x3", "avgpool3x3"))
    # Level 0 has 8 architectures (4 convolutions, 4 poolings): all trained.
    oracle, ordered = _search("pnas", tmp_path, score=_pools_stopped_early, space=space,
                              beam_size=8, max_trials=16)
    first = [t for t in ordered if t.hyperparameters.values["num_layers"] == 1]
    assert sum(trials.is_stopped_early(t) for t in first) == 4
    second = [t.hyperparameters.values for t in ordered
              if t.hyperparameters.values["num_layers"] == 2]
    # The surrogate learnt that 8 filters score: without the exclusion, the
    # expansions of the 8-filter poolings would rank with the convolutions'.
    assert second and all(v["layer_0/op"] == "conv3x3" for v in second), second
