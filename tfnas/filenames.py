"""Names read from files or given by users, made safe to use as paths.

A project directory is data: an objective name in `tfnas_project.json` or a
trial id in a `trial.json` may be anything, so neither becomes part of a
path before it is checked here.
"""

import os
import re

from tfnas import errors

MAX_NAME_LENGTH = 120
# KerasTuner's trial ids are zero-padded numbers ("00", "017"); allow what a
# custom oracle might use, but never a separator or a leading dot.
_TRIAL_ID = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_file_name(name, default="file"):
    """`name` as one plain file-name component: letters, digits, `.`, `_`, `-`.

    Any other run of characters (a separator, a space) becomes `_`, and
    leading dots are dropped, so the result can never be `..`, hidden, or
    name another folder.

    Args:
        name: Any text, e.g. an objective's name.
        default: The name to use when nothing of `name` is left.
    """
    cleaned = _UNSAFE.sub("_", str(name)).lstrip(".")[:MAX_NAME_LENGTH]
    return cleaned or default


def inside(directory, name):
    """The path of `name` in `directory`, refusing one that leads elsewhere.

    Raises:
        tfnas.errors.TfnasError: when the path (after symbolic links) is not
            inside `directory`.
    """
    path = os.path.join(directory, name)
    base = os.path.realpath(directory)
    if os.path.commonpath([base, os.path.realpath(path)]) != base:
        raise errors.TfnasError(
            f"refusing to write {path}: it leads outside {directory}. Remove the "
            "symbolic link or pick another folder.")
    return path


def is_trial_id(trial_id):
    """Whether `trial_id` is a plain trial id, safe in `trial_<id>` paths."""
    return isinstance(trial_id, str) and bool(_TRIAL_ID.match(trial_id))
