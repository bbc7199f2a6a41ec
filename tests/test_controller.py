"""The RNN controller oracle: REINFORCE and PPO."""

import functools
import os

import keras
import keras_tuner as kt
import numpy as np
import pytest
import tensorflow as tf

from tfnas import oracles, spaces
from tfnas.oracles.controller import ControllerOracle, PolicyNetwork
from tfnas.testing import LookupTuner, check_oracle
from tfnas.testing.oracles import OBJECTIVE


@pytest.mark.parametrize("name", ["controller", "ppo"])
def test_controller_passes_the_conformance_suite(name):
    check_oracle(functools.partial(oracles.get, name))


class FiveChoices(kt.HyperModel):
    """Five decisions of four candidates: 1,024 architectures."""

    def build(self, hp):
        for index in range(5):
            hp.Choice(f"d{index}", ["a", "b", "c", "d"])


BEST = {"d0": "a", "d1": "d", "d2": "c", "d3": "b", "d4": "a"}


def matches(values):
    """A reward computed from the decisions: the fraction equal to BEST."""
    return sum(values[name] == value for name, value in BEST.items()) / len(BEST)


def _run(oracle, directory, score=matches, interrupt_after=None, space=None):
    tuner = LookupTuner(oracle, space or FiveChoices(), score, signal_name="score",
                        directory=directory, project_name="p",
                        interrupt_after=interrupt_after)
    try:
        tuner.search()
    except Exception as error:
        if type(error).__name__ != "SearchInterrupted":
            raise
    return tuner.oracle


@pytest.mark.parametrize("algorithm", ["reinforce", "ppo"])
def test_probability_of_the_best_architecture_rises(algorithm, tmp_path):
    oracle = ControllerOracle(OBJECTIVE, max_trials=40, algorithm=algorithm, seed=0)
    _run(oracle, tmp_path, interrupt_after=1)
    first = oracle.probability(BEST)
    assert first < 5 / 1024  # about chance at the start
    _run(ControllerOracle(OBJECTIVE, max_trials=40, algorithm=algorithm, seed=0),
         tmp_path)
    oracle = ControllerOracle(OBJECTIVE, max_trials=40, algorithm=algorithm, seed=0)
    _run(oracle, tmp_path)  # reloads the finished search
    assert oracle.updates == 40
    # Chance is 1/1024; a sign error in the update would push it below.
    assert oracle.probability(BEST) > max(0.03, 30 * first), oracle.probability(BEST)


def test_a_minimized_objective_is_learned_as_a_negative_reward(tmp_path):
    objective = kt.Objective("score", "min")
    oracle = ControllerOracle(objective, max_trials=40, seed=0)
    _run(oracle, tmp_path, score=lambda values: 1 - matches(values))
    assert oracle.probability(BEST) > 0.03


@pytest.mark.parametrize("scale", [1, 1000])
@pytest.mark.filterwarnings("error::RuntimeWarning")  # e.g. an overflow in exp
def test_numpy_sampling_agrees_with_the_network(scale):
    network = PolicyNetwork([3, 1, 4, 2], units=8, temperature=2.0, tanh_constant=2.5, seed=3)
    network.build()
    for kernel in (network.kernel, network.recurrent_kernel):
        kernel.assign(kernel * scale)  # x1000: the LSTM's gates saturate
    rng = np.random.default_rng(0)
    choices = rng.integers(0, [3, 1, 4, 2], size=(6, 4))
    active = rng.random((6, 4)) < 0.7
    log_prob, entropy = network(tf.constant(choices), tf.constant(active))
    for row in range(6):
        sampler = network.sampler()
        expected_entropy = 0.0
        for step in range(4):
            if active[row, step]:
                p = sampler.probabilities(step)
                expected_entropy -= float(np.sum(p * np.log(p)))
                sampler.choose(step, choices[row, step])
        assert sampler.log_prob == pytest.approx(float(log_prob[row]), abs=1e-5)
        assert expected_entropy == pytest.approx(float(entropy[row]), abs=1e-4)


