"""Spaces on sequences: the chain space on 1-D inputs, the sequence space and
the Transformer encoder space on token ids and numeric series."""

import json

import keras
import numpy as np
import pytest

from tfnas import Architecture, spaces
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
