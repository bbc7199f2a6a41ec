"""The supernet's own cost: one trace of its forward and backward pass per
train step graph, and the same updates as the plain bi-level step."""

import platform

import keras
import keras_tuner as kt
import numpy as np
import pytest
import tensorflow as tf

import tfnas
from tfnas import allocator, spaces
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
    # Two fixed batches (the training data reshuffles at every pass).
    first, second = list(paired(digits.train, digits.validation).take(2))
    data = tf.data.Dataset.from_tensors(first).concatenate(tf.data.Dataset.from_tensors(second))
    model = one_shot_model(strategy)
    start = [v.numpy() for v in model.supernet.variables]
    model.fit(data, epochs=1, verbose=0)  # two steps through the shared function
    after = [(v.path, v.numpy()) for v in model.supernet.variables]
    assert model._shared_gradients.experimental_get_tracing_count() == 1

    reference = one_shot_model(strategy)
    for variable, value in zip(reference.supernet.variables, start):
        variable.assign(value)
    reference.optimizer.build(reference._weights())
    step = tf.function(lambda batch: reference_step(reference, batch))
    for batch in data:
        step(batch)
    expected = [v.numpy() for v in reference.supernet.variables]
    assert len(after) == len(expected)
    alphas = [value for path, value in after if path.endswith("/alpha")]
    assert alphas and any(not np.allclose(a, 0.0) for a in alphas)  # they learned
    moved = [path for (path, value), old in zip(after, start) if not np.allclose(value, old)]
    assert len(moved) > len(alphas)  # and so did the weights
    for (path, value), reference_value in zip(after, expected):
        np.testing.assert_allclose(value, reference_value, rtol=1e-5, atol=1e-6,
                                   err_msg=path)


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
    strategy = strategies.darts.BetaDARTS()
    strategy.current_weight.assign(3.0)  # the schedule's weight at some epoch
    model = one_shot_model(strategy)
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


class SameDecisionTwice(kt.HyperModel):
    """One decision applied in two places (as one op choice in two cells):
    x times 1, 2 or 3, twice."""

    def build(self, hp):
        inputs = keras.Input((4,))
        x = inputs
        for _ in range(2):
            x = tfnas.choose_op(hp, "scale", {
                str(k): (lambda k=k: keras.layers.Rescaling(float(k))) for k in (1, 2, 3)})(x)
        model = keras.Model(inputs, x)
        model.compile(loss="mse")
        return model


def test_gdas_copies_of_a_decision_sample_the_same_candidate():
    supernet, builder = build_supernet(SameDecisionTwice(), "gdas", seed=0)
    assert builder.copies["scale"] == 2
    x = tf.ones((1, 4))
    factors = {round(float(supernet(x, training=True)[0, 0]), 3) for _ in range(40)}
    # Shared: 1*1, 2*2 or 3*3; sampled per copy, also 2, 3 and 6.
    assert factors <= {1.0, 4.0, 9.0} and len(factors) >= 2
    graph_call = tf.function(lambda x: supernet(x, training=True))
    assert {round(float(graph_call(x)[0, 0]), 3) for _ in range(20)} <= {1.0, 4.0, 9.0}


class CountingScale(keras.layers.Layer):
    """`x * scale`, counting its runs in a variable (a branch that is not
    executed does not count)."""

    def __init__(self, scale, **kwargs):
        super().__init__(**kwargs)
        self.scale = float(scale)

    def build(self, input_shape):
        self.runs = self.add_weight(name="runs", shape=(), initializer="zeros",
                                    trainable=False)

    def call(self, x):
        self.runs.assign_add(1.0)
        return x * self.scale


