import json
import os
import subprocess
import sys
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfnas
from tfnas.spaces import ChainSpace

# One xdist worker runs this module: the module's search is made once.
pytestmark = pytest.mark.xdist_group("export")


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

    # The .keras file loads without custom objects, and without a warning
    # about the optimizer's variables.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = keras.saving.load_model(written["keras"])
    assert not [w for w in caught if "optimizer" in str(w.message)], caught
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


def test_export_best_exports_the_model_it_is_given(searched, digits, tmp_path):
    # `tfnas search` loads the best model for its test score, then exports
    # that one instead of building and loading it again.
    model = searched.load_model(searched.oracle.get_best_trials(1)[0])
    index = next(i for i, w in enumerate(model.weights) if w.path.endswith("kernel"))
    model.weights[index].assign(tf.zeros_like(model.weights[index]))  # unlike the checkpoint
    written = searched.export_best(tmp_path / "out" / "best", formats=("keras",), model=model)
    loaded = keras.saving.load_model(written["keras"])
    assert np.all(loaded.weights[index].numpy() == 0)
    assert len(loaded.weights) == len(model.weights)


def test_export_rejects_unknown_formats(searched, tmp_path):
    with pytest.raises(ValueError, match="`formats`"):
        searched.export_best(tmp_path, formats=("onnx",))


def test_export_needs_a_completed_trial(tmp_path):
    space = ChainSpace((8, 8, 1), 10)
    tuner = tfnas.NASTuner(space, max_trials=1, directory=tmp_path)
    with pytest.raises(ValueError, match="no completed trial"):
        tuner.export_best(tmp_path / "out")


def _run(command, **kwargs):
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, **kwargs)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def _tool(name):
    return os.path.join(os.path.dirname(sys.executable), name)


def test_cli_export_is_served_by_real_consumers(searched, digits, tmp_path):
    """`tfnas export` from the directory; SavedModel CLI, a fresh process and
    LiteRT all serve the model with the in-memory model's predictions."""
    out = tmp_path / "exported"
    printed = _run([_tool("tfnas"), "export", searched.project_dir, str(out),
                    "--formats", "saved_model,keras,tflite"])
    assert "tflite:" in printed
    images = next(iter(digits.test))[0].numpy()[:16]
    expected = searched.get_best_models(1)[0].predict(images, verbose=0)
    np.save(tmp_path / "images.npy", images)

    saved_model = str(out / "saved_model")
    signature = tf.saved_model.load(saved_model).signatures["serving_default"]
    (input_name,) = signature.structured_input_signature[1]
    (output_name,) = signature.structured_outputs
    shown = _run([_tool("saved_model_cli"), "show", "--dir", saved_model,
                  "--tag_set", "serve", "--signature_def", "serving_default"])
    assert input_name in shown and "(-1, 8, 8, 1)" in shown
    _run([_tool("saved_model_cli"), "run", "--dir", saved_model, "--tag_set", "serve",
          "--signature_def", "serving_default",
          "--inputs", f"{input_name}={tmp_path / 'images.npy'}",
          "--outdir", str(tmp_path / "cli_out")])
    np.testing.assert_allclose(np.load(tmp_path / "cli_out" / f"{output_name}.npy"),
                               expected, atol=1e-5)

    # A fresh process: the SavedModel needs no tfnas at all; the .keras file
    # needs tfnas's layers registered (imported), but no custom objects.
    script = (
        "import sys, numpy as np, tensorflow as tf, keras\n"
        "x = np.load(sys.argv[1])\n"
        "served = tf.saved_model.load(sys.argv[2])\n"
        "np.save(sys.argv[4], served.serve(x).numpy())\n"
        "assert 'tfnas' not in sys.modules\n"
        "import tfnas.spaces\n"
        "model = keras.saving.load_model(sys.argv[3])\n"
        "np.save(sys.argv[5], model.predict(x, verbose=0))\n"
    )
    _run([sys.executable, "-c", script, str(tmp_path / "images.npy"), saved_model,
          str(out / "model.keras"), str(tmp_path / "served.npy"),
          str(tmp_path / "keras.npy")], cwd=tmp_path)
    np.testing.assert_allclose(np.load(tmp_path / "served.npy"), expected, atol=1e-5)
    np.testing.assert_allclose(np.load(tmp_path / "keras.npy"), expected, atol=1e-5)

    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(out / "model.tflite"))
    (input_detail,) = interpreter.get_input_details()
    (output_detail,) = interpreter.get_output_details()
    interpreter.resize_tensor_input(input_detail["index"], images.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(input_detail["index"], images.astype(np.float32))
    interpreter.invoke()
    np.testing.assert_allclose(interpreter.get_tensor(output_detail["index"]), expected,
                               atol=1e-4)

    with open(out / "architecture.json") as file:
        record = json.load(file)
    assert record["trial_id"] == searched.oracle.get_best_trials(1)[0].trial_id


def test_cli_export_errors_name_the_problem(tmp_path, capsys):
    from tfnas import cli

    # In this process: the `tfnas` script itself is run by the test above.
    assert cli.main(["export", str(tmp_path), str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tfnas: error: ") and "holds no tfnas project" in err
