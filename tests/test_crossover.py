"""Uniform crossover (tfnas.moves.crossover) and evolution that uses it."""

import numpy as np
import pytest

from tfnas import Architecture, moves, oracles, sampling, spaces
from tfnas.testing import LookupTuner, check_oracle, synthetic_score
from tfnas.testing.oracles import OBJECTIVE


def _space(hypermodel):
    """Every decision of `hypermodel`, discovered as a search discovers them."""
    return sampling.sample_architectures(hypermodel, 1)[0].space


def _active_names(space, values):
    """The decisions active under `values`, in declaration order."""
    return set(moves.fill(space, values, np.random.default_rng(0)))


@pytest.fixture(scope="module")
def chain_space():
    return _space(spaces.ChainSpace((8, 8, 1), 10, max_layers=4))


def test_every_child_decision_comes_from_a_parent_or_is_newly_active(chain_space):
    rng = np.random.default_rng(0)
    inherited_from = {"first": 0, "second": 0}
    for _ in range(200):
        first = moves.random_architecture(chain_space, rng)
        second = moves.random_architecture(chain_space, rng)
        child = moves.crossover(chain_space, first, second, rng)
        # Exactly the child's own active decisions are set, with valid values.
        assert set(child) == _active_names(chain_space, child)
        assert moves.fill(chain_space, child, rng) == child
        for name, value in child.items():
            from_parents = [p[name] for p in (first, second) if name in p]
            if from_parents:
                assert value in from_parents, (name, value, from_parents)
            # Independent coin flips where both parents set a decision and differ
            # (a decision only one parent sets comes with its whole block).
            if name in first and name in second and first[name] != second[name]:
                inherited_from["first" if value == first[name] else "second"] += 1
    # Uniform: each parent gives about half of the decisions where they differ.
    share = inherited_from["first"] / sum(inherited_from.values())
    assert 0.45 < share < 0.55, inherited_from


def test_crossover_of_a_parent_with_itself_is_that_parent(chain_space):
    rng = np.random.default_rng(1)
    for _ in range(20):
        parent = moves.random_architecture(chain_space, rng)
        assert moves.crossover(chain_space, parent, parent, rng) == parent


def test_decisions_only_one_parent_activates_come_from_that_parent(chain_space):
    rng = np.random.default_rng(2)
    checked = 0
    while checked < 30:
        first = moves.random_architecture(chain_space, rng)
        second = moves.random_architecture(chain_space, rng)
        child = moves.crossover(chain_space, first, second, rng)
        for name in set(child) & (set(first) ^ set(second)):
            owner = first if name in first else second
            assert child[name] == owner[name]
            checked += 1


def _proposals(tmp_path, probability, seed=5, count=40):
    oracle = oracles.get("evolution", OBJECTIVE, count, seed=seed, population_size=8,
                         sample_size=3, crossover_probability=probability)
    LookupTuner(oracle, spaces.ChainSpace((4, 4, 1), 2, max_layers=3), synthetic_score,
                signal_name="score", directory=tmp_path).search()
    ordered = sorted(oracle.trials.values(), key=lambda t: int(t.trial_id))
    return [Architecture.from_trial(t).values for t in ordered]


def test_crossover_off_leaves_evolution_unchanged_and_on_changes_children(tmp_path):
    plain = _proposals(tmp_path / "a", 0.0)
    assert plain == _proposals(tmp_path / "b", 0.0)
    crossed = _proposals(tmp_path / "c", 1.0)
    assert crossed[:8] == plain[:8]  # the random initial population
    assert crossed[8:] != plain[8:]
    assert crossed == _proposals(tmp_path / "d", 1.0)  # seeded


def test_evolution_with_crossover_passes_the_conformance_suite():
    check_oracle(lambda **kw: oracles.get("evolution", crossover_probability=0.5, **kw))


@pytest.mark.parametrize("value", [-0.1, 1.5, "half", None])
def test_crossover_probability_is_validated(value):
    with pytest.raises(ValueError, match="`crossover_probability`"):
        oracles.RegularizedEvolutionOracle(objective=OBJECTIVE, crossover_probability=value)