def test_proxyless_runs_only_the_sampled_paths():
    from tfnas.supernet import ARCHITECTURE_PHASE, WEIGHT_PHASE, MixedOp

    layer = MixedOp([CountingScale(k) for k in (1, 2, 3, 4)], list("abcd"),
                    mode="proxyless", seed=0)
    x = tf.ones((2, 3))
    layer(x)  # builds (every candidate runs once, to check shapes)
    step = tf.function(lambda x: layer(x, training=True))

    def runs():
        return np.array([c.runs.numpy() for c in layer.candidates])

    for phase, paths in ((WEIGHT_PHASE, 1), (ARCHITECTURE_PHASE, 2)):
        layer.set_phase(phase)
        for _ in range(5):
            before = runs()
            step(x)
            ran = runs() - before
            assert sorted(ran.tolist()) == [0.0] * (4 - paths) + [1.0] * paths


class ConcatTwoOfThree(kt.HyperModel):
    """Two of three inputs, concatenated."""

    def build(self, hp):
        inputs = keras.Input((2,))
        branches = [keras.layers.Rescaling(float(k))(inputs) for k in (1, 10, 100)]
        x = tfnas.choose_inputs(hp, "pick", branches, n_chosen=2, merge="concat")
        model = keras.Model(inputs, x)
        model.compile(loss="mse")
        return model


def test_concat_merges_of_several_inputs_are_mixed():
    supernet, builder = build_supernet(ConcatTwoOfThree(), "darts")
    layer = builder.mixed["pick"]
    assert layer.labels == ["0+1", "0+2", "1+2"]
    layer.alpha.assign([0.3, -1.0, 0.5])
    x = tf.constant([[1.0, 2.0]])
    subsets = [(1, 10), (1, 100), (10, 100)]
    concatenations = [np.concatenate([k * x.numpy() for k in s], axis=-1) for s in subsets]
    weights = tf.nn.softmax(layer.alpha).numpy()
    expected = sum(w * c for w, c in zip(weights, concatenations))
    np.testing.assert_allclose(supernet(x).numpy(), expected, rtol=1e-5)
    # The stand-alone build of a value has the supernet's output shape.
    hp = kt.HyperParameters()
    hp.values["pick"] = "0+2"
    np.testing.assert_allclose(ConcatTwoOfThree().build(hp)(x).numpy(), concatenations[1])


