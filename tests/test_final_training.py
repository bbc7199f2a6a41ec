"""The final training: `tfnas train DIR` and `NASTuner.train_best`.

The end-to-end tests start from one tiny finished search of the cell space
(made once by `tfnas search`'s code, in this process), each on its own copy
in a sandbox folder; `tfnas train` runs as a real process.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings

import h5py
import numpy as np
import pytest

from tests.waiting import wait_for

SEARCH_SPACE_ARGS = ["num_cells=3", "num_blocks=1", "filters=4",
                     'operations=["sep_conv_3x3","max_pool_3x3"]']
PROJECT = "cell-random-digits"
CHAIN_PROJECT = "chain-random-digits"
SCALED = {"num_cells": 4, "filters": 6}
# One xdist worker runs this module: its module-scoped searches and final
# training are then made once, not once per worker.
pytestmark = pytest.mark.xdist_group("final_training")


def tfnas_command(*args):
    return [sys.executable, "-m", "tfnas", *args]


def run(*args, timeout=600):
    return subprocess.run(tfnas_command(*args), capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def search(directory, space, space_args, max_trials):
    """`tfnas search` in this process: no TensorFlow start-up."""
    from tfnas import cli

    args = ["search", "--space", space, "--strategy", "random", "--max-trials",
            str(max_trials), "--epochs", "1", "--directory", str(directory)]
    for space_arg in space_args:
        args += ["--space-arg", space_arg]
    assert cli.main(args) == 0


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """A finished search of the cell space (1 trial x 1 epoch), by `tfnas search`: a
    space with skeleton arguments to scale up."""
    directory = tmp_path_factory.mktemp("final") / "searches"
    search(directory, "cell", SEARCH_SPACE_ARGS, 1)
    return directory / PROJECT


@pytest.fixture(scope="module")
def chain_searched(tmp_path_factory):
    """A finished search of a small chain space (2 trials x 1 epoch), by `tfnas search`:
    quick to train for several epochs."""
    directory = tmp_path_factory.mktemp("final") / "searches"
    search(directory, "chain", ["max_layers=2", "filters=[8,16]"], 2)
    return directory / CHAIN_PROJECT


def sandboxed_copy(project_dir, tmp_path):
    """A copy of a searched project in this test's sandbox,
    `sandbox/searches/<project>`, next to a sentinel file nothing may delete."""
    sandbox = tmp_path / "sandbox"
    copy = sandbox / "searches" / project_dir.name
    shutil.copytree(project_dir, copy, ignore=shutil.ignore_patterns("tfnas_lock.json"))
    (sandbox / "sentinel.txt").write_text("keep")
    return copy


@pytest.fixture
def project_copy(searched, tmp_path):
    return sandboxed_copy(searched, tmp_path)


@pytest.fixture
def chain_copy(chain_searched, tmp_path):
    return sandboxed_copy(chain_searched, tmp_path)


def read_record(project_dir):
    with open(os.path.join(project_dir, "final", "final_training.json")) as file:
        return json.load(file)


def best_values(project_dir):
    from tfnas import project, trials
    from tfnas.architecture import Architecture

    completed = [t for t in project.load_trials(str(project_dir)) if trials.is_completed(t)]
    return Architecture.from_trial(trials.ranked(completed, "max")[0]).values


@pytest.fixture(scope="module")
def trained(searched, tmp_path_factory):
    """`tfnas train` of the search's --directory, scaled up, with augmentation."""
    sandbox = tmp_path_factory.mktemp("trained")
    directory = sandbox / "searches"
    shutil.copytree(searched, directory / PROJECT)
    args = ["train", str(directory), "--epochs", "1", "--augment", "translate,zoom"]
    for name, value in SCALED.items():
        args += ["--space-arg", f"{name}={value}"]
    result = run(*args)
    assert result.returncode == 0, result.stderr[-3000:]
    return directory / PROJECT, result


