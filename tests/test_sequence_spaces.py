"""Spaces on sequences: the chain space on 1-D inputs, the sequence space and
the Transformer encoder space on token ids and numeric series."""

import json

import keras
import numpy as np
import pytest

import tfnas
from tfnas import Architecture, checkpoints, spaces
from tfnas.spaces import chain
from tfnas.testing import check_space

SERIES = (40, 1)  # MNIST-1D's shape


def build(space, values):
    return space.build(Architecture(values).to_hyperparameters())


def one_layer_values(op, stride=1):
    values = {"num_layers": 1, "layer_0/op": op, "layer_0/stride": stride}
    if op in chain.CONV_OPS:
        values.update({"layer_0/filters": 8, "layer_0/activation": "relu"})
    return values


@pytest.mark.parametrize("op", chain.OPERATIONS)
def test_chain_space_builds_and_trains_every_operation_on_sequences(op):
    space = spaces.ChainSpace(SERIES, 10, max_layers=1, filters=(8,))
    model = build(space, one_layer_values(op, stride=2))
    # 1-D layers inside, no 2-D ones; the length halves (stride 2).
    kinds = {type(layer).__name__ for layer in _all_layers(model)}
    assert not any(kind.endswith("2D") for kind in kinds), kinds
    assert any(kind.endswith("1D") for kind in kinds), kinds
    feature_layer = model.layers[-3]  # the chosen op, before pooling and head
    assert feature_layer.output.shape[1] == 20
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, *SERIES)).astype("float32")
    y = rng.integers(0, 10, size=64)
    history = model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert model.predict(x[:3], verbose=0).shape == (3, 10)


def _all_layers(layer):
    found = [layer]
    for child in getattr(layer, "_layers", []) or []:
        found += _all_layers(child)
    for attr in vars(layer).values():
        if isinstance(attr, keras.layers.Layer) and attr is not layer:
            found += _all_layers(attr)
        elif isinstance(attr, list):
            found += [x for item in attr if isinstance(item, keras.layers.Layer)
                      for x in _all_layers(item)]
    return found


def test_chain_space_on_sequences_passes_the_conformance_suite_with_skips():
    space = spaces.ChainSpace(SERIES, 10, max_layers=4, filters=(8, 16))
    report = check_space(space, num_architectures=6, seed=1)
    assert report.architectures == 6


def test_chain_space_rejects_other_ranks_with_a_clear_error():
    with pytest.raises(ValueError, match=r"\(length, channels\) or \(height, width"):
        spaces.ChainSpace((40,), 10)


@pytest.mark.slow
def test_chain_space_searches_mnist1d_from_the_command_line(tmp_path, capsys):
    from tfnas import cli

    args = ["search", "--space", "chain", "--dataset", "mnist1d", "--max-trials", "1",
            "--epochs", "1", "--space-arg", "max_layers=2", "--directory", str(tmp_path)]
    assert cli.main(args) == 0
    assert "Test accuracy of the best architecture" in capsys.readouterr().out
    record = json.loads(
        (tmp_path / "chain-evolution-mnist1d" / "best" / "architecture.json").read_text())
    assert record["space"]["name"] == "chain"
    assert record["space"]["config"]["input_shape"] == [40, 1]


# Small versions of the spaces, on a numeric series and on token ids.
SMALL = {
    "sequence": dict(max_blocks=2, widths=(8,), strides=(1,)),
    "transformer": dict(max_layers=2, model_dims=(8,), key_dims=(4,), ff_units=(8, 16),
                        norms=("pre",)),
}
INPUTS = {"series": ((12, 2), {}), "tokens": ((12,), {"vocabulary_size": 30})}


def small_space(name, inputs, **overrides):
    shape, data_args = INPUTS[inputs]
    return spaces.get(name, shape, 3, **{**SMALL[name], **data_args, **overrides})


def tiny_data(inputs, size=48, seed=0):
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    shape, data_args = INPUTS[inputs]
    if data_args:
        x = rng.integers(0, data_args["vocabulary_size"], size=(size, *shape)).astype("int32")
    else:
        x = rng.normal(size=(size, *shape)).astype("float32")
    y = rng.integers(0, 3, size=size).astype("int32")
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(16)


@pytest.mark.parametrize("inputs", sorted(INPUTS))
@pytest.mark.parametrize("name", sorted(SMALL))
def test_sequence_spaces_pass_the_conformance_suite(name, inputs):
    depth = {"sequence": "max_blocks", "transformer": "max_layers"}[name]
    report = check_space(small_space(name, inputs, **{depth: 3}), num_architectures=5, seed=0)
    assert report.architectures == 5 and report.min_params > 0


