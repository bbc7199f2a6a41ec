"""SPOS's supernet training: the weights' learning rate decayed linearly to
zero over the training (Guo et al., 2020)."""

import json

import keras
import keras_tuner as kt
import numpy as np
import pytest
import tensorflow as tf

from tfnas import spaces
from tfnas.supernet.builder import build_supernet
from tfnas.supernet.oneshot import OneShotModel, paired
from tfnas.supernet.schedules import LinearDecay
from tfnas.supernet.strategies.spos import SPOS


def small_chain():
    return spaces.ChainSpace((8, 8, 1), 10, max_layers=2, filters=(4, 8), skips=False,
                             activations=("relu",), operations=("conv3x3", "maxpool3x3"))


def test_spos_decays_the_learning_rate_linearly_per_batch_and_restores_it(digits):
    strategy = SPOS()
    supernet, builder = build_supernet(small_chain(), strategy.mode, seed=0)
    model = OneShotModel(supernet, builder, strategy=strategy, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(0.02), loss=supernet.loss)
    first = [v.numpy().copy() for v in model._weights()]
    rates = []
    record = keras.callbacks.LambdaCallback(
        on_train_batch_begin=lambda batch, logs: rates.append(
            float(model.optimizer.learning_rate)))
    # 2 epochs of 5 batches: the rate falls by a tenth of 0.02 per batch.
    model.fit(paired(digits.train.take(5), digits.validation), epochs=2, verbose=0,
              callbacks=[*strategy.callbacks(2), record])
    assert rates == pytest.approx([0.02 * (1 - step / 10) for step in range(10)], rel=1e-5)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.02)  # restored
    assert any(not np.allclose(a, b.numpy()) for a, b in zip(first, model._weights()))


def test_spos_decay_is_an_option_validated_by_name():
    assert [type(c) for c in SPOS().callbacks(3)] == [LinearDecay]
    assert SPOS(learning_rate_decay=None).callbacks(3) == []
    with pytest.raises(ValueError, match="learning_rate_decay.*cosine"):
        SPOS(learning_rate_decay="cosine")
    with pytest.raises(ValueError, match="epochs"):
        LinearDecay(0)


def test_linear_decay_refuses_a_schedule_with_a_way_out(digits):
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(10, activation="softmax")])
    schedule = keras.optimizers.schedules.ExponentialDecay(0.01, 10, 0.9)
    model.compile(optimizer=keras.optimizers.Adam(schedule),
                  loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="constant learning rate"):
        model.fit(digits.train.take(2), epochs=1, verbose=0, callbacks=[LinearDecay(1)])


def spos_search(tmp_path, digits, space, **options):
    from tfnas.supernet.tuner import OneShotTuner

    tuner = OneShotTuner(space, strategy=SPOS(**options), supernet_epochs=1,
                         directory=tmp_path, seed=0, spos_trials=3, progress=False)
    tuner.search(digits.train.take(6), validation_data=digits.validation.take(3), epochs=1,
                 verbose=0)
    return tuner


@pytest.mark.slow
def test_spos_scores_every_path_of_a_small_space_and_derives_the_best(tmp_path, digits):
    from tfnas.bench.ground_truth import enumerate_space

    space = small_chain()
    tuner = spos_search(tmp_path, digits, space)
    history = tuner.architecture_history
    keys = [json.dumps(row["architecture"], sort_keys=True) for row in history]
    every = [json.dumps(values, sort_keys=True) for values in enumerate_space(space)]
    # Every path once (4 + 4 x 4 = 20), not the 3 trials evolution would take.
    assert sorted(keys) == sorted(every) and len(keys) == 20
    assert len({row["score"] for row in history}) > 1
    best = max(history, key=lambda row: row["score"])
    assert tuner.oracle.architecture == best["architecture"]


@pytest.mark.slow
def test_spos_scores_equal_the_supernets_evaluation_and_evolution_stays_for_big_spaces(
        tmp_path, digits):
    from tfnas.supernet import paths

    space = small_chain()
    strategy = SPOS()
    supernet, builder = build_supernet(space, strategy.mode, seed=0)
    model = OneShotModel(supernet, builder, strategy=strategy, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss=supernet.loss,
                  metrics=["accuracy"])
    model.fit(paired(digits.train, digits.validation), epochs=3, verbose=0)
    # One batch for both: Keras's batches of 64 would round near ties
    # differently from PathAccuracy's single batch.
    validation = digits.validation.unbatch().batch(10_000).apply(
        tf.data.experimental.assert_cardinality(1))

    class Objective:  # what path_scorer reads of a tuner
        class oracle:
            objective = kt.Objective("val_accuracy", "max")

    scorer = paths.path_scorer(Objective, model, digits.train, validation)
    architectures = [{"num_layers": 1, "layer_0/op": "conv3x3", "layer_0/filters": 8},
                     {"num_layers": 2, "layer_0/op": "conv3x3", "layer_0/filters": 4,
                      "layer_1/op": "maxpool3x3", "layer_1/filters": 8}]
    assert isinstance(scorer, paths.PathAccuracy)  # accuracy of class scores: one trace
    calibration = scorer.calibration  # the training data reshuffles: the same batch
    expected = [paths.score_path(Objective, model, values, validation, calibration)
                for values in architectures]
    assert scorer(architectures) == pytest.approx(expected, abs=1e-6)

    # exhaustive_limit below the space's 20 paths: evolution's 3 trials.
    tuner = spos_search(tmp_path / "evolution", digits, space, exhaustive_limit=19)
    assert len(tuner.architecture_history) == 3
    with pytest.raises(ValueError, match="exhaustive_limit.*-1"):
        SPOS(exhaustive_limit=-1)


def test_linear_decay_names_the_unknown_steps_and_the_ways_out(digits):
    import tensorflow as tf

    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    data = digits.train.take(2).filter(lambda x, y: True)
    assert data.cardinality() == tf.data.UNKNOWN_CARDINALITY
    with pytest.raises(ValueError, match=r"Received: steps=None.*assert_cardinality.*"
                                         r"learning_rate_decay=None"):
        model.fit(data, epochs=1, verbose=0, callbacks=[LinearDecay(1)])


def test_search_all_paths_ranks_a_nan_score_last_in_either_direction():
    from tfnas.supernet import paths

    class Tuner:  # what search_all_paths reads and writes of a tuner
        def __init__(self, direction):
            self.oracle = type("Oracle", (), {"objective": kt.Objective("val_loss", direction)})
            self.recorded = None

        def record_paths(self, history):
            self.recorded = history

    architectures = [{"op": "a"}, {"op": "b"}, {"op": "c"}]
    for direction, scores, best in (("min", [float("nan"), 0.5, 0.2], "c"),
                                    ("max", [float("nan"), 0.5, 0.2], "b")):
        tuner = Tuner(direction)
        assert paths.search_all_paths(tuner, architectures, lambda _: scores)["op"] == best
        assert len(tuner.recorded) == 3