def test_tanh_constant_bounds_the_logits():
    network = PolicyNetwork([4], units=4, tanh_constant=0.5, seed=0)
    network.build()
    network.head_kernel.assign(network.head_kernel * 1000)
    probabilities = network.sampler().probabilities(0)
    ratio = probabilities.max() / probabilities.min()
    assert ratio <= np.exp(1.0) + 1e-6  # logits within [-0.5, 0.5]


def test_policy_network_config_round_trip_and_validation():
    network = PolicyNetwork([2, 3], units=16, temperature=5.0, tanh_constant=None, seed=7)
    clone = PolicyNetwork.from_config(network.get_config())
    assert clone.get_config() == network.get_config()
    assert keras.saving.get_registered_object("tfnas>PolicyNetwork") is PolicyNetwork
    with pytest.raises(ValueError, match="choice_counts"):
        PolicyNetwork([2, 0])
    with pytest.raises(ValueError, match="temperature"):
        PolicyNetwork([2], temperature=0)
    with pytest.raises(ValueError, match="algorithm"):
        ControllerOracle(OBJECTIVE, algorithm="a2c")
    with pytest.raises(ValueError, match="baseline_decay"):
        ControllerOracle(OBJECTIVE, baseline_decay=1.0)
    with pytest.raises(ValueError, match="batch_size"):
        ControllerOracle(OBJECTIVE, batch_size=0)