@pytest.mark.parametrize("name", sorted(SMALL))
def test_token_ids_are_embedded_and_series_projected(name):
    tokens = small_space(name, "tokens")
    series = small_space(name, "series")
    assert tokens.input_dtype == "int32" and series.input_dtype == "float32"
    hp_values = {}
    token_model = tokens.build(Architecture(hp_values).to_hyperparameters())
    series_model = series.build(Architecture(hp_values).to_hyperparameters())
    assert token_model.inputs[0].dtype == "int32"
    embeddings = [layer for layer in token_model.layers
                  if isinstance(layer, keras.layers.Embedding)]
    assert len(embeddings) == 1 and embeddings[0].input_dim == 30
    assert not any(isinstance(layer, keras.layers.Embedding) for layer in series_model.layers)
    ids = np.array([[1, 2, 3] + [0] * 9, [29] * 12], dtype="int32")
    assert token_model.predict(ids, verbose=0).shape == (2, 3)
    # A one-feature series may come as (length,).
    flat = spaces.get(name, (12,), 3, **SMALL[name])
    assert flat.build(Architecture({}).to_hyperparameters()).predict(
        np.zeros((2, 12), "float32"), verbose=0).shape == (2, 3)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_sequence_spaces_validate_their_arguments(name):
    with pytest.raises(ValueError, match="token ids with `vocabulary_size`"):
        spaces.get(name, (12, 2), 3, vocabulary_size=30)
    with pytest.raises(ValueError, match="`vocabulary_size`"):
        spaces.get(name, (12,), 3, vocabulary_size=1)
    with pytest.raises(ValueError, match=r"\(features,\) or \(length, channels\)"):
        spaces.get(name, (8, 8, 1), 3)
    with pytest.raises(ValueError, match="`dropout`"):
        spaces.get(name, (12, 2), 3, dropout=1.5)


def test_sequence_space_blocks_do_what_their_names_say():
    space = small_space("sequence", "series", max_blocks=3)
    values = {"width": 8, "num_blocks": 3, "pooling": "max",
              "block_0/op": "gru", "block_0/stride": 2,
              "block_1/op": "attention", "block_1/stride": 1, "block_1/skip/0": False,
              "block_2/op": "conv5", "block_2/stride": 2,
              "block_2/skip/0": True, "block_2/skip/1": True}
    model = build(space, values)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert "GRU" in kinds and "AttentionBlock" in kinds and "ConvBN" in kinds
    assert kinds.count("MaxPooling1D") == 2  # two stride-2 blocks
    assert kinds.count("Add") == 2  # block 2 sums its two skips, then adds them
    assert space.describe(values) == "w8 > gru/2 > attention > conv5/2+0,1 > maxpool"


def test_transformer_norm_position_and_heads_are_built_as_chosen():
    space = small_space("transformer", "tokens", heads=(1, 2), norms=("pre", "post"))
    base = {"model_dim": 8, "num_layers": 1, "layer_0/key_dim": 4,
            "layer_0/heads": "2", "layer_0/ff_units": "16", "pooling": "avg"}
    pre = build(space, {**base, "norm": "pre"})
    post = build(space, {**base, "norm": "post"})
    norms = [sum(isinstance(layer, keras.layers.LayerNormalization) for layer in m.layers)
             for m in (pre, post)]
    assert norms == [3, 2]  # pre: one per sub-layer and a final one; post: per sub-layer
    attention = [layer for layer in pre.layers if type(layer).__name__ == "SelfAttention"]
    assert attention[0].heads == 2 and attention[0].key_dim == 4
    # The heads and feed-forward width change the parameter count as they should.
    one_head = build(space, {**base, "norm": "pre", "layer_0/heads": "1"})
    per_head = 3 * (8 * 4 + 4) + 4 * 8  # queries, keys, values, and output weights
    assert pre.count_params() - one_head.count_params() == per_head
    assert space.describe({**base, "norm": "pre"}) == "d8 pre-norm > att2x4-ff16 > avgpool"


@pytest.mark.slow
@pytest.mark.parametrize("inputs", sorted(INPUTS))
@pytest.mark.parametrize("name", sorted(SMALL))
def test_evolution_searches_the_sequence_spaces(name, inputs, tmp_path):
    data = tiny_data(inputs)
    tuner = tfnas.NASTuner(small_space(name, inputs), oracle="evolution", max_trials=1,
                           seed=0, directory=tmp_path, project_name="p", progress=False,
                           measure_latency=False)
    tuner.search(data, validation_data=data, epochs=1, verbose=0)
    best = tuner.oracle.get_best_trials(1)[0]
    assert best.status == "COMPLETED" and best.score is not None
    model = tuner.get_best_models(1)[0]
    assert model.predict(data.take(1), verbose=0).shape == (16, 3)


@pytest.mark.slow
@pytest.mark.parametrize("name, inputs, strategy", [
    ("sequence", "series", "darts"), ("transformer", "tokens", "spos")])
