"""`tfnas.optimizers.FusedAdam`: Keras's Adam, one op per variable."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfnas.optimizers import FusedAdam


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


def assert_same_variables(actual, expected, rtol=1e-4, atol=1e-5):
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        # Float32 rounding only: the kernel forms `1 - beta` in float32.
        np.testing.assert_allclose(a, e, rtol=rtol, atol=atol)


@pytest.mark.slow
@pytest.mark.parametrize("arguments", [
    {},
    {"learning_rate": 0.01, "beta_1": 0.5, "beta_2": 0.99, "epsilon": 1e-3},
    # Keras's own processing around the update step.
    {"weight_decay": 0.01, "clipnorm": 0.5},
    {"global_clipnorm": 0.1, "use_ema": True},
    {"gradient_accumulation_steps": 2},
    {"amsgrad": True},  # Keras's own update
])
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
    # Summed across replicas, a gradient's float32 rounding can differ from
    # run to run, and Adam divides near-zero gradients by their own size: in
    # a full suite run a few weights moved 5e-4 apart. An update of the wrong
    # size is larger: each step moves a weight by up to the learning rate, 1e-2
    # (exact agreement without a strategy: `test_fused_adam_trains_as_keras_adam`).
    assert_same_variables(results[1][0], results[0][0], rtol=1e-2, atol=2e-3)
    assert_same_variables(results[1][1], results[0][1], rtol=1e-2, atol=2e-3)


def test_a_supernet_trains_its_spaces_adam_fused():
    from tfnas import spaces
    from tfnas.supernet.builder import build_supernet

    space = spaces.ChainSpace((8, 8, 1), 10, max_layers=2, filters=(4,),
                              operations=("conv3x3", "sepconv3x3"), learning_rate=0.02)
    supernet, _ = build_supernet(space)
    assert type(supernet.optimizer) is FusedAdam
    assert supernet.optimizer.get_config() == {
        **keras.optimizers.Adam(0.02).get_config(), "name": supernet.optimizer.name}
