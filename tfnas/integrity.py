"""Checks of a project's state files before a search resumes from them.

KerasTuner reads `oracle.json` and every
`trial_*/trial.json` when it resumes a project; one damaged file fails with a
bare JSON error that names no file. `check_project` reads them first and
names the damaged one and the way out.
"""

import glob
import os

from tfnas import errors, filenames

# `tuner0.json`/`chief.json` are not here: they hold no state for tfnas's
# tuners, and a damaged one is rewritten with a warning (`tfnas.project_safety`).
SEARCH_FILES = ("tfnas_search.json", "oracle.json")
_WAY_OUT = ("Restore it from a backup, or start over with --overwrite (or another "
            "--project-name); `tfnas report` and `tfnas export` still read the other "
            "trials of this project.")


def check_project(project_dir):
    """Raises `tfnas.errors.CorruptFileError` for the first damaged state file.

    Args:
        project_dir: A project directory; one that does not exist is fine.
    """
    if not os.path.isdir(project_dir):
        return
    for name in SEARCH_FILES:
        path = os.path.join(project_dir, name)
        if os.path.exists(path):
            errors.read_json(path, _WAY_OUT)
    for path in sorted(glob.glob(os.path.join(glob.escape(project_dir), "trial_*",
                                              "trial.json"))):
        record = errors.read_json(path, _WAY_OUT)
        folder = os.path.basename(os.path.dirname(path))
        trial_id = record.get("trial_id")
        if not filenames.is_trial_id(trial_id) or folder != f"trial_{trial_id}":
            raise errors.CorruptFileError(
                path, f"its trial_id {trial_id!r} does not match its folder {folder!r}",
                _WAY_OUT)
