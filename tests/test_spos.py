"""SPOS's supernet training: the weights' learning rate decayed linearly to
zero over the training (Guo et al., 2020)."""

import keras
import numpy as np
import pytest

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
