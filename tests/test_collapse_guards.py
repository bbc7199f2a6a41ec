"""Guards against DARTS's collapse: beta-DARTS's scheduled Beta-Decay
regularization and DARTS-PT's perturbation-based selection."""

import keras
import keras_tuner as kt
import numpy as np
import pytest
import tensorflow as tf

import tfnas
from tfnas import spaces
from tfnas import strategies as registry
from tfnas.spaces import ops
from tfnas.supernet import paths, perturbation
from tfnas.supernet.builder import build_supernet
from tfnas.supernet.oneshot import OneShotModel, derive, paired
from tfnas.supernet.strategies.darts import DARTSPT, BetaDARTS, BetaSchedule


def test_beta_weight_rises_linearly_over_the_epochs(digits):
    strategy = BetaDARTS(weight=50.0)
    assert float(strategy.current_weight.numpy()) == 0.0
    schedule = BetaSchedule(strategy, epochs=4)
    seen = []
    for epoch in range(4):
        schedule.on_epoch_begin(epoch)
        seen.append(float(strategy.current_weight.numpy()))
    assert seen == [0.0, 12.5, 25.0, 37.5]  # 50 * epoch / epochs

    # The weight the traced train step reads follows the schedule in a real fit.
    supernet, builder = build_supernet(SignalTwice(), "darts", seed=0)
    model = OneShotModel(supernet, builder, strategy=strategy,
                         architecture_optimizer=keras.optimizers.Adam(0.01, beta_1=0.5))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    weights = []
    record = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: weights.append(float(strategy.current_weight.numpy())))
    model.fit(paired(digits.train.take(2), digits.validation), epochs=2, verbose=0,
              callbacks=[*strategy.callbacks(2), record])
    assert weights == [0.0, 25.0]
    with pytest.raises(ValueError, match="weight"):
        BetaDARTS(weight=-1.0)


def test_beta_penalty_gradient_scales_with_the_scheduled_weight():
    strategy = BetaDARTS()
    strategy.current_weight.assign(7.0)
    alphas = [tf.Variable([0.5, -1.0, 2.0]), tf.Variable([0.0, 1.0])]
    with tf.GradientTape() as tape:
        penalty = strategy.architecture_penalty(alphas)
    for alpha, gradient in zip(alphas, tape.gradient(penalty, alphas)):
        np.testing.assert_allclose(gradient.numpy(), 7.0 * tf.nn.softmax(alpha).numpy() / 2,
                                   rtol=1e-6)


class SignalTwice(kt.HyperModel):
    """Two decisions in a row, each between the identity and a zero op that
    blocks the signal (the identity first in one, second in the other)."""

    def build(self, hp):
        inputs = keras.Input((8, 8, 1))
        x = keras.layers.Flatten()(inputs)
        x = tfnas.choose_op(hp, "a", {"zero": ops.Zero,
                                      "identity": keras.layers.Identity})(x)
        x = tfnas.choose_op(hp, "b", {"identity": keras.layers.Identity,
                                      "zero": ops.Zero})(x)
        model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x))
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        return model


def zero_favoured_supernet(digits):
    """A trained "darts" supernet of `SignalTwice` whose alphas favour the
    zero op (p = 0.8) and were never trained: by construction, removing
    the identity blocks every signal; removing the zero op changes nothing."""
    keras.utils.set_random_seed(0)
    supernet, builder = build_supernet(SignalTwice(), "darts", seed=0)
    model = OneShotModel(supernet, builder, warmup_steps=10 ** 6)  # alphas frozen
    model.compile(optimizer=keras.optimizers.Adam(0.01),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    for name, layer in model.decisions.items():
        layer.alpha.assign(np.log([4.0, 1.0] if name == "a" else [1.0, 4.0]))
    model.fit(paired(digits.train, digits.validation), epochs=3, verbose=0)
    return model


def test_mixing_weights_are_masked_without_renormalizing_and_projected(digits):
    supernet, builder = build_supernet(SignalTwice(), "darts", seed=0)
    layer = builder.mixed["a"]
    layer.alpha.assign(np.log([3.0, 1.0]))
    np.testing.assert_allclose(layer.mixing_weights().numpy(), [0.75, 0.25], rtol=1e-6)
    layer.mask.assign([0.0, 1.0])
    np.testing.assert_allclose(layer.mixing_weights().numpy(), [0.0, 0.25], rtol=1e-6)
    layer.mask.assign([1.0, 1.0])
    layer.projected.assign(1)
    np.testing.assert_array_equal(layer.mixing_weights().numpy(), [0.0, 1.0])
    # The supernet's output follows: projected onto the identity, "a" passes x.
    x, _ = next(iter(digits.validation))
    flat = keras.ops.convert_to_numpy(keras.layers.Flatten()(x[:4]))
    inner = keras.Model(supernet.inputs, layer.output)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(inner(x[:4])), flat, rtol=1e-6)


