"""The predictor's candidate pool and acquisition (BANANAS, White et al., 2021)."""

import numpy as np
import pytest

from tfnas import Architecture, oracles, spaces, trials
from tfnas.moves import neighbours
from tfnas.testing import LookupTuner, synthetic_score
from tfnas.testing.oracles import OBJECTIVE


def _searched(tmp_path, count=12, **kwargs):
    oracle = oracles.get("predictor", OBJECTIVE, count, seed=0, initial_trials=count,
                         **kwargs)
    space = spaces.ChainSpace((4, 4, 1), 2, max_layers=3)
    LookupTuner(oracle, space, synthetic_score, signal_name="score",
                directory=tmp_path).search()
    return oracle


def _one_move_apart(first, second):
    """Whether `second` changes exactly one of the decisions both set (a
    deeper or shallower neighbour also gains or loses the layers' own)."""
    return sum(first[k] != second[k] for k in first.keys() & second.keys()) == 1


def test_candidates_are_the_unexplored_neighbours_of_the_best_first(tmp_path):
    """BANANAS scores mutations of the best architectures: the pool starts
    with every unexplored one-decision neighbour of the best trial, then the
    next best's. (Before, it took random mutations of the 10 best in turn, so
    the best trial's neighbours were a tenth of the pool.)"""
    oracle = _searched(tmp_path, num_candidates=30)
    ranked = trials.ranked(oracle.completed_trials(), "max")
    best = ranked[0].hyperparameters.values
    candidates = oracle._candidates(ranked, np.random.default_rng(1))
    unexplored = [n for n in neighbours(oracle.hyperparameters.space, best,
                                        np.random.default_rng(2)) if oracle.is_new(n)]
    assert unexplored and len(unexplored) < len(candidates) <= 30
    first, rest = candidates[:len(unexplored)], candidates[len(unexplored):]
    assert all(_one_move_apart(best, c) for c in first)
    assert not all(_one_move_apart(best, c) for c in rest)
    assert all(any(_one_move_apart(p.hyperparameters.values, c) for p in ranked[1:])
               for c in rest)
    assert len({Architecture(c).hash for c in candidates}) == len(candidates)
    assert all(oracle.is_new(c) for c in candidates)


def test_random_candidate_pool_scores_unexplored_random_architectures(tmp_path):
    oracle = _searched(tmp_path, num_candidates=20, candidate_pool="random")
    ranked = trials.ranked(oracle.completed_trials(), "max")
    candidates = oracle._candidates(ranked[:1], np.random.default_rng(1))
    assert len(candidates) == 20
    assert all(oracle.is_new(c) for c in candidates)
    assert len({Architecture(c).hash for c in candidates}) == 20


def test_expected_improvement_matches_its_definition():
    from tfnas.oracles.predictor import expected_improvement

    rng = np.random.default_rng(0)
    mean, std, best = np.array([0.0, 1.0, -1.0, 0.5]), np.array([1.0, 0.5, 2.0, 1e-9]), 0.2
    samples = rng.normal(mean, std, size=(400_000, 4))
    expected = np.maximum(samples - best, 0).mean(axis=0)
    np.testing.assert_allclose(expected_improvement(mean, std, best), expected, atol=5e-3)


@pytest.mark.parametrize("acquisition", ["its", "ucb", "ei"])
def test_each_acquisition_proposes_new_architectures(acquisition, tmp_path):
    oracle = oracles.get("predictor", OBJECTIVE, 10, seed=0, initial_trials=4,
                         acquisition=acquisition, ensemble_size=2, epochs=50)
    LookupTuner(oracle, spaces.ChainSpace((4, 4, 1), 2, max_layers=3), synthetic_score,
                signal_name="score", directory=tmp_path).search()
    hashes = [Architecture.from_trial(t).hash for t in oracle.trials.values()]
    assert len(hashes) == 10 == len(set(hashes))