def test_one_shot_searches_the_sequence_spaces(name, inputs, strategy, tmp_path):
    from tfnas.supernet.builder import build_supernet
    from tfnas.supernet.tuner import OneShotTuner

    # A few candidates keep the test short (GRU and LSTM candidates mix too).
    few = {"sequence": dict(operations=("conv3", "attention")),
           "transformer": dict(heads=(1, 2), ff_units=(8,))}[name]
    space = small_space(name, inputs, **few)
    _, builder = build_supernet(space)
    shared = {"sequence": {"num_blocks", "block_0/op", "block_1/op", "block_1/skip/0",
                           "pooling"},
              "transformer": {"num_layers", "layer_0/heads", "layer_1/heads",
                              "layer_0/ff_units", "layer_1/ff_units", "pooling"}}[name]
    assert set(builder.mixed) == shared
    data = tiny_data(inputs)
    tuner = OneShotTuner(space, strategy=strategy, supernet_epochs=1, directory=tmp_path,
                         seed=0, spos_trials=2, progress=False)
    tuner.search(data, validation_data=data, epochs=1, verbose=0)
    derived = tuner.oracle.architecture
    rebuilt = space.build(tfnas.Architecture(derived).to_hyperparameters())
    assert rebuilt.count_params() == tuner.get_best_models(1)[0].count_params()


@pytest.mark.parametrize("strategy", tfnas.strategies.names(one_shot=False))
def test_every_multi_trial_strategy_searches_the_sequence_spaces(strategy, tmp_path):
    import keras_tuner as kt

    from tfnas import oracles
    from tfnas.testing import LookupTuner, synthetic_score

    for name in sorted(SMALL):
        space = small_space(name, "tokens")
        oracle = oracles.get(strategy, objective=kt.Objective("score", "max"),
                             max_trials=6, seed=0, space=space)
        tuner = LookupTuner(oracle, space, synthetic_score, signal_name="score",
                            directory=tmp_path, project_name=name)
        tuner.search()
        done = [t for t in tuner.oracle.trials.values() if t.status == "COMPLETED"]
        assert len(done) >= 3, (name, len(done))
        best = Architecture.from_trial(tuner.oracle.get_best_trials(1)[0])
        hp = best.to_hyperparameters()
        space.build(hp)  # the proposed values build, and are exactly the active ones
        assert Architecture.from_hyperparameters(hp) == best


@pytest.mark.filterwarnings("error:Skipping variable loading:UserWarning")
def test_sequence_models_round_trip_through_keras_files(tmp_path):
    """Every layer of the sequence spaces (and 1-D chain ops) loads by name."""
    sequence = small_space("sequence", "tokens", max_blocks=3)
    transformer = small_space("transformer", "series")
    chain_1d = spaces.ChainSpace(SERIES, 10, max_layers=2, filters=(8,))
    models = {
        "sequence": build(sequence, {
            "width": 8, "num_blocks": 3, "pooling": "max", "block_0/op": "sepconv5",
            "block_0/stride": 2, "block_1/op": "attention", "block_1/stride": 1,
            "block_1/skip/0": True, "block_2/op": "lstm", "block_2/stride": 1,
            "block_2/skip/0": False, "block_2/skip/1": False}),
        "transformer": build(transformer, {
            "model_dim": 8, "norm": "pre", "num_layers": 1, "layer_0/key_dim": 4,
            "layer_0/heads": "2", "layer_0/ff_units": "16", "pooling": "avg"}),
        "chain": build(chain_1d, {
            "num_layers": 2, "layer_0/op": "dilconv3x3", "layer_0/stride": 2,
            "layer_0/filters": 8, "layer_0/activation": "relu", "layer_1/op": "maxpool3x3",
            "layer_1/stride": 2, "layer_1/skip/0": True}),
    }
    rng = np.random.default_rng(0)
    inputs = {"sequence": rng.integers(0, 30, size=(4, 12)).astype("int32"),
              "transformer": rng.normal(size=(4, 12, 2)).astype("float32"),
              "chain": rng.normal(size=(4, *SERIES)).astype("float32")}
    for name, model in models.items():
        path = tmp_path / f"{name}.keras"
        checkpoints.build_optimizer(model)  # else loading warns of the empty optimizer
        model.save(path)
        loaded = keras.saving.load_model(path)
        np.testing.assert_allclose(loaded.predict(inputs[name], verbose=0),
                                   model.predict(inputs[name], verbose=0), rtol=1e-5,
                                   atol=1e-6)


@pytest.mark.parametrize("name, inputs, decision, argument", [
    ("sequence", "series", "width", "widths=[64]"),
    ("transformer", "tokens", "model_dim", "model_dims=[64]")])
def test_unshareable_decisions_are_refused_with_the_way_out(name, inputs, decision, argument):
    from tfnas.supernet.builder import build_supernet

    shape, data_args = INPUTS[inputs]
    with pytest.raises(ValueError, match=f"`{decision}`") as error:
        build_supernet(spaces.get(name, shape, 3, **data_args))
    assert argument in str(error.value)
