"""The project record: what a project directory holds, for tools that read it.

`NASTuner` writes `tfnas_project.json` in its project directory when a search
begins: the space (name and arguments, when it is a built-in space), the
objective and its direction, and when the search first began. `tfnas report`
and `tfnas export` read a project directory through it, without the Python
objects that made it.
"""

import os

import keras_tuner as kt

from tfnas import errors, filenames, spaces
# Re-exported: callers used to find these here.
from tfnas.atomic import (  # noqa: F401
    DiskFullError, fatal_when_disk_full, is_disk_full, raise_if_disk_full, write_atomically,
    write_bytes_atomically)

PROJECT_FILE = "tfnas_project.json"
TRIAL_FILE = "trial.json"


def space_record(hypermodel):
    """`{"name", "config"}` of a built-in space; the name is None otherwise."""
    name = spaces.name_of(hypermodel)
    return {"name": name, "config": hypermodel.get_config() if name else None}


def read(project_dir):
    """The project record of `project_dir`, checked.

    Raises:
        FileNotFoundError: when `project_dir` is not a tfnas project.
        tfnas.errors.CorruptFileError: when the record is not valid JSON or
            lacks the objective's name and direction.
    """
    path = os.path.join(project_dir, PROJECT_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{project_dir} is not a tfnas project directory: {PROJECT_FILE} is "
            "missing. Pass the folder that holds oracle.json and the trial_* "
            "folders (directory/project_name), written by tfnas 0.1 or later."
        )
    way_out = ("Restore it from a backup, or resume the search (the same `tfnas search` "
               "command, or a NASTuner on this directory), which rewrites it.")
    record = errors.read_json(path, way_out)
    objective = record.get("objective")
    if not (isinstance(objective, dict) and isinstance(objective.get("name"), str)
            and objective.get("direction") in ("min", "max")):
        raise errors.CorruptFileError(
            path, "expected \"objective\": {\"name\": ..., \"direction\": \"min\" or "
            f"\"max\"}}. Received: objective={objective!r}", way_out)
    return record


def resolve_project_dir(project_dir, directory):
    """The project folder named by DIR or by a search's `--directory`.

    `directory` (or a `project_dir` that is not a project itself) may be the
    folder holding project folders, when it holds exactly one.

    Raises:
        ValueError: when both or neither are given, or the folder holds no
            project or several (the error lists them).
    """
    if (project_dir is None) == (directory is None):
        raise ValueError("expected a project directory DIR or --directory (the folder "
                         "holding one search's project), not both or neither. Received: "
                         f"DIR={project_dir!r}, --directory={directory!r}")
    folder = project_dir if directory is None else directory
    if os.path.exists(os.path.join(folder, PROJECT_FILE)) or not os.path.isdir(folder):
        return folder  # a project (or a missing folder, which `read` reports)
    found = sorted(name for name in os.listdir(folder)
                   if os.path.exists(os.path.join(folder, name, PROJECT_FILE)))
    if len(found) == 1:
        return os.path.join(folder, found[0])
    if not found:
        raise FileNotFoundError(
            f"{folder} holds no tfnas project (no folder with {PROJECT_FILE}); pass a "
            "project directory or the --directory of a search.")
    raise ValueError(f"{folder} holds {len(found)} projects: {', '.join(found)}. Pass one "
                     f"of them, e.g. {os.path.join(folder, found[0])}.")


def update(tuner, started_at):
    """Writes `tuner`'s project record, keeping the first `started_at`.

    Returns:
        The record written.
    """
    path = os.path.join(tuner.project_dir, PROJECT_FILE)
    previous = {}
    if os.path.exists(path):
        try:
            previous = read(tuner.project_dir)
        except errors.CorruptFileError as error:  # rewritten below
            errors.warn(f"rewriting {path}, which was damaged: {error}")
    objective = tuner.oracle.objective
    record = {
        "space": space_record(tuner.hypermodel),
        "objective": {"name": objective.name, "direction": objective.direction},
        "started_at": previous.get("started_at", started_at),
        # The options candidates train under, which the final training reuses.
        "training": {"dtype_policy": tuner.dtype_policy.name,
                     "distribution": type(tuner.distribution_strategy).__name__
                     if tuner.distribution_strategy is not None else "default"},
    }
    write_atomically(path, record)
    return record


def _load_trial(project_dir, folder):
    """The trial in `project_dir/folder/trial.json`, or None (with a warning)
    when that file is damaged or its trial id is not the folder's."""
    path = os.path.join(project_dir, folder, TRIAL_FILE)
    try:
        trial = kt.engine.trial.Trial.load(path)
    except (ValueError, KeyError, TypeError, AttributeError, IndexError, OSError) as error:
        errors.warn(f"skipping {path}: it is corrupt or unreadable "
                    f"({type(error).__name__}: {error}).")
        return None
    if not filenames.is_trial_id(trial.trial_id) or folder != f"trial_{trial.trial_id}":
        errors.warn(f"skipping {path}: its trial_id {trial.trial_id!r} does not match "
                    f"its folder {folder!r}.")
        return None
    return trial


def load_trials(project_dir):
    """The trials recorded in `project_dir`: finished ones in end order, then
    the others in start order.

    A damaged `trial.json`, or one whose trial id is not its folder's, is
    skipped with a warning that names it (`tfnas.errors.TfnasWarning`).
    """
    trials = []
    for name in sorted(os.listdir(project_dir)):
        if name.startswith("trial_") and os.path.exists(
                os.path.join(project_dir, name, TRIAL_FILE)):
            trial = _load_trial(project_dir, name)
            if trial is not None:
                trials.append(trial)
    oracle_file = os.path.join(project_dir, "oracle.json")
    state = {}
    if os.path.exists(oracle_file):
        try:
            state = errors.read_json(oracle_file, "")
        except errors.CorruptFileError as error:
            errors.warn(f"{error}Trials are listed in folder order.")
    order = [*(state.get("end_order") or []), *(state.get("start_order") or [])]
    rank = {}
    for trial_id in order:
        rank.setdefault(trial_id, len(rank))
    trials.sort(key=lambda t: rank.get(t.trial_id, len(rank)))
    return trials


def build_space(record, source=None):
    """The built-in space a project record names.

    Args:
        record: A project record, or an `architecture.json` record.
        source: The file the record comes from, named in errors.

    Raises:
        tfnas.errors.InvalidRecordError: when the record names no built-in space, an
            unknown one, or arguments the space does not take.
    """
    space = record.get("space") or {}
    where = f"{source}: " if source else ""
    if not isinstance(space, dict) or not space.get("name"):
        raise errors.InvalidRecordError(
            f"{where}the space is not a built-in tfnas space, so tfnas cannot "
            "rebuild it from the record: use your HyperModel in Python "
            "(e.g. `NASTuner(space, ...)` on the same directory)."
        )
    name, config = space["name"], space.get("config")
    if name not in spaces.SPACES:
        raise errors.InvalidRecordError(
            f"{where}unknown space {name!r}; this tfnas knows {sorted(spaces.SPACES)}. "
            "Use the tfnas version that wrote the record, or your own HyperModel.")
    if not isinstance(config, dict):
        raise errors.InvalidRecordError(
            f"{where}the arguments of space {name!r} should be a JSON object. "
            f"Received: config={config!r}")
    try:
        return spaces.SPACES[name](**config)
    except (TypeError, ValueError) as error:
        raise errors.InvalidRecordError(
            f"{where}space {name!r} cannot be built with the recorded arguments "
            f"({error}). Use the tfnas version that wrote the record.") from error
