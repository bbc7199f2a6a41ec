"""Exporting the best candidate: SavedModel, `.keras`, TFLite, architecture JSON.

`architecture.json` holds the architecture, the space's name and arguments,
the objective and the score; `rebuild` turns it back into the untrained
model. Export works from a `NASTuner` (`export_best`) or from a project
directory (`export_project`, behind `tfnas export DIR OUT`).

When the project holds a preprocessing model (`preprocessing.keras`, written
for `images:`, `csv:` and `npz:` data, see `tfnas.datasets.preprocessing`),
every format is of the model behind it: it takes raw inputs.
"""

import os
import tempfile
import warnings

import tensorflow as tf

from tfnas import atomic, checkpoints, errors, project, trials
from tfnas.architecture import Architecture
from tfnas.datasets import preprocessing as data_preprocessing

FORMATS = ("saved_model", "keras", "tflite")
DEFAULT_FORMATS = ("saved_model", "keras")
ARCHITECTURE_FILE = "architecture.json"
CHECKPOINT_FILE = "checkpoint.weights.h5"  # KerasTuner's name for a trial's best epoch


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


def project_preprocessing(project_dir):
    """The preprocessing model of a project folder, or None (see `export_model`)."""
    return data_preprocessing.load(project_dir)


def _tflite(saved_model):
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model)
    try:
        return converter.convert()
    except Exception:  # noqa: BLE001 - the converter raises many types
        # String lookups and text vectorization need TensorFlow's own ops.
        converter = tf.lite.TFLiteConverter.from_saved_model(saved_model)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS,
                                               tf.lite.OpsSet.SELECT_TF_OPS]
        return converter.convert()


def export_model(model, record, path, formats=DEFAULT_FORMATS, preprocessing=None):
    """Writes `model` in `formats` and its architecture record under `path`.

    Args:
        model: The trained Keras model.
        record: Its `architecture_record`.
        path: Output directory (created if missing).
        formats: Any of "saved_model" (Keras 3 `model.export`, with a
            `serving_default` signature), "keras" (a `.keras` file) and
            "tflite" (a TFLite flatbuffer converted from the SavedModel).
        preprocessing: A Keras model from raw inputs to the features `model`
            takes (`project_preprocessing(project_dir)`), put in front of
            `model` in every format; None to export `model` alone.

    Returns:
        A dict from "architecture" and each format to the written path.
    """
    formats = _check_formats(formats)
    # A model loaded from a checkpoint has an unbuilt optimizer; the .keras
    # file (of it alone or inside the model on raw inputs) holds it built.
    checkpoints.build_optimizer(model)
    model = data_preprocessing.with_preprocessing(preprocessing, model)
    if preprocessing is not None:
        record = dict(record, inputs=_describe_inputs(preprocessing))
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
            flatbuffer = _tflite(saved_model)
            written["tflite"] = os.path.join(path, "model.tflite")
            with open(written["tflite"], "wb") as file:
                file.write(flatbuffer)
    if "keras" in formats:
        written["keras"] = os.path.join(path, "model.keras")
        model.save(written["keras"])
    written["architecture"] = os.path.join(path, ARCHITECTURE_FILE)
    atomic.write_atomically(written["architecture"], record)
    return written


def _describe_inputs(preprocessing):
    """The raw inputs the exported model takes: name, dtype and shape of each."""
    inputs = preprocessing.input
    named = inputs.items() if isinstance(inputs, dict) else [(inputs.name, inputs)]
    return [{"name": name, "dtype": str(tensor.dtype), "shape": list(tensor.shape)}
            for name, tensor in named]


def _no_completed_trial(project_dir):
    return ValueError(f"The project {project_dir} has no completed trial to export.")


def export_best(tuner, path, formats=DEFAULT_FORMATS, model=None):
    """Exports the best completed trial of a `NASTuner`; see `export_model`.
    `model`: that trial's model if already loaded (`tuner.load_model`), so
    that it is not built and loaded again."""
    formats = _check_formats(formats)
    best = [t for t in tuner.oracle.get_best_trials(1) if t.status == trials.COMPLETED]
    if not best:
        raise _no_completed_trial(tuner.project_dir)
    record = architecture_record(project.space_record(tuner.hypermodel),
                                 tuner.oracle.objective.name, best[0])
    model = tuner.load_model(best[0]) if model is None else model
    return export_model(model, record, path, formats,
                        preprocessing=project_preprocessing(tuner.project_dir))


