"""`tfnas.optimizers.FusedAdam`: Keras's Adam, one op per variable."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfnas import optimizers
from tfnas.optimizers import FusedAdam

from tests.tolerances import TRAINING_NOISE


def small_convnet(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((8, 8, 1)),
        # No bias before the batch norm: its gradient would be rounding noise,
        # which Adam normalizes into full steps.
        keras.layers.Conv2D(4, 3, padding="same", use_bias=False),
        keras.layers.BatchNormalization(),
        keras.layers.ReLU(),
        keras.layers.DepthwiseConv2D(3, padding="same"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(10),
    ])


@pytest.fixture(scope="module")
def batches(digits):
    """Six fixed training batches (the digits data reshuffles at every pass)."""
    return [batch for batch in digits.train.take(6)]


def as_dataset(batches):
    dataset = tf.data.Dataset.from_tensors(batches[0])
    for batch in batches[1:]:
        dataset = dataset.concatenate(tf.data.Dataset.from_tensors(batch))
    return dataset


def trained(optimizer, batches, model=None):
    """`(model variables, optimizer variables)` after `fit` on `batches`
    from the same initial weights."""
    model = model or small_convnet()
    model.compile(optimizer=optimizer,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(as_dataset(batches), epochs=1, verbose=0)
    return [v.numpy() for v in model.variables], [v.numpy() for v in optimizer.variables]


def assert_same_variables(actual, expected, rtol=TRAINING_NOISE["rtol"],
                          atol=TRAINING_NOISE["atol"]):
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        np.testing.assert_allclose(a, e, rtol=rtol, atol=atol)


ARGUMENTS = [
    {},
    {"learning_rate": 0.01, "beta_1": 0.5, "beta_2": 0.99, "epsilon": 1e-3},
    # Keras's own processing around the update step.
    {"weight_decay": 0.01, "clipnorm": 0.5},
    {"global_clipnorm": 0.1, "use_ema": True, "ema_overwrite_frequency": 3},
    {"gradient_accumulation_steps": 2},
    {"amsgrad": True},  # Keras's own update
]


def gradient_sequence(shapes, steps, seed=0):
    """`steps` lists of gradients for variables of `shapes`, their sizes
    spread from 1e-9 to 10 with some exact zeros, as a training run's are."""
    rng = np.random.default_rng(seed)
    sequence = []
    for _ in range(steps):
        gradients = []
        for shape in shapes:
            size = 10.0 ** rng.uniform(-9, 1, size=shape)
            gradient = rng.standard_normal(shape) * size * (rng.uniform(size=shape) > 0.1)
            gradients.append(tf.constant(gradient, tf.float32))
        sequence.append(gradients)
    return sequence


def in_a_graph(optimizer, variables):
    """`optimizer.apply(gradients, variables)` as a `tf.function` of `gradients`."""
    return tf.function(lambda gradients: optimizer.apply(gradients, variables))


@pytest.mark.parametrize("arguments", ARGUMENTS)
def test_fused_adam_updates_as_keras_adam(arguments):
    # The same gradients for both optimizers, so no training feedback: the
    # results differ by float32 rounding only. The kernel forms `1 - beta_2`
    # in float32 (1 - 0.999f is 1.3e-5 away from Keras's 0.001), so the
    # velocities differ by that much relatively.
    shapes = [(3, 3, 1, 4), (4,), (16, 10), ()]
    initial = [np.random.default_rng(i).standard_normal(shape).astype("float32")
               for i, shape in enumerate(shapes)]
    sequence = gradient_sequence(shapes, steps=6)
    results = []
    for optimizer in (keras.optimizers.Adam(**arguments), FusedAdam(**arguments)):
        variables = [keras.Variable(value) for value in initial]
        optimizer.build(variables)
        apply = in_a_graph(optimizer, variables)  # as `fit` runs it
        for gradients in sequence:
            apply(gradients)
        trained_variables = [v.numpy() for v in variables]
        results.append((trained_variables, [v.numpy() for v in optimizer.variables]))
    (expected, expected_slots), (actual, slots) = results
    assert_same_variables(actual, expected, rtol=1e-4, atol=1e-8)
    assert_same_variables(slots, expected_slots, rtol=1e-4, atol=1e-8)
    assert all(not np.allclose(a, b) for a, b in zip(actual, initial))


