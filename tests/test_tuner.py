import random
import subprocess
import sys

import keras
import keras_tuner as kt
import numpy as np
import pytest

import tfnas
from tfnas import oracles, spaces
from tfnas.spaces import ChainSpace
from tfnas.tuner import NASTuner

from tests.tolerances import TRAINING_NOISE

OBJECTIVE_ACCURACY = kt.Objective("val_accuracy", "max")

COST_METRICS = ("params", "flops", "latency_ms", "train_time_s")


def small_space():
    return ChainSpace((8, 8, 1), 10, max_layers=2, filters=(8, 16))


def completed(tuner):
    return [t for t in tuner.oracle.trials.values() if t.status == "COMPLETED"]


# A dataset orders itself: the tuner does not pass Keras fit's default
# shuffle=True, which Keras ignores for a dataset with this warning.
@pytest.mark.filterwarnings("error:`shuffle=True` was passed:UserWarning")
def test_search_on_digits_records_costs_and_reloads(tmp_path, digits, capsys):
    tuner = tfnas.NASTuner(small_space(), max_trials=3, seed=0, directory=tmp_path,
                           project_name="p", progress="always")  # lines despite verbose=0
    tuner.search(digits.train, validation_data=digits.validation, epochs=1, verbose=0)
    trials = completed(tuner)
    assert len(trials) == 3
    assert len({tfnas.Architecture.from_trial(t).hash for t in trials}) == 3
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[trial")]
    assert len(lines) == 3 and all("val_accuracy=" in line and "params=" in line for line in lines)

    for trial in trials:
        for name in COST_METRICS:
            assert trial.metrics.get_last_value(name) > 0, name
        assert 0.0 <= trial.score <= 1.0

    best_model = tuner.get_best_models(1)[0]
    best_trial = tuner.oracle.get_best_trials(1)[0]
    assert best_trial.metrics.get_last_value("params") == best_model.count_params()
    evaluated = best_model.evaluate(digits.validation, verbose=0, return_dict=True)
    assert evaluated["accuracy"] == pytest.approx(best_trial.score, abs=1e-4)

    architectures = tuner.get_best_architectures(3)
    scores = [t.score for t in tuner.oracle.get_best_trials(3)]
    assert scores == sorted(scores, reverse=True)
    assert architectures[0] == tfnas.Architecture.from_hyperparameters(
        tuner.get_best_hyperparameters(1)[0]
    )
    rebuilt = small_space().build(architectures[0].to_hyperparameters())
    assert rebuilt.count_params() == best_model.count_params()

    # A new tuner on the same directory reloads the results, runs nothing.
    again = tfnas.NASTuner(small_space(), max_trials=3, seed=0, directory=tmp_path,
                           project_name="p")
    assert {t.trial_id: t.score for t in completed(again)} == {
        t.trial_id: t.score for t in trials
    }
    again.search(digits.train, validation_data=digits.validation, epochs=1, verbose=0)
    assert len(again.oracle.trials) == 3
    assert again.get_best_architectures(1) == architectures[:1]


class FlakySpace(kt.HyperModel):
    """Three variants: one trains, one raises at build, one diverges."""

    def build(self, hp):
        variant = hp.Choice("variant", ["ok", "raise", "nan"])
        if variant == "raise":
            raise ValueError("kernel size 7 does not fit an 8x8 input")
        inputs = keras.Input((8, 8, 1))
        x = keras.layers.Flatten()(inputs)
        if variant == "nan":
            x = keras.layers.Rescaling(float("nan"))(x)
        outputs = keras.layers.Dense(10, activation="softmax")(x)
        model = keras.Model(inputs, outputs)
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        return model


def test_failed_candidates_are_recorded_with_reasons(tmp_path, digits, capsys):
    tuner = tfnas.NASTuner(FlakySpace(), max_trials=3, seed=0, directory=tmp_path)
    tuner.search(digits.train, validation_data=digits.validation, epochs=2, verbose=0)
    by_variant = {
        t.hyperparameters.get("variant"): t for t in tuner.oracle.trials.values()
    }
    assert sorted(by_variant) == ["nan", "ok", "raise"]
    assert by_variant["ok"].status == "COMPLETED"
    assert by_variant["raise"].status == "FAILED"
    assert by_variant["nan"].status == "FAILED"
    assert "building the architecture raised ValueError: kernel size 7" in (
        by_variant["raise"].message
    )
    assert "training diverged: the loss became nan in epoch 1" in by_variant["nan"].message
    assert len(tuner.get_failed_trials()) == 2

    capsys.readouterr()
    tuner.results_summary()
    summary = capsys.readouterr().out
    assert "Failed trials (2):" in summary
    assert "CandidateFailed: building the architecture raised ValueError" in summary
    assert "CandidateFailed: training diverged" in summary


class MemoryHungrySpace(kt.HyperModel):
    """Upsamples 8x8 digits to 131072x131072: terabytes of activations."""

    def build(self, hp):
        inputs = keras.Input((8, 8, 1))
        x = keras.layers.UpSampling2D(size=2 ** hp.Choice("log_scale", [14]))(inputs)
        x = keras.layers.GlobalAveragePooling2D()(x)
        model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x))
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        return model


