"""Failures explained: root causes, objectives checked before training, one-line errors."""

import os
import re

import keras
import keras_tuner as kt
import pytest
import tensorflow as tf

import tfnas
from tfnas import errors, objectives, report
from tfnas.spaces import ChainSpace

LABEL_CAUSE = re.compile(r"InvalidArgumentError: Received a label value of 1\d which is "
                         r"outside the valid range of \[0, 10\)")


def small_space():
    return ChainSpace((8, 8, 1), 10, max_layers=1, filters=(8,), operations=("conv3x3",))


def shifted_labels(dataset):
    """Digits whose labels are 10..19, outside the model's 10 classes."""
    return dataset.map(lambda x, y: (x, y + 10))


class CountTraining(keras.callbacks.Callback):
    started = 0

    def on_train_begin(self, logs=None):
        CountTraining.started += 1


def read_text_summary(run_dir, tag):
    from tensorboard.backend.event_processing import event_accumulator

    run = event_accumulator.EventAccumulator(
        str(run_dir), size_guidance={event_accumulator.TENSORS: 0})
    run.Reload()
    return [tf.make_ndarray(e.tensor_proto).item().decode() for e in run.Tensors(tag)]


@pytest.mark.slow
def test_out_of_range_labels_show_the_root_cause_everywhere(digits, tmp_path, capsys):
    tuner = tfnas.NASTuner(small_space(), oracle="random", max_trials=1, seed=0,
                           directory=tmp_path / "projects" / "nested", project_name="p",
                           max_consecutive_failed_trials=2, measure_latency=False,
                           count_flops=False)
    tuner.search(shifted_labels(digits.train), epochs=1, verbose=0,
                 validation_data=shifted_labels(digits.validation))
    (trial,) = tuner.oracle.trials.values()
    assert trial.status == "FAILED"
    assert "{{node" in trial.message.strip().splitlines()[-1]  # what used to be shown

    line = next(line for line in capsys.readouterr().out.splitlines()
                if line.startswith("[trial"))
    assert LABEL_CAUSE.search(line), line
    assert "node" not in line.split("|")[0]
    for source in (tuner, tuner.project_dir):  # the report, live and from disk
        (record,) = report.trial_records(source)
        assert LABEL_CAUSE.search(record["reason"]), record["reason"]
    (shown,) = read_text_summary(os.path.join(tuner.log_dir, trial.trial_id),
                                 "failure_reason")
    assert LABEL_CAUSE.search(shown), shown


def test_root_cause_of_messages_and_tracebacks():
    traceback_text = (
        "Traceback (most recent call last):\n  File \"a.py\", line 3, in f\n    g()\n"
        "tensorflow.python.framework.errors_impl.InvalidArgumentError: Graph execution "
        "error:\n\nDetected at node loss/Sparse defined at (most recent call last):\n"
        "  File \"b.py\", line 9, in fit\n\nReceived a label value of 19 which is outside "
        "the valid range of [0, 10).  Label values: 19 3\n\t [[{{node loss/Sparse}}]] "
        "[Op:__inference_multi_step_on_iterator_665]\n")
    assert errors.root_cause(traceback_text) == (
        "InvalidArgumentError: Received a label value of 19 which is outside the valid "
        "range of [0, 10).  Label values: 19 3")
    assert errors.root_cause(
        "Traceback (most recent call last):\n  File \"x\"\n"
        "tfnas.tuner.CandidateFailed: building raised ValueError: no\n") == (
        "CandidateFailed: building raised ValueError: no")
    keras_layer_error = (
        "ValueError: Exception encountered when calling Reshape.call().\n\n\x1b[1mThe "
        "total size of the tensor must be unchanged.\x1b[0m\n\nArguments received by "
        "Reshape.call():\n  \u2022 args=('<KerasTensor shape=(None, 3)>',)\n")
    assert errors.root_cause(keras_layer_error) == (
        "ValueError: The total size of the tensor must be unchanged.")
    assert errors.root_cause("ValueError: bad input\nReceived: x=3\n") == (
        "ValueError: Received: x=3")
    assert errors.root_cause(None) == "unknown reason"
    assert errors.root_cause("plain words") == "plain words"
    assert len(errors.root_cause("ValueError: " + "x" * 5000)) == errors.MAX_REASON_LENGTH


