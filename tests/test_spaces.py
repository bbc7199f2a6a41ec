import json
import math
import pathlib
import random

import keras
import numpy as np
import pytest

import tfnas
from tfnas import Architecture, spaces
from tfnas.spaces import nb201, nbmacro
from tfnas.testing import check_space

# The copy packaged with tfnas (from ../shared/benchmarks, with its license).
MACRO_TABLE = pathlib.Path(tfnas.bench.tables.NAS_BENCH_MACRO)
DIGITS = (8, 8, 1)

# Small versions of every space, so the conformance suite stays fast.
SMALL = {
    "mlp": {},
    "chain": {"max_layers": 5},
    "cell": {"num_cells": 3, "num_blocks": 3, "filters": 8},
    "nb201": {"cells_per_stage": 1, "filters": 8},
    "macro": {"init_filters": 8, "head_filters": 64},
    "mobile": {"width_multiplier": 0.25, "num_blocks": 2},  # every decision kind
    "sequence": {"max_blocks": 3, "widths": (8,)},
    "transformer": {"max_layers": 2, "model_dims": (8,), "ff_units": (8, 16)},
}
# The input of spaces that do not take images: a series, and token ids.
INPUTS = {"sequence": ((12, 2), {}), "transformer": ((12,), {"vocabulary_size": 30})}


def trainable_params(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def build(space, values):
    return space.build(Architecture(values).to_hyperparameters())


@pytest.mark.parametrize("name", sorted(spaces.BUILT_IN))  # users' spaces aside
def test_every_space_passes_the_conformance_suite(name):
    shape, data_args = INPUTS.get(name, (DIGITS, {}))
    space = spaces.get(name, shape, 10, **SMALL[name], **data_args)
    count = 3 if name == "mobile" else 6  # a mobile candidate costs seconds to build
    report = check_space(space, num_architectures=count, seed=0)
    assert report.architectures == count
    assert report.min_params > 0


def test_conformance_suite_passes_for_regression_and_tabular_inputs():
    check_space(spaces.MLPSpace((13,), 1, task="regression"), num_architectures=4)
    check_space(spaces.ChainSpace(DIGITS, 3, task="regression", max_layers=2),
                num_architectures=3)


def test_conformance_suite_catches_a_space_that_leaks_inactive_decisions():
    class Leaky(spaces.MLPSpace):
        def build_features(self, hp, inputs):
            x = super().build_features(hp, inputs)
            # Declared outside any conditional scope, but only sometimes.
            if hp.get("num_layers") > 1:
                hp.Choice("extra", ["a", "b"])
            return x

    with pytest.raises(AssertionError, match="gives another architecture"):
        check_space(Leaky(DIGITS, 10, max_layers=2), num_architectures=12)


def test_space_sizes_match_the_published_counts():
    assert spaces.NASBench201Space(DIGITS, 10).size() == 15_625
    assert spaces.NASBenchMacroSpace(DIGITS, 10).size() == 6_561
    mlp = spaces.MLPSpace(DIGITS, 10, max_layers=2, units=(8, 16), activations=("relu",))
    assert mlp.size() == 2 + 4
    chain = spaces.ChainSpace(DIGITS, 10, max_layers=2, operations=("conv3x3", "maxpool3x3"),
                              filters=(8,), activations=("relu",), strides=(1,))
    # depth 1: 2 ops; depth 2: 2 ops x (2 ops x 2 skip subsets)
    assert chain.size() == 2 + 2 * 4
    cell = spaces.CellSpace(DIGITS, 10, num_blocks=2, operations=("identity", "sep_conv_3x3"))
    assert cell.size() == ((2 * 2) ** 2 * (3 * 2) ** 2) ** 2
    mobile = spaces.MobileSpace(DIGITS, 10)
    # blocks 0 and 6 have one layer in MobileNetV2: depths {1, 2}; others three
    assert mobile.size() == 120 ** 7 * 2 ** 2 * 3 ** 5


def test_nas_bench_macro_codes_round_trip_for_the_whole_table():
    table = json.loads(MACRO_TABLE.read_text())
    assert len(table) == 6_561
    for code in table:
        values = nbmacro.from_code(code)
        assert nbmacro.to_code(values) == code
        assert set(values) == {f"layer_{i}" for i in range(8)}
    for bad in ("0201210", "02012103", 2012100, "0201210x"):
        with pytest.raises(ValueError, match="NAS-Bench-Macro code"):
            nbmacro.from_code(bad)


def test_nas_bench_macro_parameter_counts_equal_the_benchmarks():
    """The skeleton is wired as the benchmark's: trainable parameters on
    CIFAR-10 input equal the table's for extreme and random architectures."""
    table = json.loads(MACRO_TABLE.read_text())
    space = spaces.NASBenchMacroSpace((32, 32, 3), 10)
    codes = ["00000000", "11111111", "22222222", "20000000", "00000001"]
    codes += random.Random(7).sample(sorted(table), 5)
    for code in codes:
        model = build(space, nbmacro.from_code(code))
        assert trainable_params(model) == table[code]["params"], code


BEST_NB201 = ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+"
              "|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|")


