"""The supernet's own cost: one trace of its forward and backward pass per
train step graph, and the same updates as the plain bi-level step."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfnas import spaces
from tfnas import strategies as tfnas_strategies
from tfnas.supernet import strategies
from tfnas.supernet.builder import build_supernet
from tfnas.supernet.oneshot import OneShotModel, paired


def small_cell():
    return spaces.get("cell", (8, 8, 1), 10, num_cells=3, num_blocks=1, filters=4,
                      operations=("sep_conv_3x3", "max_pool_3x3", "identity"))


def one_shot_model(strategy, seed=0):
    strategy = strategies.resolve(strategy)
    supernet, builder = build_supernet(small_cell(), strategy.mode, seed=seed)
    model = OneShotModel(supernet, builder, strategy=strategy, seed=seed,
                         architecture_optimizer=keras.optimizers.Adam(3e-2, beta_1=0.5))
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=supernet.loss)
    return model


def reference_step(model, data):
    """The bi-level step as 97b15db wrote it, one gradient tape per step
    kind (first or second order), for comparison."""
    (x_train, y_train), (x_val, y_val) = data
    weights, alphas = model._weights(), model.alphas
    if model.second_order:
        xi = tf.cast(model.optimizer.learning_rate, tf.float32)
        backup = [tf.identity(w) for w in weights]
        with tf.GradientTape() as tape:
            train_loss, _ = model._loss(x_train, y_train)
        for w, g in zip(weights, tape.gradient(train_loss, weights)):
            if g is not None:
                w.assign_sub(xi * g)
        with tf.GradientTape() as tape:
            val_loss, _ = model._loss(x_val, y_val)
        gradients = tape.gradient(val_loss, alphas + weights)
        alpha_gradients = gradients[:len(alphas)]
        vector = [tf.zeros_like(w) if g is None else tf.convert_to_tensor(g)
                  for g, w in zip(gradients[len(alphas):], weights)]
        epsilon = 0.01 / (tf.linalg.global_norm(vector) + 1e-12)

        def train_alpha_gradients(sign):
            for w, b, v in zip(weights, backup, vector):
                w.assign(b + sign * epsilon * v)
            with tf.GradientTape() as tape:
                loss, _ = model._loss(x_train, y_train)
            return tape.gradient(loss, alphas)

        plus, minus = train_alpha_gradients(1.0), train_alpha_gradients(-1.0)
        for w, b in zip(weights, backup):
            w.assign(b)
        alpha_gradients = [g - xi * (p - m) / (2 * epsilon)
                           for g, p, m in zip(alpha_gradients, plus, minus)]
    else:
        with tf.GradientTape() as tape:
            loss, _ = model._loss(x_val, y_val)
        alpha_gradients = tape.gradient(loss, alphas)
    model.architecture_optimizer.apply(alpha_gradients, alphas)
    with tf.GradientTape() as tape:
        loss, _ = model._loss(x_train, y_train)
    gradients = tape.gradient(loss, weights)
    model.optimizer.apply(
        [tf.zeros_like(w) if g is None else g for g, w in zip(gradients, weights)], weights)


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["darts", "darts2"])
def test_shared_gradient_function_computes_the_plain_bilevel_step(strategy, digits):
    data = paired(digits.train.take(2), digits.validation)
    model = one_shot_model(strategy)
    start = [v.numpy() for v in model.supernet.variables]
    model.fit(data, epochs=1, verbose=0)  # two steps through the shared function
    after = {v.path: v.numpy() for v in model.supernet.variables}
    assert model._shared_gradients.experimental_get_tracing_count() == 1

    reference = one_shot_model(strategy)
    for variable, value in zip(reference.supernet.variables, start):
        variable.assign(value)
    reference.optimizer.build(reference._weights())
    step = tf.function(lambda batch: reference_step(reference, batch))
    for batch in data:
        step(batch)
    expected = {v.path: v.numpy() for v in reference.supernet.variables}
    assert sorted(after) == sorted(expected)
    moved = [p for p in after if "alpha" in p and not np.allclose(after[p], 0.0)]
    assert moved  # the alphas learned something
    for path, value in after.items():
        np.testing.assert_allclose(value, expected[path], rtol=1e-5, atol=1e-6, err_msg=path)


@pytest.mark.slow
def test_supernet_is_traced_once_per_fit_whatever_the_batch_shapes(digits):
    # 1,078 training examples in batches of 32: the last batch is partial,
    # and the repeated validation data pairs partial with full batches.
    model = one_shot_model("darts2")
    model.fit(paired(digits.train.take(3).concatenate(digits.train.skip(33)),
                     digits.validation), epochs=2, verbose=0)
    # Five forward and backward passes per second-order step, one trace.
    assert model._shared_gradients.experimental_get_tracing_count() == 1
    assert model.train_function is not None


def test_beta_decay_adds_its_formula_to_the_architecture_gradient():
    model = one_shot_model(strategies.darts.BetaDARTS(weight=3.0))
    rng = np.random.default_rng(0)
    for alpha in model.alphas:
        alpha.assign(rng.normal(size=alpha.shape).astype("float32"))
    base = [tf.ones_like(a) for a in model.alphas]
    regularized = model._with_penalty(base, model.alphas)
    count = len(model.alphas)
    # d/d alpha of weight * mean_e logsumexp(alpha_e) = weight * softmax(alpha) / |E|
    for alpha, gradient in zip(model.alphas, regularized):
        expected = 1.0 + 3.0 * tf.nn.softmax(alpha).numpy() / count
        np.testing.assert_allclose(gradient.numpy(), expected, rtol=1e-5)
    plain = one_shot_model("darts")
    assert plain._with_penalty(base, plain.alphas) is base
    assert "beta-darts" in tfnas_strategies.names(one_shot=True)