@pytest.mark.slow
def test_consecutive_failures_stop_names_the_cause_and_the_way_out(digits, tmp_path):
    tuner = tfnas.NASTuner(small_space(), oracle="random", max_trials=5, seed=0,
                           directory=tmp_path / "projects", project_name="p",
                           max_consecutive_failed_trials=1, progress=False,
                           measure_latency=False, count_flops=False)
    with pytest.raises(errors.SearchStopped) as caught:
        tuner.search(shifted_labels(digits.train), epochs=1, verbose=0,
                     validation_data=shifted_labels(digits.validation))
    message = str(caught.value)
    assert isinstance(caught.value, RuntimeError)  # KerasTuner's type, still caught
    assert "1 failed trials in a row" in message
    assert LABEL_CAUSE.search(message) and "run the same search again" in message
    assert "\n" not in message


@pytest.mark.slow
def test_objective_never_logged_is_refused_before_training(digits, tmp_path):
    CountTraining.started = 0
    tuner = tfnas.NASTuner(small_space(), oracle="random", objective="val_auc",
                           max_trials=2, directory=tmp_path / "projects",
                           project_name="p", progress=False)
    with pytest.raises(kt.errors.FatalValueError, match="'val_auc'") as caught:
        tuner.search(digits.train, validation_data=digits.validation, epochs=1,
                     verbose=0, callbacks=[CountTraining()])
    assert CountTraining.started == 0, "the objective must be checked before fit"
    assert "'val_accuracy'" in str(caught.value)  # what it could have been


def test_compiled_metric_names():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, "sigmoid")])
    assert objectives.compiled_metric_names(model, validation=True) is None  # not compiled

    def hits(y_true, y_pred):
        return y_pred

    model.compile("adam", "binary_crossentropy",
                  metrics=["accuracy", keras.metrics.AUC(name="roc"), hits],
                  weighted_metrics=["mae"])
    assert objectives.compiled_metric_names(model, validation=False) == {
        "loss", "accuracy", "roc", "hits", "mae"}
    assert "val_roc" in objectives.compiled_metric_names(model, validation=True)
    objectives.check_logged(kt.Objective("val_roc", "max"), model, validation=True)
    with pytest.raises(ValueError, match="'val_roc'"):
        objectives.check_logged(kt.Objective("val_roc", "max"), model, validation=False)


class ScoredByFit(kt.HyperModel):
    """A user's HyperModel whose `fit` returns its own score, never logged by Keras."""

    def build(self, hp):
        return small_space().build(hp)

    def fit(self, hp, model, *args, **kwargs):
        model.fit(*args, **kwargs)
        return {"custom_score": 0.5}


@pytest.mark.slow
def test_a_users_fit_that_returns_its_own_metric_still_works(digits, tmp_path):
    tuner = tfnas.NASTuner(ScoredByFit(), oracle="random",
                           objective=kt.Objective("custom_score", "max"),
                           max_trials=1, directory=tmp_path / "projects",
                           project_name="p", progress=False)
    tuner.search(digits.train, validation_data=digits.validation, epochs=1, verbose=0)
    (trial,) = tuner.oracle.trials.values()
    assert trial.status == "COMPLETED" and trial.score == 0.5


@pytest.mark.slow
def test_cli_refuses_an_objective_never_logged_before_training(tmp_path, capsys):
    from tfnas import cli

    projects = tmp_path / "sandbox" / "projects"
    code = cli.main(["search", "--space", "mlp", "--strategy", "random", "--max-trials", "2",
                     "--epochs", "1", "--objective", "val_auc", "--directory", str(projects),
                     "--project-name", "p", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("tfnas: error: ") == 1, err
    assert "objective that training never logs: 'val_auc'" in err and "--objective" in err
    trained = [folder for folder, _, _ in os.walk(projects) if "execution0" in folder]
    assert not trained, "no candidate may start training"
