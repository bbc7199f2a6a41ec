"""Value choices shared by supernets: width, kernel size, expansion, on/off,
activation and block type, from the spaces' own `choose_value` decisions."""


import keras
import keras_tuner as kt
import numpy as np
import pytest
import tensorflow as tf

import tfnas
from tfnas import spaces
from tfnas.spaces import ops
from tfnas.supernet import elastic
from tfnas.supernet.builder import OnInput, build_supernet
from tfnas.supernet.oneshot import derive

MODES = ("darts", "gdas", "proxyless", "single_path")
BLOCK_TYPES = {"conv": ("conv", 1), "dwconv": ("separable", 1),
               "mbconv3": ("inverted", 3), "mbconv6": ("inverted", 6)}


class ConvValues(kt.HyperModel):
    """One convolution of chosen filters, kernel size and activation, on
    images or (`rank=1`) sequences."""

    def __init__(self, rank=2):
        super().__init__()
        self.rank = rank

    def build(self, hp):
        inputs = keras.Input((8,) * self.rank + (2,))
        filters = tfnas.choose_value(hp, "filters", [4, 8])
        kernel = tfnas.choose_value(hp, "kernel", [3, 5])
        activation = tfnas.choose_value(hp, "activation", ["relu", "tanh"])
        x = elastic.conv_bn(filters, kernel, activation=activation)(inputs)
        x = keras.layers.GlobalAveragePooling2D()(x) if self.rank == 2 else \
            keras.layers.GlobalAveragePooling1D()(x)
        return keras.Model(inputs, keras.layers.Dense(3)(x))


class MobileValues(kt.HyperModel):
    """A stem and one mobile block of chosen type (expansion), kernel, width,
    squeeze-excite and residual."""

    def build(self, hp):
        inputs = keras.Input((8, 8, 1))
        x = ops.ConvBN(8, 3)(inputs)
        block_type = tfnas.choose_value(hp, "type", list(BLOCK_TYPES))
        kernel = tfnas.choose_value(hp, "kernel", [3, 5])
        filters = tfnas.choose_value(hp, "filters", [8, 16])
        se_ratio = tfnas.choose_value(hp, "se", [0.0, 0.25])
        skip = tfnas.choose_value(hp, "skip", [True, False])
        x = elastic.mobile_block(filters, kernel, 1, block_type, BLOCK_TYPES,
                                 se_ratio=se_ratio, skip=skip, in_filters=8)(x)
        x = keras.layers.GlobalAveragePooling2D()(x)
        model = keras.Model(inputs, keras.layers.Dense(3)(x))
        model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        return model


def standalone(space, values):
    hp = kt.HyperParameters()
    hp.values.update(values)
    return space.build(hp)


def set_values(builder, values):
    """Points every single-path selector at `values`."""
    for name, layer in builder.mixed.items():
        layer.set_index(builder.values[name].index(values[name]))


def randomize(layers):
    rng = np.random.default_rng(0)
    for layer in layers:
        for weight in layer.weights:
            weight.assign(rng.uniform(0.5, 1.5, weight.shape).astype("float32"))


def test_width_and_activation_are_slices_of_the_widest_layer():
    """A path through the shared MLP computes what the stand-alone MLP of
    the same values computes with the shared weights' slices."""
    space = spaces.MLPSpace((6,), 3, max_layers=1, units=(4, 8), activations=("relu", "tanh"))
    supernet, builder = build_supernet(space, "single_path")
    assert set(builder.mixed) == {"num_layers", "layer_0/units", "layer_0/activation"}
    x = np.random.default_rng(1).normal(size=(5, 6)).astype("float32")
    shared_dense = [layer for layer in supernet.layers
                    if isinstance(layer, elastic.ElasticDense)][0]
    kernel, bias = shared_dense.kernel.numpy(), shared_dense.bias.numpy()
    head_kernel, head_bias = [w.numpy() for w in supernet.layers[-1].weights]
    for units, activation in [(4, "tanh"), (8, "relu"), (4, "relu")]:
        values = {"num_layers": 1, "layer_0/units": units, "layer_0/activation": activation}
        set_values(builder, values)
        model = standalone(space, values)
        dense, head = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
        dense.set_weights([kernel[:, :units], bias[:units]])
        head.set_weights([head_kernel[:units], head_bias])
        np.testing.assert_allclose(supernet(x, training=False), model(x), atol=1e-5)


