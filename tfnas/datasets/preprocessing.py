"""Preprocessing that travels with the model, and the data record of a project.

Design: a search trains candidates on already-preprocessed tensors (the
preprocessing model runs once over each split, or in the tf.data pipeline for
images), so no candidate pays for string lookups or re-normalization in every
epoch, and trial checkpoints hold the candidate's weights only. The
preprocessing model (Keras layers adapted on the training split) is saved in
the project folder; every export puts it in front of the trained candidate,
so an exported SavedModel, `.keras` file or TFLite model takes raw inputs:
raw pixels, raw table columns, raw strings.

Project files:
    data.json: the data source, seed, split sizes, classes and features.
    preprocessing.keras: the preprocessing model (absent when the inputs
        need none, e.g. digits).
"""

import os

import keras

from tfnas import atomic, errors

DATA_FILE = "data.json"
PREPROCESSING_FILE = "preprocessing.keras"


def save(project_dir, record, preprocessing):
    """Writes the data record and the preprocessing model into `project_dir`."""
    os.makedirs(project_dir, exist_ok=True)
    path = os.path.join(project_dir, PREPROCESSING_FILE)
    if preprocessing is not None:
        scratch = os.path.join(project_dir, "tmp-" + PREPROCESSING_FILE)
        preprocessing.save(scratch)
        os.replace(scratch, path)
    elif os.path.exists(path):  # a project started over on data without preprocessing
        os.remove(path)
    if record is not None:
        atomic.write_atomically(os.path.join(project_dir, DATA_FILE), record)


def read_record(project_dir):
    """The project's data record, or None when the search did not write one."""
    path = os.path.join(project_dir, DATA_FILE)
    if not os.path.exists(path):
        return None
    return errors.read_json(path, "It records the search's data; run the search again "
                                  "to rewrite it.")


def load(project_dir):
    """The project's preprocessing model, or None when it has none.

    Raises:
        tfnas.errors.CorruptFileError: when the file does not load.
    """
    path = os.path.join(project_dir, PREPROCESSING_FILE)
    if not os.path.exists(path):
        return None
    try:
        return keras.saving.load_model(path)
    except (OSError, ValueError) as error:
        raise errors.CorruptFileError(
            path, error, "Run the search again (same command) to rewrite it.") from error


def with_preprocessing(preprocessing, model):
    """The model that takes raw inputs: `model(preprocessing(raw))`.

    Args:
        preprocessing: A Keras model from raw inputs (a dict of named
            inputs, or one tensor) to the features `model` takes; or None.
        model: The trained candidate.

    Returns:
        `model` itself when `preprocessing` is None, else a functional model
        whose inputs are the preprocessing model's.
    """
    if preprocessing is None:
        return model
    return keras.Model(preprocessing.input, model(preprocessing.output),
                       name=f"{model.name}_on_raw_inputs")


def describe(record):
    """One line about the data of a search, for `tfnas report`."""
    sizes = record.get("split_sizes", {})
    classes = record.get("class_names") or []
    text = (f"Data: {record.get('source')} (seed {record.get('seed')}): "
            f"{sizes.get('train')} train / {sizes.get('validation')} validation / "
            f"{sizes.get('test')} test examples (the search never reads test), "
            f"{len(classes)} classes")
    features = record.get("features")
    if features:
        kinds = ", ".join(f"{f['name']} ({f['kind']})" for f in features)
        text += f"; features: {kinds}"
    return text