def test_out_of_memory_is_a_recorded_failure(tmp_path, digits):
    tuner = tfnas.NASTuner(MemoryHungrySpace(), max_trials=1, directory=tmp_path,
                           measure_latency=False, count_flops=False)
    tuner.search(digits.train.take(1), validation_data=digits.validation.take(1),
                 epochs=1, verbose=0)
    (trial,) = tuner.oracle.trials.values()
    assert trial.status == "FAILED"
    assert "out of memory while training" in trial.message


def test_bad_arguments_fail_before_training(tmp_path, digits):
    space = small_space()
    with pytest.raises(ValueError,
                       match="expected one of .*'evolution'.*Received: strategy='bogus'"):
        tfnas.NASTuner(space, oracle="bogus", directory=tmp_path)
    with pytest.raises(ValueError, match="`max_trials`.*Received: max_trials=0"):
        tfnas.NASTuner(space, max_trials=0, directory=tmp_path)
    with pytest.raises(ValueError, match="set these on the oracle"):
        tfnas.NASTuner(
            space,
            oracle=kt.oracles.RandomSearchOracle("val_accuracy", max_trials=2),
            max_trials=3,
            directory=tmp_path,
        )
    with pytest.raises(ValueError, match="`oracle`"):
        tfnas.NASTuner(space, oracle=42, directory=tmp_path)

    tuner = tfnas.NASTuner(space, max_trials=2, directory=tmp_path, project_name="q")
    images_only = digits.train.map(lambda x, y: x)
    with pytest.raises(ValueError, match="yield \\(inputs, labels\\) pairs"):
        tuner.search(images_only, validation_data=digits.validation, epochs=1)
    with pytest.raises(ValueError, match="`validation_data` to yield"):
        tuner.search(digits.train, validation_data=digits.validation.map(lambda x, y: x))
    with pytest.raises(ValueError, match="without labels"):
        tuner.search(np.zeros((4, 8, 8, 1)), validation_data=digits.validation)
    with pytest.raises(ValueError, match="validation metric"):
        tuner.search(digits.train, epochs=1)
    assert tuner.oracle.trials == {}


class ReplicaCountingSpace(kt.HyperModel):
    """A space recording the replica count its models train with."""

    def __init__(self):
        super().__init__()
        # One small MLP, which learns digits in a few epochs.
        self.space = spaces.MLPSpace((8, 8, 1), 10, max_layers=1, units=(64,),
                                     activations=("relu",))
        self.replicas = []

    def build(self, hp):
        return self.space.build(hp)

    def fit(self, hp, model, *args, **kwargs):
        self.replicas.append(model.distribute_strategy.num_replicas_in_sync)
        return model.fit(*args, **kwargs)


def test_trials_train_under_mirrored_strategy_with_two_replicas(tmp_path, digits, mirrored):
    space = ReplicaCountingSpace()
    tuner = tfnas.NASTuner(space, max_trials=1, directory=tmp_path,
                           distribution_strategy=mirrored)
    tuner.search(digits.train, validation_data=digits.validation, epochs=3, verbose=0)
    assert space.replicas == [2]
    (trial,) = completed(tuner)
    assert trial.score > 0.3  # well above chance (0.1) on 10 classes
    assert trial.metrics.get_last_value("flops") > 0
    assert tuner.get_best_models(1)[0].distribute_strategy.num_replicas_in_sync == 2