def _copy_conv(shared, conv_bn, kernel_size, filters):
    start = (shared.kernel.shape[0] - kernel_size) // 2
    window = (slice(start, start + kernel_size),) * (len(shared.kernel.shape) - 2)
    conv_bn.conv.kernel.assign(shared.kernel.numpy()[window + (slice(None), slice(filters))])
    conv_bn.norm.set_weights([w.numpy()[:filters] for w in shared.norm.weights])


@pytest.mark.parametrize("rank", [1, 2])
def test_kernel_size_is_a_centred_slice_and_darts_mixes_it(rank):
    space = ConvValues(rank)
    x = np.random.default_rng(2).normal(size=(4,) + (8,) * rank + (2,)).astype("float32")
    supernet, builder = build_supernet(space, "single_path")
    shared = [layer for layer in supernet.layers if isinstance(layer, elastic.ElasticConvBN)][0]
    randomize([shared.norm])
    head_kernel, head_bias = [w.numpy() for w in supernet.layers[-1].weights]
    outputs = {}
    for filters, kernel, activation in [(4, 3, "relu"), (8, 5, "tanh"), (8, 3, "tanh")]:
        values = {"filters": filters, "kernel": kernel, "activation": activation}
        set_values(builder, values)
        model = standalone(space, values)
        conv = [layer for layer in model.layers if isinstance(layer, ops.ConvBN)][0]
        _copy_conv(shared, conv, kernel, filters)
        model.layers[-1].set_weights([head_kernel[:filters], head_bias])
        outputs[filters, kernel, activation] = supernet(x, training=False).numpy()
        np.testing.assert_allclose(outputs[filters, kernel, activation], model(x),
                                   atol=1e-4)
    # DARTS: the same weights, mixed by softmax(alpha); an alpha that all
    # but picks one value gives that value's output, and derivation picks it.
    darts, darts_builder = build_supernet(space, "darts")
    darts.set_weights([w for w in supernet.get_weights()])
    for name, value in {"filters": 8, "kernel": 3, "activation": "tanh"}.items():
        layer = darts_builder.mixed[name]
        layer.alpha.assign([30.0 if v == value else -30.0
                            for v in darts_builder.values[name]])
    np.testing.assert_allclose(darts(x, training=False), outputs[8, 3, "tanh"], atol=1e-4)
    model = type("M", (), {"builder": darts_builder, "decisions": darts_builder.mixed})
    assert derive(model) == {"filters": 8, "kernel": 3, "activation": "tanh"}
    darts_builder.mixed["kernel"].alpha.assign([0.0, 0.0])
    assert not np.allclose(darts(x, training=False), outputs[8, 3, "tanh"], atol=1e-3)


def _gradient_support(supernet, builder, x, y):
    alphas = {id(layer.alpha) for layer in builder.mixed.values()}
    weights = [w for w in supernet.trainable_weights if id(w) not in alphas]
    with tf.GradientTape() as tape:
        loss = supernet.compute_loss(x=x, y=y, y_pred=supernet(x, training=True))
    gradients = tape.gradient(loss, weights)
    return sum(int(np.count_nonzero(g.numpy())) for g in gradients if g is not None)


@pytest.mark.parametrize("values", [
    {"type": "mbconv6", "kernel": 5, "filters": 16, "se": 0.25, "skip": True},
    {"type": "mbconv3", "kernel": 3, "filters": 8, "se": 0.0, "skip": True},
    {"type": "dwconv", "kernel": 5, "filters": 8, "se": 0.25, "skip": False},
    {"type": "conv", "kernel": 3, "filters": 16, "se": 0.0, "skip": True},
])
def test_single_path_gradients_reach_exactly_the_standalone_parameters(values):
    """In a single-path step, the shared weights that receive gradients are
    as many as the stand-alone model of the path has parameters: expansion,
    kernel, width, squeeze-excite and residual select their slices only."""
    space = MobileValues()
    supernet, builder = build_supernet(space, "single_path", seed=0)
    set_values(builder, values)
    # No ReLU unit of a squeeze-excite's 2-unit bottleneck may be dead on the
    # batch (its weights would rightly get no gradient).
    for layer in supernet._flatten_layers():
        if isinstance(layer, elastic.ElasticSqueezeExcite):
            for reduce, _ in filter(None, layer.excites):
                reduce.bias.assign(np.full(reduce.bias.shape, 5.0, "float32"))
    rng = np.random.default_rng(3)
    x = rng.normal(size=(32, 8, 8, 1)).astype("float32")
    y = rng.integers(0, 3, size=32)
    model = standalone(space, values)
    count = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert _gradient_support(supernet, builder, x, y) == count