@pytest.mark.slow
def test_train_end_to_end_exports_loadable_artifacts(trained, digits):
    import keras
    import tensorflow as tf

    import tfnas
    import tfnas.spaces  # registers tfnas's layers for load_model

    project_dir, result = trained
    record = read_record(project_dir)
    assert record["status"] == "completed"
    assert record["epochs_done"] == 1 and [r["epoch"] for r in record["history"]] == [1]
    assert record["settings"]["augment"] == ["translate", "zoom"]
    assert set(record["test"]) >= {"accuracy", "loss"}
    assert set(record["search_test"]) >= {"accuracy", "loss"}
    assert "test (final model): accuracy=" in result.stdout
    steps = record["steps_per_epoch"]
    assert f"{steps}/{steps}" in result.stdout + result.stderr  # Keras's progress bar
    export_dir = project_dir / "final" / "export"
    assert sorted(record["exported"]) == ["architecture", "keras", "saved_model", "tflite"]

    images = np.concatenate([x for x, _ in digits.test.take(2)])
    with warnings.catch_warnings():
        # The inner model's unused optimizer is not saved (it warned at every load).
        warnings.filterwarnings("error", message="Skipping variable loading")
        keras_model = keras.saving.load_model(export_dir / "model.keras")
    expected = keras_model.predict(images, verbose=0)
    # The augmentation is part of the model and inactive in inference: the
    # accuracy of the exported model is the recorded test accuracy.
    evaluated = keras_model.evaluate(digits.test, verbose=0, return_dict=True)
    assert evaluated["accuracy"] == pytest.approx(record["test"]["accuracy"], abs=1e-6)
    assert "augmentation" in [layer.name for layer in keras_model.layers]

    served = tf.saved_model.load(str(export_dir / "saved_model"))
    outputs = served.signatures["serving_default"](tf.constant(images))
    np.testing.assert_allclose(next(iter(outputs.values())).numpy(), expected, atol=1e-5)

    from ai_edge_litert.interpreter import Interpreter  # tf.lite.Interpreter is deprecated

    interpreter = Interpreter(model_path=str(export_dir / "model.tflite"))
    signature = interpreter.get_signature_runner()
    lite = signature(**{signature.get_input_details().popitem()[0]: images[:1]})
    np.testing.assert_allclose(next(iter(lite.values())), expected[:1], atol=1e-4)

    architecture = json.loads((export_dir / "architecture.json").read_text())
    assert architecture["space"]["config"]["num_cells"] == SCALED["num_cells"]
    rebuilt = tfnas.rebuild(export_dir / "architecture.json")
    assert rebuilt.count_params() == record["params"]


@pytest.mark.slow
def test_scaled_up_model_has_the_expected_parameter_count(trained):
    import keras

    import tfnas.spaces  # noqa: F401 (registers tfnas's layers for load_model)

    from tfnas.architecture import Architecture
    from tfnas.spaces import CellSpace

    project_dir, _ = trained
    record = read_record(project_dir)
    assert record["space_args"] == SCALED
    # The expectation, independently: the space built directly with the scaled
    # arguments and the search's best architecture.
    operations = json.loads(SEARCH_SPACE_ARGS[3].split("=", 1)[1])
    space = CellSpace((8, 8, 1), 10, num_cells=SCALED["num_cells"], num_blocks=1,
                      filters=SCALED["filters"], operations=operations)
    values = best_values(project_dir)
    assert Architecture(record["architecture"]).values == values
    expected = space.build(Architecture(values).to_hyperparameters()).count_params()
    smaller = CellSpace((8, 8, 1), 10, num_cells=3, num_blocks=1, filters=4,
                        operations=operations).build(
                            Architecture(values).to_hyperparameters()).count_params()
    assert record["params"] == expected > smaller
    trained_model = keras.saving.load_model(project_dir / "final" / "export" / "model.keras")
    assert trained_model.count_params() == expected  # augmentation adds no parameter


@pytest.mark.slow
def test_report_shows_the_final_training(trained, tmp_path, capsys):
    from tfnas import cli

    project_dir, _ = trained
    result = run("report", str(project_dir), "--plots", str(tmp_path / "plots"))
    assert result.returncode == 0, result.stderr
    assert "## Final training (completed): trial" in result.stdout
    assert "test (final model): accuracy=" in result.stdout
    # The JSON format in this process: one TensorFlow start-up less.
    assert cli.main(["report", str(project_dir), "--format", "json", "--plots", "none"]) == 0
    assert json.loads(capsys.readouterr().out)["final_training"]["status"] == "completed"


@pytest.mark.slow
def test_decision_changing_space_arg_is_refused(project_copy, capsys):
    from tfnas import cli

    # In this process (the refusal comes before any training or TensorFlow
    # work); `tfnas train` as a process is run by the tests above.
    code = cli.main(["train", str(project_copy), "--epochs", "1", "--space-arg",
                     "num_blocks=2", "--space-arg", "num_cells=4"])
    assert code == 2
    stderr = capsys.readouterr().err
    lines = [line for line in stderr.splitlines() if line.startswith("tfnas: error:")]
    assert len(lines) == 1 and stderr.strip() == lines[0], stderr
    assert "num_blocks=2" in lines[0] and "num_cells" not in lines[0].split("which")[0]
    assert "would change the architecture's decisions" in lines[0]
    assert "adds the decisions" in lines[0] and "normal/block_1" in lines[0]
    assert not (project_copy / "final").exists()  # refused before any training