def test_nas_bench_201_strings_map_to_the_expected_edges():
    example = ("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+"
               "|skip_connect~0|nor_conv_3x3~1|skip_connect~2|")
    values = nb201.from_string(example)
    assert values == {
        "edge_0_1": "nor_conv_3x3",
        "edge_0_2": "nor_conv_3x3", "edge_1_2": "avg_pool_3x3",
        "edge_0_3": "skip_connect", "edge_1_3": "nor_conv_3x3", "edge_2_3": "skip_connect",
    }
    assert nb201.to_string(values) == example
    assert nb201.to_string(nb201.from_string(BEST_NB201)) == BEST_NB201
    for bad in ("|none~0|", "|none~1|+|none~0|none~1|+|none~0|none~1|none~2|",
                "|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|"):
        with pytest.raises(ValueError):
            nb201.from_string(bad)


def test_nas_bench_201_strings_round_trip_for_every_architecture():
    import itertools

    count = 0
    for ops in itertools.product(nb201.NB201_OPS, repeat=6):
        values = {nb201.edge_name(j, i): op for (j, i), op in zip(nb201.EDGES, ops)}
        assert nb201.from_string(nb201.to_string(values)) == values
        count += 1
    assert count == 15_625


def nb201_params(values, filters, cells, channels=3, classes=10):
    """Hand count: stem, cells, residual reductions, final BN, classifier."""
    def cell(f):
        per_op = {"nor_conv_3x3": 9 * f * f + 2 * f, "nor_conv_1x1": f * f + 2 * f}
        return sum(per_op.get(op, 0) for op in values.values())

    def resnet_block(f_in, f):
        return (9 * f_in * f + 2 * f) + (9 * f * f + 2 * f) + f_in * f

    c = filters
    total = 9 * channels * c + 2 * c
    total += cells * (cell(c) + cell(2 * c) + cell(4 * c))
    total += resnet_block(c, 2 * c) + resnet_block(2 * c, 4 * c)
    return total + 2 * 4 * c + 4 * c * classes + classes


@pytest.mark.parametrize("text", [BEST_NB201, "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
                                  "|nor_conv_1x1~0|+|avg_pool_3x3~0|skip_connect~1|+"
                                  "|nor_conv_3x3~0|none~1|nor_conv_1x1~2|"])
def test_nas_bench_201_parameter_counts_match_hand_counts(text):
    values = nb201.from_string(text)
    space = spaces.NASBench201Space((32, 32, 3), 10, cells_per_stage=2, filters=8)
    assert trainable_params(build(space, values)) == nb201_params(values, 8, 2)