@pytest.mark.slow
@pytest.mark.parametrize("arguments", ARGUMENTS)
def test_fused_adam_trains_as_keras_adam(arguments, batches):
    expected_model, expected_slots = trained(keras.optimizers.Adam(**arguments), batches)
    model, slots = trained(FusedAdam(**arguments), batches)
    assert_same_variables(model, expected_model)
    assert_same_variables(slots, expected_slots)
    # It trained: the weights moved from their initial values.
    initial = [v.numpy() for v in small_convnet().variables]
    assert any(not np.allclose(a, b) for a, b in zip(model, initial))


def test_fused_adam_is_one_op_per_variable():
    model = small_convnet()
    variables = model.trainable_variables
    gradients = [tf.ones_like(v) for v in variables]

    def update_ops(optimizer):
        optimizer.build(variables)
        graph = tf.function(lambda: optimizer.apply(gradients, variables)) \
            .get_concrete_function().graph
        return [op.type for op in graph.get_operations()]

    fused, plain = update_ops(FusedAdam()), update_ops(keras.optimizers.Adam())
    assert fused.count("ResourceApplyAdam") == len(variables)
    assert "ResourceApplyAdam" not in plain
    # Keras's Adam computes its bias corrections for every variable.
    assert plain.count("Pow") == 2 * len(variables) and fused.count("Pow") == 2
    assert len(fused) < len(plain) / 3


@pytest.mark.slow
def test_fused_adam_falls_back_for_sparse_gradients():
    # An embedding's gradient is a tf.IndexedSlices.
    def model():
        keras.utils.set_random_seed(0)
        return keras.Sequential([keras.Input((4,), dtype="int32"), keras.layers.Embedding(20, 3),
                                 keras.layers.Flatten(), keras.layers.Dense(2)])

    x = np.random.default_rng(0).integers(0, 20, size=(64, 4))
    y = np.random.default_rng(1).integers(0, 2, size=(64,))
    results = []
    for optimizer in (keras.optimizers.Adam(0.05), FusedAdam(0.05)):
        network = model()
        network.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(
            from_logits=True))
        network.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False)
        results.append([v.numpy() for v in network.variables + optimizer.variables])
    assert_same_variables(results[1], results[0])


def test_fused_adam_config_round_trips():
    optimizer = FusedAdam(learning_rate=0.02, beta_1=0.5, epsilon=1e-4, clipnorm=1.0)
    config = keras.optimizers.serialize(optimizer)
    assert config["registered_name"] == "tfnas>FusedAdam"
    restored = keras.optimizers.deserialize(config)
    assert type(restored) is FusedAdam
    assert restored.get_config() == optimizer.get_config()


@pytest.mark.slow
def test_fused_adam_slots_round_trip_a_checkpoint(tmp_path, batches):
    # Training 3 + 3 steps through a saved and reloaded model equals 6 steps
    # at once only if the slots (and the step) come back.
    expected, expected_slots = trained(FusedAdam(0.01), batches)
    model = small_convnet()
    trained(FusedAdam(0.01), batches[:3], model=model)
    path = tmp_path / "nested" / "model.keras"
    path.parent.mkdir()
    model.save(path)
    reloaded = keras.models.load_model(path)
    assert type(reloaded.optimizer) is FusedAdam
    assert int(reloaded.optimizer.iterations.numpy()) == 3
    reloaded.fit(as_dataset(batches[3:]), epochs=1, verbose=0)
    assert_same_variables([v.numpy() for v in reloaded.variables], expected)
    assert_same_variables([v.numpy() for v in reloaded.optimizer.variables], expected_slots)


@pytest.mark.slow
def test_fused_adam_under_a_mirrored_strategy(mirrored, batches):
    results = []
    for adam in (keras.optimizers.Adam, FusedAdam):
        with mirrored.scope():
            model, optimizer = small_convnet(), adam(0.01)
        results.append(trained(optimizer, batches, model=model))
    assert_same_variables(results[1][0], results[0][0])
    assert_same_variables(results[1][1], results[0][1])