def _load_weights(model, checkpoint):
    """Loads `checkpoint` into `model`; returns None, or why it could not."""
    if not os.path.exists(checkpoint):
        return f"{checkpoint} is missing"
    try:
        with warnings.catch_warnings():  # only the weights matter, not optimizer slots
            warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
            model.load_weights(checkpoint)
    except (OSError, ValueError, KeyError) as error:
        return f"{checkpoint} does not load ({type(error).__name__}: {error})"
    return None


def export_project(project_dir, path, formats=DEFAULT_FORMATS):
    """Exports the best completed trial of a project directory.

    The project's space must be a built-in space (its name and arguments are
    in the project record); the model is rebuilt from it and given the
    trial's best-epoch weights. A trial whose `trial.json` is damaged is
    skipped; when the best trial's checkpoint is missing or does not load,
    the next-best trial whose checkpoint loads is exported, with a warning
    (`tfnas.errors.TfnasWarning`) that says so.
    """
    formats = _check_formats(formats)
    record = project.read(project_dir)
    space = project.build_space(record, source=os.path.join(project_dir, project.PROJECT_FILE))
    objective = record["objective"]
    completed = [t for t in project.load_trials(project_dir) if trials.is_completed(t)]
    if not completed:
        raise _no_completed_trial(project_dir)
    ranked = trials.ranked(completed, objective["direction"])
    problems = []
    for best in ranked:
        model = space.build(Architecture.from_trial(best).to_hyperparameters())
        checkpoint = os.path.join(project_dir, f"trial_{best.trial_id}", CHECKPOINT_FILE)
        problem = _load_weights(model, checkpoint)
        if problem is None:
            break
        problems.append(f"trial {best.trial_id}: {problem}")
    else:
        raise errors.TfnasError(
            f"no completed trial of {project_dir} has weights that load: "
            f"{'; '.join(problems)}. Run the search again to retrain them.")
    if problems:
        errors.warn(f"exporting trial {best.trial_id} ({objective['name']}="
                    f"{best.score:.4f}), the best trial whose weights load, instead of "
                    f"the best one: {'; '.join(problems)}.")
    return export_model(
        model, architecture_record(record["space"], objective["name"], best), path, formats,
        preprocessing=project_preprocessing(project_dir))


def rebuild(architecture_file):
    """Builds the untrained model described by an `architecture.json`.

    Args:
        architecture_file: The path of an `architecture.json`, as written by
            `tfnas export` or `NASTuner.export_best`.

    Raises:
        TypeError: when `architecture_file` is not a path.
        tfnas.errors.TfnasError: when the file is a folder, is damaged,
            holds no architecture, or names a space tfnas cannot build.
    """
    if not isinstance(architecture_file, (str, os.PathLike)):
        raise TypeError(
            "Received an invalid value for `architecture_file`, expected the path "
            f"of an {ARCHITECTURE_FILE}. Received: {architecture_file!r}")
    architecture_file = os.fspath(architecture_file)
    if os.path.isdir(architecture_file):
        raise errors.TfnasError(
            f"Received a folder, {architecture_file}: pass the {ARCHITECTURE_FILE} "
            f"inside an export (e.g. {os.path.join(architecture_file, ARCHITECTURE_FILE)}).")
    way_out = f"Export the project again (`tfnas export`) to rewrite {ARCHITECTURE_FILE}."
    record = errors.read_json(architecture_file, way_out)
    if not isinstance(record.get("architecture"), dict):
        raise errors.InvalidRecordError(
            f"{architecture_file} holds no \"architecture\" object: pass the "
            f"{ARCHITECTURE_FILE} that `tfnas export` writes (not a project's "
            f"{project.PROJECT_FILE}).")
    if not (record.get("space") or {}).get("name"):
        raise errors.InvalidRecordError(
            f"{architecture_file} names no built-in space, so tfnas cannot "
            "rebuild it: build it with your own HyperModel and "
            "`Architecture(record['architecture']).to_hyperparameters()`.")
    space = project.build_space(record, source=architecture_file)
    return space.build(Architecture(record["architecture"]).to_hyperparameters())