def test_chain_parameter_count_matches_a_hand_count():
    space = spaces.ChainSpace(DIGITS, 10, max_layers=3, strides=(1, 2))
    values = {
        "num_layers": 3,
        "layer_0/op": "conv3x3", "layer_0/filters": 16, "layer_0/activation": "relu",
        "layer_0/stride": 1,
        "layer_1/op": "maxpool3x3", "layer_1/filters": 16, "layer_1/stride": 2,
        "layer_1/skip/0": False,
        "layer_2/op": "sepconv5x5", "layer_2/filters": 32, "layer_2/activation": "swish",
        "layer_2/stride": 1, "layer_2/skip/0": True, "layer_2/skip/1": False,
    }
    model = build(space, values)
    conv0 = 9 * 1 * 16 + 2 * 16
    pool1 = 16 * 16 + 2 * 16  # the pooling's 1x1 projection to its filters
    sep2 = 25 * 16 + 16 * 32 + 2 * 32
    skip0 = 16 * 32 + 2 * 32  # 1x1 projection of layer 0 (16 -> 32 channels)
    head = 32 * 10 + 10
    assert trainable_params(model) == conv0 + pool1 + sep2 + skip0 + head
    assert model.output_shape == (None, 10)
    assert space.describe(values) == (
        "conv3x3(16 relu) > maxpool3x3(16 s2) > sepconv5x5(32 swish +0)")


def test_mlp_parameter_count_and_depth_conditional_decisions():
    space = spaces.MLPSpace((13,), 3)
    values = {"num_layers": 2, "layer_0/units": 64, "layer_0/activation": "tanh",
              "layer_1/units": 16, "layer_1/activation": "relu"}
    model = build(space, values)
    assert model.count_params() == (13 * 64 + 64) + (64 * 16 + 16) + (16 * 3 + 3)
    assert space.describe(values) == "64tanh > 16relu"


def test_cell_space_structure():
    space = spaces.CellSpace(DIGITS, 10, num_cells=6, num_blocks=2, filters=8)
    assert space.reduction_indices() == [2, 4]
    hp = Architecture({}).to_hyperparameters()
    model = space.build(hp)
    names = [hp_.name for hp_ in hp.space]
    assert "normal/block_1/input_0" in names and "reduce/block_1/op_1" in names
    block1 = next(h for h in hp.space if h.name == "normal/block_1/input_1")
    assert block1.values == ["c_k-2", "c_k-1", "b0"]
    assert model.output_shape == (None, 10)


def test_cell_space_searches_its_blocks_per_cell_between_min_and_max_blocks():
    fixed = spaces.CellSpace(DIGITS, 10, num_cells=3, num_blocks=2, filters=8)
    grown = spaces.CellSpace(DIGITS, 10, num_cells=3, min_blocks=1, max_blocks=2, filters=8)
    one = spaces.CellSpace(DIGITS, 10, num_cells=3, num_blocks=1, filters=8)
    assert grown.size() == fixed.size() + one.size()
    # A fixed block count declares no depth and keeps its config.
    assert "num_blocks" not in Architecture.from_hyperparameters(
        _built(fixed)).values and fixed.get_config()["num_blocks"] == 2
    assert spaces.CellSpace(**grown.get_config()).get_config() == grown.get_config()
    # Block 1's decisions exist only in two-block cells.
    shallow = Architecture.from_hyperparameters(_built(grown, num_blocks=1)).values
    deep = Architecture.from_hyperparameters(_built(grown, num_blocks=2)).values
    assert shallow["num_blocks"] == 1 and not any("block_1" in name for name in shallow)
    assert {n for n in deep if "block_1" in n} == {
        f"{t}/block_1/{d}_{k}" for t in ("normal", "reduce") for d in ("input", "op")
        for k in (0, 1)}
    # The same architecture, as a fixed or a searched block count, is one model.
    values = {k: v for k, v in deep.items() if k != "num_blocks"}
    assert build(grown, deep).count_params() == build(fixed, values).count_params()
    assert grown.describe(shallow).count("+") == 2  # one block in each cell type