def test_reload_continues_training_with_the_same_state(tmp_path):
    straight = ControllerOracle(OBJECTIVE, max_trials=20, algorithm="ppo", seed=1)
    _run(straight, tmp_path / "straight")

    first = ControllerOracle(OBJECTIVE, max_trials=20, algorithm="ppo", seed=1)
    _run(first, tmp_path / "resumed", interrupt_after=9)
    reloaded = ControllerOracle(OBJECTIVE, max_trials=20, algorithm="ppo", seed=1)
    LookupTuner(reloaded, FiveChoices(), matches, signal_name="score",
                directory=tmp_path / "resumed", project_name="p")
    reloaded._ensure_network()
    assert reloaded.updates == first.updates == 9
    assert reloaded.baseline == pytest.approx(first.baseline)
    assert reloaded.learned == first.learned
    for saved, loaded in zip(first.network.get_weights(), reloaded.network.get_weights()):
        np.testing.assert_array_equal(saved, loaded)
    for saved, loaded in zip(first.optimizer.variables, reloaded.optimizer.variables):
        np.testing.assert_array_equal(saved.numpy(), loaded.numpy())
    files = [f for f in os.listdir(tmp_path / "resumed" / "p") if f.startswith("controller")]
    assert files == ["controller-000009.weights.h5"]

    resumed = ControllerOracle(OBJECTIVE, max_trials=20, algorithm="ppo", seed=1)
    _run(resumed, tmp_path / "resumed")

    def proposals(oracle):
        return [oracle.trials[i].hyperparameters.values for i in sorted(oracle.trials)]

    assert proposals(resumed) == proposals(straight)
    for a, b in zip(resumed.network.get_weights(), straight.network.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_missing_weights_file_is_a_clear_error(tmp_path):
    _run(ControllerOracle(OBJECTIVE, max_trials=6, seed=0), tmp_path, interrupt_after=3)
    os.remove(tmp_path / "p" / "controller-000003.weights.h5")
    oracle = ControllerOracle(OBJECTIVE, max_trials=6, seed=0)
    with pytest.raises(FileNotFoundError, match="controller-000003.weights.h5"):
        _run(oracle, tmp_path)


def test_batches_learn_from_trials_that_end_out_of_order(tmp_path):
    oracle = ControllerOracle(OBJECTIVE, max_trials=10, batch_size=3, seed=0)
    LookupTuner(oracle, FiveChoices(), matches, signal_name="score",
                directory=tmp_path, project_name="p")
    trials = [oracle.create_trial(f"worker{i}") for i in range(4)]
    assert len({t.trial_id for t in trials}) == 4
    before = [w.copy() for w in oracle.network.get_weights()]
    for count, trial in enumerate(reversed(trials), start=1):
        oracle.update_trial(trial.trial_id, {"score": matches(trial.hyperparameters.values)})
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
        assert oracle.updates == (1 if count >= 3 else 0)
    assert oracle.learned == [t.trial_id for t in reversed(trials)][:3]
    assert any(not np.array_equal(a, b) for a, b in zip(before, oracle.network.get_weights()))
    assert set(oracle.sampling_log_probs) == {t.trial_id for t in trials}


def test_conditional_decisions_are_skipped(tmp_path):
    space = spaces.ChainSpace((4, 4, 1), 2, max_layers=3, filters=(4, 8))
    oracle = ControllerOracle(OBJECTIVE, max_trials=8, seed=0)
    _run(oracle, tmp_path, score=lambda values: len(values) / 30, space=space)
    for trial in oracle.trials.values():
        values = trial.hyperparameters.values
        depth = values["num_layers"]
        assert all(int(name.split("/")[0].split("_")[1]) < depth
                   for name in values if name.startswith("layer_"))
        # The sampling log-probability sums over the active decisions only.
        assert oracle.sampling_log_probs[trial.trial_id] < 0


class LogLearningRate(kt.HyperModel):
    """KerasTuner's getting-started decision, plus a wide integer."""

    def build(self, hp):
        hp.Float("lr", 1e-4, 1e-2, sampling="log")
        hp.Int("width", 1, 1000)


@pytest.mark.parametrize("algorithm", ["reinforce", "ppo"])
def test_controller_learns_which_end_of_a_log_sampled_float_is_best(algorithm, tmp_path):
    oracle = ControllerOracle(OBJECTIVE, max_trials=60, algorithm=algorithm, seed=0,
                              learning_rate=0.05, bins=10)
    # The reward grows with log(lr): the best learning rates are the largest.
    _run(oracle, tmp_path, space=LogLearningRate(),
         score=lambda values: float(np.log10(values["lr"]) + 4) / 2)
    lrs = oracle._decisions[0][1]
    assert len(lrs) == 10
    assert lrs == sorted(lrs) and lrs[0] == pytest.approx(10 ** -3.9)
    assert lrs[-1] == pytest.approx(10 ** -2.1)  # bin centres, evenly spaced in log
    fresh = ControllerOracle(OBJECTIVE, max_trials=1, algorithm=algorithm, seed=0, bins=10)
    _run(fresh, tmp_path / "fresh", space=LogLearningRate())
    assert fresh.network.sampler().probabilities(0)[-3:].sum() < 0.4  # about 0.3
    assert oracle.network.sampler().probabilities(0)[-3:].sum() > 0.6


def test_continuous_values_map_to_their_nearest_bin():
    hp = kt.HyperParameters()
    hp.Float("lr", 1e-4, 1e-2, sampling="log")
    lr = hp.space[0]
    from tfnas.oracles.controller import decision_candidates, nearest_candidate

    candidates = decision_candidates(lr, bins=4)
    assert candidates == pytest.approx([10 ** -3.75, 10 ** -3.25, 10 ** -2.75, 10 ** -2.25])
    assert nearest_candidate(lr, candidates, 1e-4) == 0
    assert nearest_candidate(lr, candidates, 9e-3) == 3
    with pytest.raises(ValueError, match="bins"):
        ControllerOracle(OBJECTIVE, bins=1)


def test_controller_oracles_sharing_a_folder_do_not_break_each_other(tmp_path):
    errors = []

    def search(index):
        try:
            oracle = ControllerOracle(OBJECTIVE, max_trials=8, seed=index)
            _run(oracle, tmp_path / "shared")
        except Exception as error:  # reported below
            errors.append(error)

    import threading

    threads = [threading.Thread(target=search, args=(i,)) for i in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