def test_scale_up_refuses_what_changes_decisions_and_accepts_the_skeleton():
    from tfnas import scale_up
    from tfnas.architecture import Architecture
    from tfnas.spaces import CellSpace, ChainSpace

    cell = CellSpace((8, 8, 1), 10, num_cells=3, num_blocks=1, filters=4,
                     operations=("sep_conv_3x3", "max_pool_3x3"))
    values = {"normal/block_0/input_0": "c_k-1", "normal/block_0/input_1": "c_k-2",
              "normal/block_0/op_0": "sep_conv_3x3", "normal/block_0/op_1": "max_pool_3x3",
              "reduce/block_0/input_0": "c_k-2", "reduce/block_0/input_1": "c_k-1",
              "reduce/block_0/op_0": "max_pool_3x3", "reduce/block_0/op_1": "sep_conv_3x3"}
    scaled, model = scale_up.scaled_space(cell, values, {"num_cells": 5, "filters": 8})
    assert (scaled.num_cells, scaled.filters) == (5, 8)
    assert model.count_params() > cell.build(Architecture(values).to_hyperparameters()
                                             ).count_params()
    with pytest.raises(scale_up.DecisionChangeError, match=r"operations=\['sep_conv_3x3'\]"
                       r".*normal/block_0/op_1='max_pool_3x3' is not one of"):
        scale_up.scaled_space(cell, values, {"operations": ["sep_conv_3x3"]})
    with pytest.raises(ValueError, match="unknown `space_args` for space 'cell': `cells`"):
        scale_up.scaled_space(cell, values, {"cells": 8})
    with pytest.raises(ValueError, match="`num_classes` comes from the data"):
        scale_up.scaled_space(cell, values, {"num_classes": 3})

    chain = ChainSpace((8, 8, 1), 10, max_layers=3, filters=(8, 16), strides=(1, 2))
    chain_values = {"num_layers": 2, "layer_0/op": "conv3x3", "layer_0/filters": 16,
                    "layer_0/activation": "relu", "layer_0/stride": 1,
                    "layer_1/op": "maxpool3x3", "layer_1/filters": 8, "layer_1/stride": 2,
                    "layer_1/skip/0": True}
    with pytest.raises(scale_up.DecisionChangeError, match="max_layers=1.*num_layers=2"):
        scale_up.scaled_space(chain, chain_values, {"max_layers": 1})
    # More candidate values keep this architecture's decisions as they are.
    widened, _ = scale_up.scaled_space(chain, chain_values, {"filters": [8, 16, 32]})
    assert widened.filters == (8, 16, 32)