def _built(space, **values):
    hp = Architecture(values).to_hyperparameters()
    space.build(hp)
    return hp


def test_mobile_space_depth_and_skeleton():
    space = spaces.MobileSpace((32, 32, 3), 10)
    assert space.layer_choices(0) == [1, 2] and space.layer_choices(3) == [3, 4, 5]
    hp = Architecture({}).to_hyperparameters()
    model = space.build(hp)
    # Defaults reproduce MobileNetV2's 17 inverted-residual layers.
    blocks = [layer for layer in model.layers if isinstance(layer, tfnas.spaces.ops.MobileBlock)]
    assert len(blocks) == 17
    assert [b.filters for b in blocks][:3] == [16, 24, 24]
    assert model.get_layer(index=-1).units == 10
    # The first `num_blocks` of the seven, with the same decisions.
    small = spaces.MobileSpace((32, 32, 3), 10, num_blocks=2)
    assert small.size() == (120 * 2) * (120 * 3)
    assert spaces.MobileSpace(**small.get_config()).num_blocks == 2
    hp = Architecture({}).to_hyperparameters()
    model = small.build(hp)
    assert [b.filters for b in model.layers if isinstance(b, tfnas.spaces.ops.MobileBlock)] == [
        16, 24, 24]
    assert {name.split("/")[1] for name in hp.values} == {
        "conv", "kernel", "se_ratio", "skip", "filters", "layers"}
    assert {name.split("/")[0] for name in hp.values} == {"block_0", "block_1"}


@pytest.mark.parametrize("layer", [
    spaces.ops.ConvBN(8, 3, strides=2, kind="separable", preactivation=True),
    spaces.ops.Pool("avg", 3, strides=2, filters=6),
    spaces.ops.Shortcut(6, strides=2, reductions=1),
    spaces.ops.Zero(strides=2, filters=6),
    spaces.ops.FactorizedReduce(6),
    spaces.ops.SqueezeExcite(0.25),
    spaces.ops.MobileBlock(4, 5, kind="inverted", expansion=3, se_ratio=0.25),
    spaces.ops.ResNetBasicBlock(6, strides=2),
])
def test_ops_round_trip_through_config_and_keras_files(layer, tmp_path):
    inputs = keras.Input((8, 8, 4))
    model = keras.Model(inputs, layer(inputs))
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 4)).astype("float32")
    expected = model.predict(x, verbose=0)
    assert expected.shape[1:] == tuple(layer.compute_output_shape((None, 8, 8, 4))[1:])
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), expected, atol=1e-5)


