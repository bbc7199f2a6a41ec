import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfnas
from tfnas.spaces import ChainSpace


@pytest.fixture(scope="module")
def searched(tmp_path_factory, digits):
    space = ChainSpace((8, 8, 1), 10, max_layers=2, filters=(8, 16))
    tuner = tfnas.NASTuner(space, max_trials=2, seed=3,
                           directory=tmp_path_factory.mktemp("search"))
    tuner.search(digits.train, validation_data=digits.validation, epochs=1, verbose=0)
    return tuner


def test_export_best_writes_loadable_models_and_architecture(searched, digits, tmp_path):
    written = searched.export_best(tmp_path / "best")
    images = next(iter(digits.test))[0].numpy()
    expected = searched.get_best_models(1)[0].predict(images, verbose=0)

    # The .keras file loads without custom objects.
    loaded = keras.saving.load_model(written["keras"])
    np.testing.assert_allclose(loaded.predict(images, verbose=0), expected, atol=1e-5)

    served = tf.saved_model.load(written["saved_model"])
    np.testing.assert_allclose(served.serve(images).numpy(), expected, atol=1e-5)

    with open(written["architecture"]) as file:
        record = json.load(file)
    best = searched.oracle.get_best_trials(1)[0]
    architecture = tfnas.Architecture(record["architecture"])
    assert architecture == tfnas.Architecture.from_trial(best)
    assert record["hash"] == architecture.hash
    assert record["score"] == pytest.approx(best.score)
    assert record["space"]["name"] == "chain"

    rebuilt = tfnas.rebuild(written["architecture"])
    assert rebuilt.count_params() == loaded.count_params()
    assert [layer.__class__ for layer in rebuilt.layers] == [
        layer.__class__ for layer in loaded.layers
    ]


def test_export_rejects_unknown_formats(searched, tmp_path):
    with pytest.raises(ValueError, match="`formats`"):
        searched.export_best(tmp_path, formats=("onnx",))


def test_export_needs_a_completed_trial(tmp_path):
    space = ChainSpace((8, 8, 1), 10)
    tuner = tfnas.NASTuner(space, max_trials=1, directory=tmp_path)
    with pytest.raises(ValueError, match="no completed trial"):
        tuner.export_best(tmp_path / "out")
