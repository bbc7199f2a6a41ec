"""The project record: what a project directory holds, for tools that read it.

`NASTuner` writes `tfnas_project.json` in its project directory when a search
begins: the space (name and arguments, when it is a built-in space), the
objective and its direction, and when the search first began. `tfnas report`
and `tfnas export` read a project directory through it, without the Python
objects that made it.
"""

import json
import os
import threading

import keras_tuner as kt

from tfnas import spaces

PROJECT_FILE = "tfnas_project.json"


def space_record(hypermodel):
    """`{"name", "config"}` of a built-in space; the name is None otherwise."""
    name = spaces.name_of(hypermodel)
    return {"name": name, "config": hypermodel.get_config() if name else None}


def write_atomically(path, record):
    """Writes `record` as JSON to `path` through a temporary file and a rename."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    # Unique per process and thread: a chief and its workers share directories.
    temporary = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
    with open(temporary, "w") as file:
        json.dump(record, file, indent=2, sort_keys=True)
        file.flush()
        os.fsync(file.fileno())  # the data is on disk before the rename makes it current
    os.replace(temporary, path)


def read(project_dir):
    """The project record of `project_dir`.

    Raises:
        FileNotFoundError: when `project_dir` is not a tfnas project.
        ValueError: when the record is not valid JSON.
    """
    path = os.path.join(project_dir, PROJECT_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{project_dir} is not a tfnas project directory: {PROJECT_FILE} is "
            "missing. Pass the folder that holds oracle.json and the trial_* "
            "folders (directory/project_name), written by tfnas 0.1 or later."
        )
    with open(path) as file:
        try:
            return json.load(file)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path} is not valid JSON ({error}).") from error


def update(tuner, started_at):
    """Writes `tuner`'s project record, keeping the first `started_at`.

    Returns:
        The record written.
    """
    path = os.path.join(tuner.project_dir, PROJECT_FILE)
    previous = read(tuner.project_dir) if os.path.exists(path) else {}
    objective = tuner.oracle.objective
    record = {
        "space": space_record(tuner.hypermodel),
        "objective": {"name": objective.name, "direction": objective.direction},
        "started_at": previous.get("started_at", started_at),
    }
    write_atomically(path, record)
    return record


def load_trials(project_dir):
    """The trials recorded in `project_dir`: finished ones in end order, then
    the others in start order."""
    trials = []
    for name in sorted(os.listdir(project_dir)):
        path = os.path.join(project_dir, name, "trial.json")
        if name.startswith("trial_") and os.path.exists(path):
            trials.append(kt.engine.trial.Trial.load(path))
    oracle_file = os.path.join(project_dir, "oracle.json")
    if os.path.exists(oracle_file):
        with open(oracle_file) as file:
            state = json.load(file)
        order = (state.get("end_order") or []) + (state.get("start_order") or [])
        rank = {}
        for trial_id in order:
            rank.setdefault(trial_id, len(rank))
        trials.sort(key=lambda t: rank.get(t.trial_id, len(rank)))
    return trials


def build_space(record):
    """The built-in space a project record names."""
    space = record.get("space") or {}
    if not space.get("name"):
        raise ValueError(
            "The project's space is not a built-in tfnas space, so tfnas cannot "
            "rebuild it from the directory: use your HyperModel in Python "
            "(e.g. `NASTuner(space, ...)` on the same directory)."
        )
    return spaces.SPACES[space["name"]](**space["config"])