@pytest.mark.slow
def test_sigint_mid_epoch_resumes_from_the_last_finished_epoch(chain_copy):
    import keras

    args = ["train", str(chain_copy), "--epochs", "5", "--batch-size", "8",
            "--no-progress", "--formats", "keras"]
    process = subprocess.Popen(
        tfnas_command(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        # A test runner started in the background inherits SIGINT ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    record_file = chain_copy / "final" / "final_training.json"

    def epochs_done():
        assert process.poll() is None, process.communicate()[1][-3000:]
        try:
            return json.loads(record_file.read_text()).get("epochs_done", 0) >= 2
        except (OSError, ValueError):
            return False

    try:
        wait_for(epochs_done, "two finished epochs", timeout=240)
        time.sleep(0.3)  # into the third epoch (180 batches)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err[-3000:]
    assert "Finished epochs are saved" in err
    before = read_record(chain_copy)
    done = before["epochs_done"]
    assert before["status"] == "interrupted" and 2 <= done < 5
    assert [row["epoch"] for row in before["history"]] == list(range(1, done + 1))
    checkpoints = sorted(os.listdir(chain_copy / "final" / "checkpoints"))
    assert checkpoints == [f"epoch_{done:04d}.weights.h5"]  # older ones removed
    assert before["checkpoint"] == f"checkpoints/{checkpoints[0]}"
    steps = before["steps_per_epoch"]
    with h5py.File(chain_copy / "final" / before["checkpoint"]) as h5:
        # The optimizer's state is saved with the weights: its step counter says
        # how far the learning-rate schedule has gone.
        optimizer_vars = h5["optimizer"]["vars"]
        iterations = [int(np.asarray(optimizer_vars[k])) for k in optimizer_vars
                      if np.asarray(optimizer_vars[k]).shape == ()]
        assert done * steps in iterations
        assert "layers" in h5

    resumed = run(*args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    progress = resumed.stdout + resumed.stderr  # Keras's epoch lines
    assert f"Epoch {done + 1}/5" in progress and "Epoch 1/5" not in progress
    after = read_record(chain_copy)
    assert after["status"] == "completed" and after["epochs_done"] == 5
    assert after["history"][:done] == before["history"]  # finished epochs kept
    assert [row["epoch"] for row in after["history"]] == [1, 2, 3, 4, 5]
    # The schedule continued where it stopped: the learning rate logged at the
    # end of the first resumed epoch is the schedule's value at that step.
    settings = after["settings"]
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, steps * (5 - settings["warmup_epochs"]), warmup_target=settings["learning_rate"],
        warmup_steps=steps * settings["warmup_epochs"])
    assert after["history"][done]["learning_rate"] == pytest.approx(
        float(schedule((done + 1) * steps)), rel=1e-4)
    assert (chain_copy.parent.parent / "sentinel.txt").read_text() == "keep"


@pytest.mark.slow
def test_train_best_under_mirrored_strategy(chain_copy, mirrored, digits):
    import tensorflow as tf

    from tfnas import final_training

    with pytest.warns(UserWarning, match=(
            r"trained under default; this training runs under MirroredStrategy\. Each "
            r"replica sees a share of every batch")):
        tuner = final_training.open_tuner(str(chain_copy), distribution_strategy=mirrored)
    record = tuner.train_best(digits.train, validation_data=digits.validation,
                              test_data=digits.test, epochs=2, batch_size=32,
                              augment=["translate"], formats=["keras"], verbose=0)
    assert record["distribution"] == {"strategy": "MirroredStrategy", "replicas": 2}
    assert record["status"] == "completed" and record["epochs_done"] == 2
    assert np.isfinite(record["history"][-1]["loss"]) and "accuracy" in record["test"]
    saved = read_record(chain_copy)
    assert saved["distribution"]["replicas"] == 2
    assert isinstance(mirrored, tf.distribute.MirroredStrategy)


@pytest.mark.slow
def test_overwrite_deletes_only_the_final_training(chain_copy, digits):
    from tfnas import final_training

    tuner = final_training.open_tuner(str(chain_copy))
    options = dict(epochs=1, formats=["keras"], verbose=0)
    tuner.train_best(digits.train, validation_data=digits.validation, **options)
    own_file = chain_copy / "final" / "my_notes.txt"
    own_file.write_text("mine")
    with pytest.raises(ValueError, match=r"other settings \(epochs: 1 -> 2, "
                       r"warmup_epochs: 0 -> 1\).*--overwrite"):
        tuner.train_best(digits.train, validation_data=digits.validation,
                         **{**options, "epochs": 2})
    record = tuner.train_best(digits.train, validation_data=digits.validation,
                              **{**options, "epochs": 2, "overwrite": True})
    assert record["epochs_done"] == 2 and [r["epoch"] for r in record["history"]] == [1, 2]
    assert own_file.read_text() == "mine"
    assert (chain_copy / "trial_0" / "trial.json").exists()
    assert (chain_copy.parent.parent / "sentinel.txt").read_text() == "keep"


@pytest.mark.slow
def test_train_uses_the_dtype_policy_the_search_recorded(chain_copy, digits):
    import keras

    import tfnas.spaces  # noqa: F401 (registers tfnas's layers for load_model)
    from tfnas import final_training

    record_file = chain_copy / "tfnas_project.json"
    project = json.loads(record_file.read_text())
    assert project["training"] == {"dtype_policy": "float32", "distribution": "default"}
    project["training"]["dtype_policy"] = "mixed_bfloat16"  # as a mixed-precision search records
    record_file.write_text(json.dumps(project))

    tuner = final_training.open_tuner(str(chain_copy))
    record = tuner.train_best(digits.train, validation_data=digits.validation, epochs=1,
                              formats=["keras"], verbose=0)
    assert record["dtype_policy"] == "mixed_bfloat16"
    model = keras.saving.load_model(chain_copy / "final" / "export" / "model.keras")

    def leaves(layer):  # a nested Sequential's own policy is not saved: its layers' are
        for inner in getattr(layer, "layers", None) or [layer]:
            yield from (leaves(inner) if inner is not layer else [inner])

    policies = {leaf.dtype_policy.name for layer in model.layers[1:-1]  # no augmentation
                for leaf in leaves(layer)}
    assert policies == {"mixed_bfloat16"}
    assert model.layers[-1].dtype_policy.name == "float32"  # the head, as Keras advises
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored


def test_a_search_directory_must_hold_exactly_one_project(tmp_path):
    from tfnas import final_training

    directory = tmp_path / "sandbox" / "searches"
    (directory / "notes").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="holds no tfnas project"):
        final_training.find_project(str(directory))
    (directory / "a").mkdir()
    (directory / "a" / "tfnas_project.json").write_text("{}")
    assert final_training.find_project(str(directory)) == str(directory / "a")
    assert final_training.find_project(str(directory / "a")) == str(directory / "a")
    (directory / "b").mkdir()
    (directory / "b" / "tfnas_project.json").write_text("{}")
    with pytest.raises(ValueError, match=r"holds 2 projects: a, b\. Pass one"):
        final_training.find_project(str(directory))