@pytest.mark.slow
def test_a_seeded_search_trains_the_same_candidates_whatever_ran_before(tmp_path):
    # The same search twice in one process, other random numbers drawn
    # before each (as KerasTuner's unseeded discovery of the space draws):
    # every trial starts from the same weights, so it ends with the same ones.
    weights = []
    for draws in (0, 7):
        keras.utils.set_random_seed(1)  # the data as the command line loads it
        data = tfnas.data.load_digits_data(batch_size=64, seed=0)
        for _ in range(draws):
            random.random()
            np.random.random()
            keras.initializers.GlorotUniform()  # takes its seed from Python's generator
        tuner = tfnas.NASTuner(small_space(), max_trials=2, seed=0, directory=tmp_path,
                               project_name=f"draws{draws}", measure_latency=False,
                               count_flops=False, log_dir=None)
        tuner.search(data.train.take(4), validation_data=data.validation.take(2), epochs=1,
                     verbose=0)
        trials = sorted(completed(tuner), key=lambda t: t.trial_id)
        assert len(trials) == 2
        weights.append([(t.hyperparameters.values, [w.numpy() for w in tuner.load_model(t).weights])
                        for t in trials])
    for (values, trained), (values_again, trained_again) in zip(*weights):
        assert values == values_again
        assert len(trained) == len(trained_again)
        for w, w_again in zip(trained, trained_again):
            # Up to the float rounding of training; other initial weights
            # differ by 1e-1.
            np.testing.assert_allclose(w, w_again, **TRAINING_NOISE)


def test_each_execution_of_a_trial_has_its_own_seed_and_the_search_s_seed_counts(tmp_path):
    x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")

    def initial_kernels(seed, executions, run):
        built = []

        def build(hp):  # the kernels' shapes do not depend on the trial
            model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3),
                                      keras.layers.Dense(2, activation="softmax")])
            model.compile(keras.optimizers.Adam(hp.Float("learning_rate", 1e-3, 1e-2)),
                          "sparse_categorical_crossentropy", metrics=["accuracy"])
            built.append(model.layers[0].kernel.numpy())
            return model

        tuner = NASTuner(build, oracle="random", max_trials=2, seed=seed,
                         executions_per_trial=executions, directory=tmp_path,
                         project_name=f"seed{seed}-executions{executions}-{run}",
                         measure_latency=False, count_flops=False, log_dir=None)
        built.clear()  # KerasTuner's discovery of the space builds too
        tuner.search(x, y, validation_data=(x, y), epochs=1, verbose=0)
        return built

    twice = initial_kernels(seed=3, executions=2, run=1)
    assert len(twice) == 4
    assert not np.allclose(twice[0], twice[1])  # another execution, another start
    again = initial_kernels(seed=3, executions=2, run=2)
    assert len(again) == 4 and all(np.array_equal(a, b) for a, b in zip(twice, again))
    once = initial_kernels(seed=3, executions=1, run=1)
    assert len(once) == 2
    assert np.array_equal(once[0], twice[0]) and np.array_equal(once[1], twice[2])
    assert not np.allclose(initial_kernels(seed=4, executions=1, run=1)[0], once[0])


def test_default_strategy_is_single_device_without_gpus():
    assert tfnas.tuner.default_distribution_strategy() is None


def _tiny_build(hp):
    model = keras.Sequential([keras.Input((4,)),
                              keras.layers.Dense(hp.Int("units", 2, 8)),
                              keras.layers.Dense(2, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def test_nastuner_passes_every_oracle_argument_to_the_named_strategy(tmp_path):
    known = kt.HyperParameters()
    known.Int("units", 2, 8)
    tuner = NASTuner(_tiny_build, oracle="evolution", max_trials=5, hyperparameters=known,
                     tune_new_entries=False, allow_new_entries=False, max_retries_per_trial=2,
                     max_consecutive_failed_trials=4, directory=tmp_path, progress=False,
                     max_model_size=10**6, executions_per_trial=2, overwrite=True)
    assert (tuner.max_model_size, tuner.executions_per_trial) == (10**6, 2)
    oracle = tuner.oracle
    assert (oracle.tune_new_entries, oracle.allow_new_entries) == (False, False)
    assert (oracle.max_retries_per_trial, oracle.max_consecutive_failed_trials) == (2, 4)
    assert [hp.name for hp in oracle.get_space().space] == ["units"]
    with pytest.raises(ValueError, match="max_retries_per_trial"):
        NASTuner(_tiny_build, oracle=oracles.RandomOracle(OBJECTIVE_ACCURACY, max_trials=2),
                 max_retries_per_trial=1, directory=tmp_path / "instance")


@pytest.mark.slow
def test_tfnas_submodules_are_attributes_after_import():
    code = ("import tfnas; tfnas.objectives.MnasNetReward; tfnas.data.load_data; "
            "tfnas.latency.LatencyTable; print('ok')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.stdout.strip() == "ok", result.stderr[-500:]