def test_mlp_gradients_reach_exactly_the_standalone_parameters():
    space = spaces.MLPSpace((6,), 3, max_layers=2, units=(4, 8, 16))
    keras.utils.set_random_seed(1)
    supernet, builder = build_supernet(space, "single_path", seed=0)
    values = {"num_layers": 2, "layer_0/units": 8, "layer_0/activation": "tanh",
              "layer_1/units": 4, "layer_1/activation": "elu"}
    set_values(builder, values)
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(32, 6)).astype("float32"), rng.integers(0, 3, size=32)
    assert _gradient_support(supernet, builder, x, y) == standalone(space, values).count_params()


SMALL = {
    "chain": dict(max_layers=2, filters=(4, 8)),
    "mlp": dict(max_layers=2, units=(4, 8)),
    "mobile": dict(width_multiplier=0.25, num_blocks=2),  # every decision kind
    "cell": dict(num_cells=3, num_blocks=2, filters=4),
    "nb201": dict(cells_per_stage=1, filters=4),
    "macro": dict(init_filters=4, head_filters=16),
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", sorted(SMALL))
def test_every_space_builds_and_trains_as_a_supernet_in_every_mode(name, mode, digits):
    """Every decision of every built-in space is mixed in the supernet (none
    left at one value), and the supernet runs forward in training mode
    (sampling, in the sampling modes)."""
    space = spaces.get(name, (8, 8, 1), 10, **SMALL[name])
    supernet, builder = build_supernet(space, mode, seed=0)
    hp = kt.HyperParameters()
    space.build(hp)
    searched = {p.name for p in hp.space if len(getattr(p, "values", [0, 1])) > 1}
    assert searched <= set(builder.mixed)
    x, _ = next(iter(digits.train))
    output = supernet(x[:8], training=True).numpy()
    assert output.shape == (8, 10) and np.isfinite(output).all()


@pytest.mark.parametrize("mode", MODES)
def test_a_one_dimensional_chain_space_builds_as_a_supernet(mode):
    """Widths, pooling projections and skips of a chain space over sequences
    (MNIST-1D's shape) are shared as the image ones are (the 1-D kernel
    slices: `test_kernel_size_is_a_centred_slice_and_darts_mixes_it[1]`)."""
    space = spaces.ChainSpace((40, 1), 10, max_layers=3, filters=(4, 8),
                              operations=("conv3x3", "conv5x5", "maxpool3x3"))
    supernet, builder = build_supernet(space, mode, seed=0)
    hp = kt.HyperParameters()
    space.build(hp)
    assert {p.name for p in hp.space if len(getattr(p, "values", [0, 1])) > 1} <= set(
        builder.mixed)
    x = np.random.default_rng(0).normal(size=(8, 40, 1)).astype("float32")
    output = supernet(x, training=True).numpy()
    assert output.shape == (8, 10) and np.isfinite(output).all()


def test_multi_trial_decisions_are_unchanged():
    """The spaces declare the same KerasTuner hyperparameters as before."""
    hp = kt.HyperParameters()
    spaces.MobileSpace((32, 32, 3), 10, num_blocks=1).build(hp)
    block = [(p.name, p.values, p.default, p.conditions) for p in hp.space
             if p.name.startswith("block_0/")]
    assert block == [
        ("block_0/conv", ["conv", "dwconv", "mbconv1", "mbconv3", "mbconv6"], "mbconv6", []),
        ("block_0/kernel", [3, 5], 3, []), ("block_0/se_ratio", [0.0, 0.25], 0.0, []),
        ("block_0/skip", ["identity", "none"], "identity", []),
        ("block_0/filters", [0.75, 1.0, 1.25], 1.0, []),
        ("block_0/layers", [1, 2], 1, []),
    ]
    hp = kt.HyperParameters()
    spaces.MLPSpace((4,), 2, max_layers=1, units=(2, 4)).build(hp)
    assert [(p.name, p.values) for p in hp.space] == [
        ("num_layers", [1]), ("layer_0/units", [2, 4]),
        ("layer_0/activation", ["relu", "tanh", "elu", "swish"])]


def test_a_stride_choice_is_refused_before_training_with_the_way_out():
    with pytest.raises(ValueError, match=r"`layer_0/stride`.*strides=\[1\]"):
        build_supernet(spaces.ChainSpace((8, 8, 1), 10, strides=(1, 2)))
    # Fixed, it builds.
    fixed = {f"layer_{i}/stride": 2 for i in range(4)}
    _, builder = build_supernet(spaces.ChainSpace((8, 8, 1), 10, max_layers=1,
                                                  strides=(1, 2)), fixed_values=fixed)
    assert "layer_0/stride" not in builder.mixed


# Keras warns when `build` is called on a layer without one that holds
# sublayers (OnInput, ElasticSequence did): marked built, weights made later.
@pytest.mark.filterwarnings(r"error:`build\(\)` was called on layer:UserWarning")
def test_composite_candidates_make_their_weights_in_build(digits):
    """A strided dilated convolution over shared widths is a sequence of an
    elastic layer and a plain one, and a pooling of one width beside elastic
    convolutions is wrapped to read the elastic inputs: both build their
    sublayers' weights in `build`, and the supernet runs."""
    strided = spaces.ChainSpace((8, 8, 1), 10, max_layers=1, filters=(4, 8),
                                operations=("conv3x3", "dilconv3x3"), strides=(2,))
    one_width = spaces.ChainSpace((8, 8, 1), 10, max_layers=2, filters=(4,),
                                  operations=("conv3x3", "maxpool3x3"))
    x, _ = next(iter(digits.train))
    for space, composite in ((strided, elastic.ElasticSequence), (one_width, OnInput)):
        supernet, _ = build_supernet(space, "darts", seed=0)
        layers = [layer for layer in supernet._flatten_layers()
                  if isinstance(layer, composite)]
        assert layers
        for layer in layers:
            inner = layer.sublayers if composite is elastic.ElasticSequence else [layer.layer]
            assert all(sub.built for sub in inner) and layer.weights
        output = supernet(x[:8], training=True).numpy()
        assert output.shape == (8, 10) and np.isfinite(output).all()


class PlainWidth(kt.HyperModel):
    def build(self, hp):
        inputs = keras.Input((4,))
        x = keras.layers.Dense(hp.Choice("units", [2, 4]))(inputs)
        model = keras.Model(inputs, keras.layers.Dense(2)(x))
        model.compile(loss="mse")
        return model


def test_a_plain_hyperparameter_is_refused_unless_fixed():
    with pytest.raises(ValueError, match=r"`units`.*choose_value.*fixed_values"):
        build_supernet(PlainWidth())
    model, _ = build_supernet(PlainWidth(), fixed_values={"units": 4})
    assert model.layers[1].units == 4


def test_the_default_chain_space_builds_as_a_supernet():
    """Pooling is projected to the layer's filters: every candidate of an
    operation choice has one shape (the default space used to fail)."""
    supernet, builder = build_supernet(spaces.ChainSpace((8, 8, 1), 10, max_layers=1))
    assert builder.values["layer_0/filters"] == [16, 32, 64]
    assert supernet.output_shape == (None, 10)


@pytest.mark.slow
def test_default_chain_space_one_shot_search_from_the_command_line(tmp_path, capsys):
    from tfnas import cli

    # `tfnas search` in this process: the command's code without a TensorFlow
    # start-up (test_cli.py runs the command as a process).
    code = cli.main(["search", "--strategy", "darts", "--max-trials", "1", "--epochs", "1",
                     "--directory", str(tmp_path)])
    assert code == 0, capsys.readouterr().err[-3000:]
    assert (tmp_path / "chain-darts-digits" / "architecture_probabilities.json").exists()