def test_a_supernet_trains_its_spaces_adam_fused():
    from tfnas import spaces
    from tfnas.supernet.builder import build_supernet

    space = spaces.ChainSpace((8, 8, 1), 10, max_layers=2, filters=(4,),
                              operations=("conv3x3", "sepconv3x3"), learning_rate=0.02)
    supernet, _ = build_supernet(space)
    assert type(supernet.optimizer) is FusedAdam
    assert supernet.optimizer.get_config() == {
        **keras.optimizers.Adam(0.02).get_config(), "name": supernet.optimizer.name}


def train_step_ops(model, batch):
    """The op types of `model`'s training step traced on `batch`."""
    graph = tf.function(model.train_step).get_concrete_function(batch).graph
    return [op.type for op in graph.get_operations()]


def test_fused_updates_trains_a_keras_adam_as_keras_does_and_gives_it_back(batches):
    expected_model, expected_slots = trained(keras.optimizers.Adam(0.01), batches)
    model = small_convnet()
    optimizer = keras.optimizers.Adam(0.01)
    model.compile(optimizer=optimizer,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    with optimizers.fused_updates(model) as fused:
        assert fused and type(model.optimizer) is FusedAdam
        model.fit(as_dataset(batches), epochs=1, verbose=0)
        fused_ops = train_step_ops(model, batches[0])
    keras_ops = train_step_ops(model, batches[0])
    assert fused_ops.count("ResourceApplyAdam") == len(model.trainable_variables)
    assert "ResourceApplyAdam" not in keras_ops and len(fused_ops) < len(keras_ops)
    assert_same_variables([v.numpy() for v in model.variables], expected_model)
    assert_same_variables([v.numpy() for v in optimizer.variables], expected_slots)
    # Outside the block, Keras's Adam again: saved and exported as Keras's own,
    # and the step traced with the fused update dropped (a later fit traces
    # Keras's).
    assert model.optimizer is optimizer and type(optimizer) is keras.optimizers.Adam
    assert keras.optimizers.serialize(optimizer)["registered_name"] is None
    assert model.train_function is None
    # A step traced before the block would not take the fused update.
    model.fit(as_dataset(batches[:1]), epochs=1, verbose=0)
    with optimizers.fused_updates(model) as fused:
        assert not fused and type(optimizer) is keras.optimizers.Adam
    assert model.train_function is not None


def test_fused_updates_reach_a_loss_scaled_adam_and_leave_other_optimizers_alone():
    for optimizer, fusable in ((keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam()),
                                True),
                               (keras.optimizers.AdamW(), False),  # a subclass: its own update
                               (keras.optimizers.SGD(), False), (FusedAdam(), False)):
        model = small_convnet()
        model.compile(optimizer=optimizer, loss="mse")
        inner = getattr(optimizer, "inner_optimizer", optimizer)
        before = type(inner)
        with optimizers.fused_updates(model) as fused:
            assert fused is fusable
            assert type(inner) is (FusedAdam if fusable else before)
        assert type(inner) is before
    uncompiled = small_convnet()
    with optimizers.fused_updates(uncompiled) as fused:
        assert not fused


def test_fused_updates_give_keras_s_adam_back_when_fit_fails():
    model = small_convnet()
    model.compile(optimizer="adam", loss="mse")
    with pytest.raises(RuntimeError, match="stopped"):
        with optimizers.fused_updates(model):
            raise RuntimeError("stopped")
    assert type(model.optimizer) is keras.optimizers.Adam


@pytest.mark.slow
def test_nastuner_trains_candidates_with_fused_updates(tmp_path, digits):
    from tfnas.spaces import ChainSpace
    from tfnas.tuner import NASTuner

    seen = []

    class Recording(NASTuner):
        def on_epoch_end(self, trial, model, epoch, logs=None):
            seen.append((type(self).fused_optimizer_updates, type(model.optimizer).__name__))
            super().on_epoch_end(trial, model, epoch, logs)

    class KerasUpdates(Recording):
        fused_optimizer_updates = False

    for tuner_class in (Recording, KerasUpdates):
        tuner = tuner_class(ChainSpace((8, 8, 1), 10, max_layers=1, filters=(8,)), max_trials=1,
                            seed=0, directory=tmp_path, project_name=tuner_class.__name__)
        tuner.search(digits.train.take(3), validation_data=digits.validation.take(1), epochs=1,
                     verbose=0)
        best = tuner.get_best_models(1)[0]
        assert type(best.optimizer) is keras.optimizers.Adam
    assert seen == [(True, "FusedAdam"), (False, "Adam")]