@pytest.mark.slow
def test_darts_pt_keeps_the_candidate_whose_removal_hurts_most(digits):
    model = zero_favoured_supernet(digits)
    assert derive(model) == {"a": "zero", "b": "zero"}  # the largest alphas
    tuned = []

    def tune():
        tuned.append(True)
        model.fit(paired(digits.train, digits.validation), epochs=1, verbose=0)

    values, steps = perturbation.select(model, digits.validation, tune, seed=0)
    assert values == {"a": "identity", "b": "identity"}
    assert sorted(step["decision"] for step in steps) == ["a", "b"]
    assert len(tuned) == 1  # between the two decisions, not after the last
    for step in steps:
        labels = model.decisions[step["decision"]].labels
        without_identity = step["accuracy"][labels.index("identity")]
        without_zero = step["accuracy"][labels.index("zero")]
        # Chance (0.1) against learned: 3 epochs through a 0.2 x 0.2 mixing
        # weight reach 0.75-0.85 depending on the shuffling's state.
        assert without_identity < 0.2 < 0.5 < without_zero
    # Projected, and the masks restored.
    for layer in model.decisions.values():
        assert layer.labels[int(layer.projected.numpy())] == "identity"
        np.testing.assert_array_equal(layer.mask.numpy(), [1.0, 1.0])
    # The loss criterion agrees here (removing the identity costs most).
    for layer in model.decisions.values():
        layer.projected.assign(-1)
    values, _ = perturbation.select(model, digits.validation, lambda: None,
                                    criterion="loss", seed=1)
    assert values == {"a": "identity", "b": "identity"}


def test_supernet_score_keeps_the_moving_statistics_and_traces_once(digits):
    space = spaces.ChainSpace((8, 8, 1), 10, max_layers=2, filters=(4,),
                              operations=("conv3x3", "maxpool3x3"))
    supernet, builder = build_supernet(space, "darts", seed=0)
    model = OneShotModel(supernet, builder)
    model.compile(optimizer="adam", loss=supernet.loss, metrics=["accuracy"])
    normalizations = paths.batch_normalizations(supernet)
    assert normalizations
    before = [v.numpy().copy() for layer in normalizations
              for v in (layer.moving_mean, layer.moving_variance)]
    validation = digits.validation.take(2)
    score = perturbation.SupernetScore(model, validation)
    layer = next(iter(model.decisions.values()))
    first = score()
    layer.mask.assign(np.zeros(len(layer.labels)))
    blocked = score()
    layer.mask.assign(np.ones(len(layer.labels)))
    assert score() == first and blocked != first
    assert score.traces == 1
    after = [v.numpy() for layer in normalizations
             for v in (layer.moving_mean, layer.moving_variance)]
    for old, new in zip(before, after):
        np.testing.assert_array_equal(old, new)
    # The accuracy is the training-mode (batch statistics) one on all of it.
    x, y = (tf.concat(parts, 0) for parts in zip(*validation))
    with paths.statistics_momentum(normalizations, 1.0):
        predictions = supernet(x, training=True)
    expected = float(np.mean(np.argmax(predictions, -1) == y.numpy()))
    assert first[0] == pytest.approx(expected, abs=1e-6)


def test_darts_pt_is_registered_and_validates_its_arguments():
    assert "darts-pt" in registry.names(one_shot=True)
    assert isinstance(registry.get("darts-pt", one_shot=True).cls(), DARTSPT)
    with pytest.raises(ValueError, match="tune_epochs"):
        DARTSPT(tune_epochs=-1)
    with pytest.raises(ValueError, match="criterion"):
        DARTSPT(criterion="alpha")
    with pytest.raises(ValueError, match="criterion"):
        perturbation.most_needed([(0.5, 1.0)], "alpha")
    assert perturbation.most_needed([(0.9, 0.1), (0.1, 2.0), (0.5, 3.0)]) == 1
    assert perturbation.most_needed([(0.9, 0.1), (0.1, 2.0), (0.5, 3.0)], "loss") == 2
