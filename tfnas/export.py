"""Exporting the best candidate: SavedModel, `.keras` file, architecture JSON.

`architecture.json` holds the architecture, the space's name and arguments,
the objective and the score; `rebuild` turns it back into the untrained
model.
"""

import json
import os

from tfnas import spaces
from tfnas.architecture import Architecture

FORMATS = ("saved_model", "keras")
ARCHITECTURE_FILE = "architecture.json"


def architecture_record(tuner, trial):
    """The JSON-serializable record of `trial`'s architecture."""
    space_name = spaces.name_of(tuner.hypermodel)
    architecture = Architecture.from_trial(trial)
    return {
        "architecture": architecture.values,
        "hash": architecture.hash,
        "space": {
            "name": space_name,
            "config": tuner.hypermodel.get_config() if space_name else None,
        },
        "objective": tuner.oracle.objective.name,
        "score": trial.score,
        "trial_id": trial.trial_id,
    }


def export_best(tuner, path, formats=FORMATS):
    """Writes the best completed trial's model and architecture under `path`.

    Args:
        tuner: A `tfnas.NASTuner` after `search`.
        path: Output directory (created if missing).
        formats: Any of "saved_model" (Keras 3 `model.export`, with a
            serving signature) and "keras" (a `.keras` file).

    Returns:
        A dict from "architecture" and each format to the written path.
    """
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ValueError(
            f"Received an invalid value for `formats`, expected a subset of "
            f"{FORMATS}. Received: formats={list(formats)}"
        )
    best = [t for t in tuner.oracle.get_best_trials(1) if t.status == "COMPLETED"]
    if not best:
        raise ValueError(
            f"The project {tuner.project_dir} has no completed trial to export."
        )
    trial = best[0]
    model = tuner.load_model(trial)
    os.makedirs(path, exist_ok=True)
    written = {}
    if "saved_model" in formats:
        written["saved_model"] = os.path.join(path, "saved_model")
        model.export(written["saved_model"], format="tf_saved_model", verbose=False)
    if "keras" in formats:
        written["keras"] = os.path.join(path, "model.keras")
        model.save(written["keras"])
    written["architecture"] = os.path.join(path, ARCHITECTURE_FILE)
    with open(written["architecture"], "w") as file:
        json.dump(architecture_record(tuner, trial), file, indent=2, sort_keys=True)
    return written


def rebuild(architecture_file):
    """Builds the untrained model described by an `architecture.json`."""
    with open(architecture_file) as file:
        record = json.load(file)
    space = record.get("space") or {}
    if not space.get("name"):
        raise ValueError(
            f"{architecture_file} names no built-in space, so tfnas cannot "
            "rebuild it: build it with your own HyperModel and "
            "`Architecture(record['architecture']).to_hyperparameters()`."
        )
    hypermodel = spaces.SPACES[space["name"]](**space["config"])
    return hypermodel.build(Architecture(record["architecture"]).to_hyperparameters())