@pytest.mark.parametrize("make, match", [
    (lambda: spaces.ops.ConvBN(0, 3), "`filters`"),
    (lambda: spaces.ops.ConvBN(8, 3, strides=3), "`strides`"),
    (lambda: spaces.ops.ConvBN(8, 3, strides=2, dilation_rate=2), "dilation_rate"),
    (lambda: spaces.ops.Pool("min"), "`kind`"),
    (lambda: spaces.ops.FactorizedReduce(5), "even"),
    (lambda: spaces.ops.SqueezeExcite(0.0), "`ratio`"),
    (lambda: spaces.ops.MobileBlock(8, kind="fancy"), "`kind`"),
    (lambda: spaces.ops.Shortcut(reductions=-1), "`reductions`"),
])
def test_ops_validate_their_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("make, match", [
    (lambda: spaces.get("resnet", DIGITS, 10), "expected one of"),
    (lambda: spaces.ChainSpace((64,), 10), "`input_shape`"),
    (lambda: spaces.ChainSpace(DIGITS, 1), "`num_classes`"),
    (lambda: spaces.ChainSpace(DIGITS, 10, task="ranking"), "`task`"),
    (lambda: spaces.ChainSpace(DIGITS, 10, operations=("conv7x7",)), "`operations`"),
    (lambda: spaces.ChainSpace(DIGITS, 10, min_layers=3, max_layers=2), "`max_layers`"),
    (lambda: spaces.MLPSpace(DIGITS, 10, activations=("nope",)), "nope"),
    (lambda: spaces.CellSpace(DIGITS, 10, num_cells=2), "`num_cells`"),
    (lambda: spaces.CellSpace(DIGITS, 10, filters=7), "even"),
    (lambda: spaces.CellSpace(DIGITS, 10, num_blocks=3, max_blocks=4), "`max_blocks`"),
    (lambda: spaces.CellSpace(DIGITS, 10, min_blocks=3, max_blocks=2), "`min_blocks`"),
    (lambda: spaces.NASBench201Space(DIGITS, 10, cells_per_stage=0), "`cells_per_stage`"),
    (lambda: spaces.MobileSpace(DIGITS, 10, width_multiplier=0), "`width_multiplier`"),
    (lambda: spaces.MobileSpace(DIGITS, 10, num_blocks=8), "`num_blocks`"),
])
def test_spaces_validate_their_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_small_inputs_never_reduce_below_one_pixel():
    space = spaces.ChainSpace((2, 2, 1), 10, max_layers=4, operations=("conv3x3",),
                              strides=(2,))
    values = {"num_layers": 4}
    for i in range(4):
        values.update({f"layer_{i}/op": "conv3x3", f"layer_{i}/filters": 16,
                       f"layer_{i}/activation": "relu", f"layer_{i}/stride": 2})
        values.update({f"layer_{i}/skip/{j}": True for j in range(i)})
    model = build(space, values)
    assert model.output_shape == (None, 10)
    assert math.isfinite(float(model.predict(np.ones((1, 2, 2, 1)), verbose=0).sum()))


def test_nas_bench_201_path_encoding():
    features = nb201.path_features()
    assert len(features) == 100
    encoding = dict(zip(features, nb201.path_encoding(nb201.from_string(BEST_NB201))))
    present = {feature for feature, bit in encoding.items() if bit}
    # |conv3~0|+|conv3~0|conv3~1|+|skip~0|conv3~1|conv3~2|
    assert present == {
        ((0, 3), ("skip_connect",)),
        ((0, 1, 3), ("nor_conv_3x3", "nor_conv_3x3")),
        ((0, 2, 3), ("nor_conv_3x3", "nor_conv_3x3")),
        ((0, 1, 2, 3), ("nor_conv_3x3", "nor_conv_3x3", "nor_conv_3x3")),
    }
    all_none = nb201.from_string("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    assert sum(nb201.path_encoding(all_none)) == 0


def test_cell_path_encoding_follows_the_chosen_inputs():
    space = spaces.CellSpace(DIGITS, 10, num_blocks=2, operations=("identity", "sep_conv_3x3"))
    values = {}
    for cell_type in ("normal", "reduce"):
        values.update({
            f"{cell_type}/block_0/input_0": "c_k-1", f"{cell_type}/block_0/op_0": "sep_conv_3x3",
            f"{cell_type}/block_0/input_1": "c_k-2", f"{cell_type}/block_0/op_1": "identity",
            f"{cell_type}/block_1/input_0": "b0", f"{cell_type}/block_1/op_0": "identity",
            f"{cell_type}/block_1/input_1": "c_k-1", f"{cell_type}/block_1/op_1": "sep_conv_3x3",
        })
    features = space.path_encoding(values)
    assert features == {
        f"{t}:{path}": count for t in ("normal", "reduce") for path, count in {
            "c_k-1:sep_conv_3x3": 2.0,  # block 0 and block 1 each have it
            "c_k-2:identity": 1.0,
            "c_k-1:sep_conv_3x3>identity": 1.0,  # through block 0
            "c_k-2:identity>identity": 1.0,
        }.items()
    }