class RewriteOptionsLog(keras.callbacks.Callback):
    """The grappler settings functions are instantiated with, per batch."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def on_train_batch_begin(self, batch, logs=None):
        self.seen.append(current_rewrite_options())


def current_rewrite_options():
    from tensorflow.core.protobuf import config_pb2
    from tensorflow.python.eager import context

    serialized = context.context().function_call_options.config_proto_serialized
    return config_pb2.ConfigProto.FromString(serialized).graph_options.rewrite_options


@pytest.mark.slow
def test_supernet_fit_skips_the_grappler_passes_that_change_nothing(digits):
    from tensorflow.core.protobuf import rewriter_config_pb2

    from tfnas.optimizers import FusedAdam
    from tfnas.graph_options import LEAN_REWRITES

    before = current_rewrite_options()
    model = one_shot_model("darts")
    # The supernet's default architecture optimizer is the fused Adam.
    assert isinstance(OneShotModel(*build_supernet(small_cell(), "darts")).architecture_optimizer,
                      FusedAdam)
    log = RewriteOptionsLog()
    model.fit(paired(digits.train.take(2), digits.validation), epochs=1, verbose=0,
              callbacks=[log])
    assert len(log.seen) == 2
    for options in log.seen:
        assert options.meta_optimizer_iterations == rewriter_config_pb2.RewriterConfig.ONE
        assert options.memory_optimization == rewriter_config_pb2.RewriterConfig.NO_MEM_OPT
        assert options.disable_tfg_optimizer
        # The passes that simplify the graph are left as they were.
        assert options.constant_folding == before.constant_folding
        assert options.disable_meta_optimizer == before.disable_meta_optimizer
    assert set(LEAN_REWRITES) == {"meta_optimizer_iterations", "memory_optimization",
                                  "disable_tfg_optimizer"}
    # Restored after fit, on an error too.
    assert current_rewrite_options() == before
    with pytest.raises(ValueError):
        model.fit(paired(digits.train.take(1), digits.validation), epochs=1, verbose=0,
                  callbacks=[RaiseAtFirstBatch()])
    assert current_rewrite_options() == before


class RaiseAtFirstBatch(keras.callbacks.Callback):
    def on_train_batch_begin(self, batch, logs=None):
        raise ValueError("stop")


class CountingOneShotModel(OneShotModel):
    """Counts the traces of its train step and its calls (the train step
    calls the supernet itself)."""

    def train_step(self, data):
        self.train_step_traces = getattr(self, "train_step_traces", 0) + 1
        return super().train_step(data)

    def call(self, inputs, training=None):
        self.calls = getattr(self, "calls", 0) + 1
        return super().call(inputs, training=training)


@pytest.mark.slow
def test_fit_traces_the_train_step_once(digits):
    # Keras creates the optimizer's slots and the metrics' variables in the
    # step's first trace when no distribution strategy is set; a
    # tf.function whose first trace creates variables traces again: the
    # supernet's whole step twice. `fit` creates them before.
    supernet, builder = build_supernet(small_cell(), "darts", seed=0)
    model = CountingOneShotModel(supernet, builder, strategy="darts", seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=supernet.loss,
                  metrics=["accuracy"])
    history = model.fit(paired(digits.train.take(2), digits.validation), epochs=1, verbose=0)
    assert model.train_step_traces == 1
    # The compiled metrics and loss are built from the supernet's output
    # spec: no symbolic pass of the whole supernet before the step's trace.
    assert getattr(model, "calls", 0) == 0
    assert [m.name for m in model.metrics] == ["loss", "compile_metrics"]
    assert model.optimizer.built and len(model.optimizer.variables) > 1
    assert 0.0 <= history.history["accuracy"][-1] <= 1.0
    # The first step's freed memory is handed back once, after that step.
    assert model._release.released == 1
    model.fit(paired(digits.train.take(2), digits.validation), epochs=1, verbose=0)
    assert model._release.released == 1 and model.train_step_traces == 1
    assert allocator.release_free_memory() == (platform.libc_ver()[0] == "glibc")


def _traced_kinds(layer, shape):
    """Op types of `layer`'s training call and its gradients, traced."""
    def step(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(layer(x, training=True) ** 2)
        return tape.gradient(loss, layer.trainable_variables)

    graph = tf.function(step, autograph=False).get_concrete_function(
        tf.TensorSpec(shape)).graph
    return [op.type for op in graph.get_operations()]


def test_darts_mixing_and_fused_batch_norm_trace_no_shape_slicing():
    """The nodes a supernet's gradient function is made of, per mixed layer
    and per batch norm: a DARTS mixture reads its weights with one `Unpack`
    (not a strided slice per candidate and its gradient), the fused batch
    norm counts its values with one `Size` (not a slice and product of
    its shape) and runs version 1 of the fused op, whose unused outputs need
    no zero gradients. Their values are tested in test_mixed.py and test_batch_norm.py."""
    from tfnas.supernet import MixedOp
    from tfnas.supernet.batch_norm import FusedBatchNormalization

    mixed = MixedOp([keras.layers.Dense(2) for _ in range(3)], ["a", "b", "c"], mode="darts")
    kinds = _traced_kinds(mixed, (None, 3))
    assert "StridedSlice" not in kinds and "StridedSliceGrad" not in kinds
    assert kinds.count("Unpack") == 1
    kinds = _traced_kinds(FusedBatchNormalization(), (None, 4, 4, 3))
    assert "FusedBatchNorm" in kinds
    # No shape arithmetic, and no zeros for the statistics outputs' gradients.
    assert not {"StridedSlice", "Prod", "ZerosLike"} & set(kinds), kinds
