"""Where a project lives, what `overwrite` may delete, and how it resumes.

KerasTuner joins `directory` and `project_name` without looking at them,
deletes the result on `overwrite=True` whatever it is, and resumes a search
only when the tuner's own file (`tuner0.json`, or `chief.json` for a chief)
exists, so a project started in the other mode, or whose tuner file is
lost, silently starts over and overwrites its trials. tfnas instead:

- accepts a project name only if it is one plain folder name;
- deletes, on overwrite, only a folder that tfnas wrote (or an empty one),
  under the project's lock, so a running search is never deleted;
- resumes whenever the project holds a search's state (`oracle.json` or
  trials), whichever mode wrote it; the tuner file holds no state of
  tfnas's tuners and is recreated when it is missing or corrupt.
"""

import json
import os
import shutil
import warnings

from tfnas import compat
from tfnas.project_lock import LOCK_FILE, ProjectLock

ORACLE_FILE = "oracle.json"
# What a project directory holds besides trial_* folders: the files and
# folders that tfnas and KerasTuner write there.
MARKER_FILES = ("oracle.json", "tuner0.json", "chief.json", "tfnas_project.json",
                "tfnas_search.json")
KNOWN_FOLDERS = ("logs", "best", "report", "final")
KNOWN_SUFFIXES = (".json", ".tmp", ".weights.h5")
KNOWN_PREFIXES = ("tmp-",)  # controller weights mid-write, in projects of earlier tfnas
# Tuner ids of a local (not distributed) search; see `adopt_orphaned_trials`.
LOCAL_TUNER_ID = "tuner0"


class UnsafeOverwriteError(ValueError):
    """`overwrite` was asked for a folder that tfnas did not write."""


class ResumeError(ValueError):
    """A project holds finished trials but cannot be resumed."""


def check_project_name(project_name, argument="project_name"):
    """Raises unless `project_name` is one plain folder name.

    Args:
        project_name: The name, or None for KerasTuner's default.
        argument: How the error names the argument (e.g. "--project-name").
    """
    if project_name is None:
        return
    name = os.fspath(project_name) if isinstance(project_name, os.PathLike) else project_name
    if (not isinstance(name, str) or name in ("", ".", "..")
            or any(c in name for c in ("/", "\\", "\0"))):
        raise ValueError(
            f"Received an invalid value for `{argument}`, expected one plain folder "
            "name (not empty, no '/' or '\\', not '.' or '..'); the project is the "
            f"folder of that name inside the directory. Received: {argument}="
            f"{project_name!r}")


def check_directory(directory, argument="directory"):
    """Raises unless `directory` is a folder or a path where one can be made."""
    path = os.path.abspath(os.fspath(directory if directory is not None else "."))
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            return
        path = parent
    if not os.path.isdir(path):
        raise ValueError(
            f"Received an invalid value for `{argument}`, expected a folder (or a path "
            f"where one can be created), but {path} is a file. Pass another "
            f"{argument}. Received: {argument}={os.fspath(directory)!r}")


def check_location(directory, project_name, arguments=("directory", "project_name")):
    """Checks `directory` and `project_name`; returns the project directory."""
    check_project_name(project_name, arguments[1])
    check_directory(directory, arguments[0])
    project_dir = os.path.join(os.fspath(directory if directory is not None else "."),
                               os.fspath(project_name or "untitled_project"))
    if os.path.exists(project_dir) and not os.path.isdir(project_dir):
        raise ValueError(
            f"The project {project_dir} is a file, expected a project folder. "
            f"Pass another `{arguments[1]}` or `{arguments[0]}`.")
    return project_dir


def _is_known_entry(project_dir, name):
    path = os.path.join(project_dir, name)
    if name.startswith("trial_") or name in KNOWN_FOLDERS:
        return os.path.isdir(path) and not os.path.islink(path)
    return (os.path.isfile(path) and not os.path.islink(path)
            and (name.endswith(KNOWN_SUFFIXES) or name.startswith(KNOWN_PREFIXES)))


def unknown_entries(project_dir):
    """The entries of `project_dir` that tfnas did not write there; all of
    them when it holds no tfnas or KerasTuner state file nor trial folder."""
    names = sorted(n for n in os.listdir(project_dir) if n != LOCK_FILE)
    is_project = any(n in MARKER_FILES or n.startswith("trial_") for n in names)
    if not is_project:
        return names
    return [n for n in names if not _is_known_entry(project_dir, n)]


