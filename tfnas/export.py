"""Exporting the best candidate: SavedModel, `.keras`, TFLite, architecture JSON.

`architecture.json` holds the architecture, the space's name and arguments,
the objective and the score; `rebuild` turns it back into the untrained
model. Export works from a `NASTuner` (`export_best`) or from a project
directory (`export_project`, behind `tfnas export DIR OUT`).
"""

import json
import os
import tempfile

import tensorflow as tf

from tfnas import project
from tfnas.architecture import Architecture

FORMATS = ("saved_model", "keras", "tflite")
DEFAULT_FORMATS = ("saved_model", "keras")
ARCHITECTURE_FILE = "architecture.json"


def architecture_record(space_record, objective, trial):
    """The JSON-serializable record of `trial`'s architecture.

    Args:
        space_record: `{"name", "config"}` of the space (see `tfnas.project`).
        objective: The objective's name.
        trial: A completed `keras_tuner` trial.
    """
    architecture = Architecture.from_trial(trial)
    return {
        "architecture": architecture.values,
        "hash": architecture.hash,
        "space": space_record,
        "objective": objective,
        "score": trial.score,
        "trial_id": trial.trial_id,
    }


def _check_formats(formats):
    formats = list(formats)
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ValueError(
            f"Received an invalid value for `formats`, expected a non-empty subset "
            f"of {FORMATS}. Received: formats={formats}"
        )
    return formats


def export_model(model, record, path, formats=DEFAULT_FORMATS):
    """Writes `model` in `formats` and its architecture record under `path`.

    Args:
        model: The trained Keras model.
        record: Its `architecture_record`.
        path: Output directory (created if missing).
        formats: Any of "saved_model" (Keras 3 `model.export`, with a
            `serving_default` signature), "keras" (a `.keras` file) and
            "tflite" (a TFLite flatbuffer converted from the SavedModel).

    Returns:
        A dict from "architecture" and each format to the written path.
    """
    formats = _check_formats(formats)
    os.makedirs(path, exist_ok=True)
    written = {}
    with tempfile.TemporaryDirectory() as scratch:
        if "saved_model" in formats or "tflite" in formats:
            saved_model = (os.path.join(path, "saved_model") if "saved_model" in formats
                           else os.path.join(scratch, "saved_model"))
            model.export(saved_model, format="tf_saved_model", verbose=False)
            if "saved_model" in formats:
                written["saved_model"] = saved_model
        if "tflite" in formats:
            converter = tf.lite.TFLiteConverter.from_saved_model(saved_model)
            written["tflite"] = os.path.join(path, "model.tflite")
            with open(written["tflite"], "wb") as file:
                file.write(converter.convert())
    if "keras" in formats:
        written["keras"] = os.path.join(path, "model.keras")
        model.save(written["keras"])
    written["architecture"] = os.path.join(path, ARCHITECTURE_FILE)
    project.write_atomically(written["architecture"], record)
    return written


def _no_completed_trial(project_dir):
    return ValueError(f"The project {project_dir} has no completed trial to export.")


def export_best(tuner, path, formats=DEFAULT_FORMATS):
    """Exports the best completed trial of a `NASTuner`; see `export_model`."""
    formats = _check_formats(formats)
    best = [t for t in tuner.oracle.get_best_trials(1) if t.status == "COMPLETED"]
    if not best:
        raise _no_completed_trial(tuner.project_dir)
    record = architecture_record(project.space_record(tuner.hypermodel),
                                 tuner.oracle.objective.name, best[0])
    return export_model(tuner.load_model(best[0]), record, path, formats)


def export_project(project_dir, path, formats=DEFAULT_FORMATS):
    """Exports the best completed trial of a project directory.

    The project's space must be a built-in space (its name and arguments are
    in the project record); the model is rebuilt from it and given the
    trial's best-epoch weights.
    """
    formats = _check_formats(formats)
    record = project.read(project_dir)
    space = project.build_space(record)
    objective = record["objective"]
    completed = [t for t in project.load_trials(project_dir) if t.status == "COMPLETED"]
    if not completed:
        raise _no_completed_trial(project_dir)
    best = sorted(completed, key=lambda t: t.score,
                  reverse=objective["direction"] == "max")[0]
    model = space.build(Architecture.from_trial(best).to_hyperparameters())
    checkpoint = os.path.join(project_dir, f"trial_{best.trial_id}",
                              "checkpoint.weights.h5")
    if not os.path.exists(checkpoint):
        raise FileNotFoundError(
            f"The weights of the best trial {best.trial_id} are missing: {checkpoint}")
    model.load_weights(checkpoint)
    return export_model(
        model, architecture_record(record["space"], objective["name"], best), path, formats)


def rebuild(architecture_file):
    """Builds the untrained model described by an `architecture.json`."""
    with open(architecture_file) as file:
        record = json.load(file)
    try:
        space = project.build_space(record)
    except ValueError as error:
        raise ValueError(
            f"{architecture_file} names no built-in space, so tfnas cannot "
            "rebuild it: build it with your own HyperModel and "
            "`Architecture(record['architecture']).to_hyperparameters()`."
        ) from error
    return space.build(Architecture(record["architecture"]).to_hyperparameters())