def clear_project(project_dir):
    """Deletes a project's content for `overwrite=True`, refusing anything else.

    Deletes nothing unless `project_dir` is a tfnas project (holds its state
    files or trial folders, and nothing tfnas did not write) or is empty.
    Holds the project's lock meanwhile: a project that another search is
    running is not deleted. The lock file stays (see `tfnas.project_lock`).

    Raises:
        UnsafeOverwriteError: naming the folder and what it holds.
        tfnas.project_lock.ProjectInUseError: another search runs on it.
    """
    if os.path.islink(project_dir):
        raise UnsafeOverwriteError(
            f"Refusing to overwrite {project_dir}: it is a symbolic link, and tfnas "
            "deletes nothing through links. Remove the link yourself, or pass "
            "another project name.")
    if not os.path.isdir(project_dir):
        return
    _refuse_unknown_entries(project_dir)  # before the lock file is made in it
    if not [name for name in os.listdir(project_dir) if name != LOCK_FILE]:
        return
    with ProjectLock(project_dir):
        _refuse_unknown_entries(project_dir)
        for name in os.listdir(project_dir):
            if name == LOCK_FILE:
                continue
            path = os.path.join(project_dir, name)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.remove(path)


def _refuse_unknown_entries(project_dir):
    unknown = unknown_entries(project_dir)
    if unknown:
        shown = ", ".join(unknown[:5]) + (", ..." if len(unknown) > 5 else "")
        raise UnsafeOverwriteError(
            f"Refusing to overwrite {project_dir}: it is not a tfnas project "
            f"folder, or holds files that tfnas did not write ({shown}). Nothing "
            "was deleted. Pass another project name, or delete or move the "
            "folder yourself.")


def has_search_state(project_dir):
    """Whether `project_dir` holds a search to resume: oracle state or trials."""
    if not os.path.isdir(project_dir):
        return False
    if os.path.exists(os.path.join(project_dir, ORACLE_FILE)):
        return True
    return any(name.startswith("trial_")
               and os.path.exists(os.path.join(project_dir, name, "trial.json"))
               for name in os.listdir(project_dir))


def check_oracle_state(project_dir):
    """Raises `ResumeError` when a project's trials cannot be resumed because
    `oracle.json` is missing or is not JSON."""
    path = os.path.join(project_dir, ORACLE_FILE)
    way_out = (f"The finished trials are intact in {project_dir}/trial_*/trial.json: "
               f"restore {ORACLE_FILE} from a backup to resume them, or start over "
               "with overwrite=True (--overwrite) or another project name.")
    if not os.path.exists(path):
        raise ResumeError(f"Cannot resume {project_dir}: it holds trials but {path} "
                          f"is missing. {way_out}")
    try:
        with open(path) as file:
            json.load(file)
    except ValueError as error:
        raise ResumeError(f"Cannot resume {project_dir}: {path} is not valid JSON "
                          f"({error}). {way_out}") from error


def read_tuner_state(path):
    """A tuner file's state; `{}` with a warning when it is missing or corrupt.

    tfnas's tuners keep no state there (`get_state()` is `{}`); the search's
    state is the oracle's and the trials'.
    """
    try:
        with open(path) as file:
            state = json.load(file)
        if isinstance(state, dict):
            return state
        problem = "does not hold a JSON object"
    except FileNotFoundError:
        problem = "is missing (e.g. the project was searched in the other mode, "\
                  "local or distributed)"
    except (OSError, ValueError) as error:
        problem = f"cannot be read ({error})"
    warnings.warn(f"{path} {problem}; resuming from {ORACLE_FILE} and the trial "
                  "files, which hold the search's state. It is rewritten.")
    return {}


def adopt_orphaned_trials(oracle, tuner_id, distributed):
    """Queues for a retry the running trials whose tuner will not come back.

    A project resumed in the other mode keeps trials that the previous
    mode's tuners were running (`worker0`, ... for a distributed search,
    `tuner0` for a local one); nobody would ever end them. A local search
    is the only tuner of its project; a chief's workers are never named
    `tuner0`.

    Args:
        oracle: The reloaded `keras_tuner.Oracle`.
        tuner_id: The id of the resuming tuner.
        distributed: Whether it is the chief of a distributed search.
    """
    orphaned = [owner for owner in oracle.ongoing_trials
                if (owner == LOCAL_TUNER_ID if distributed else owner != tuner_id)]
    for owner in orphaned:
        trial = oracle.ongoing_trials.pop(owner)
        queue = compat.retry_queue(oracle)
        if trial.trial_id not in queue:
            queue.append(trial.trial_id)
    if orphaned:
        oracle.save()


def open_project(directory, project_name, overwrite, worker):
    """Checks a tuner's project location and performs its `overwrite`.

    A worker never deletes: it shares its chief's project directory.
    """
    project_dir = check_location(directory, project_name)
    if overwrite and worker:
        warnings.warn(f"overwrite=True is ignored on a worker: only the chief may start "
                      f"the project {project_dir} over.")
    elif overwrite:
        clear_project(project_dir)
    return project_dir
