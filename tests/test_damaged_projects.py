"""Damaged or crafted project files: named in one-line errors, skipped by report and
export, never a way to read or write outside the project.

Every test works on its own copy of one finished search, inside a sandbox folder
(`tmp_path/sandbox/...`) whose sentinel files must survive.
"""

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

import tfnas
from tfnas import cli, report
from tfnas.errors import TfnasWarning

SEARCH = ["--space", "mlp", "--space-arg", "max_layers=1", "--space-arg", "units=[8,16]",
          "--strategy", "random", "--max-trials", "3", "--epochs", "1", "--no-progress"]
# One xdist worker runs this module: the finished search is made once.
pytestmark = pytest.mark.xdist_group("damaged_projects")


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """The `--directory` of a finished 3-trial search, project "p"."""
    directory = tmp_path_factory.mktemp("finished") / "projects"
    assert cli.main(["search", *SEARCH, "--directory", str(directory),
                     "--project-name", "p"]) == 0
    return directory


@pytest.fixture
def sandbox(tmp_path, finished):
    """A copy of the finished project at sandbox/projects/p, sentinels around it."""
    root = tmp_path / "sandbox"
    shutil.copytree(finished, root / "projects")
    for sentinel in (root / "sentinel.txt", root / "projects" / "sentinel.txt"):
        sentinel.write_text("keep me")
    yield root
    for sentinel in (root / "sentinel.txt", root / "projects" / "sentinel.txt"):
        assert sentinel.read_text() == "keep me"


def all_files(root):
    return {os.path.relpath(os.path.join(folder, name), root)
            for folder, _, names in os.walk(root) for name in names}


def one_error_line(capsys):
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("tfnas: error: ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def edit_json(path, change):
    with open(path) as file:
        record = json.load(file)
    change(record)
    with open(path, "w") as file:
        json.dump(record, file)


def ranked_trial_ids(project_dir):
    records = report.ranked(report.trial_records(str(project_dir)), "max")
    return [r["trial_id"] for r in records if r["score"] is not None]


# Defect 6: nothing written or read outside the project.

@pytest.mark.slow
def test_report_plots_stay_in_the_plot_folder(sandbox, capsys):
    project_dir = sandbox / "projects" / "p"
    edit_json(project_dir / "tfnas_project.json",
              lambda r: r["objective"].update(name="../../../x"))
    before = all_files(sandbox)
    plots = sandbox / "projects" / "p" / "report"
    assert cli.main(["report", str(project_dir), "--plots", str(plots)]) == 0
    added = all_files(sandbox) - before
    assert added and all(path.startswith(os.path.join("projects", "p", "report", ""))
                         for path in added), added
    assert all(os.path.dirname(path) == os.path.join("projects", "p", "report")
               for path in added)


@pytest.mark.slow
def test_export_never_reads_weights_through_a_crafted_trial_id(sandbox, tmp_path, capsys):
    project_dir = sandbox / "projects" / "p"
    best, runner_up = ranked_trial_ids(project_dir)[:2]
    # A trial id that, as a path, leads out of the project to planted weights.
    outside = sandbox / "outside"
    outside.mkdir()
    shutil.copy(project_dir / f"trial_{best}" / "checkpoint.weights.h5", outside)
    crafted = f"{best}/../../../outside"
    edit_json(project_dir / f"trial_{best}" / "trial.json",
              lambda r: r.update(trial_id=crafted))

    skipped = f"skipping {project_dir / f'trial_{best}' / 'trial.json'}: its trial_id"
    with pytest.warns(TfnasWarning, match=re.escape(skipped)):
        assert cli.main(["export", str(project_dir), str(tmp_path / "out")]) == 0
    with open(tmp_path / "out" / "architecture.json") as file:
        assert json.load(file)["trial_id"] == runner_up


# Defect 10: one bad file does not block report or export.

@pytest.mark.slow
def test_report_and_export_skip_a_corrupt_trial_json(sandbox, tmp_path, capsys):
    project_dir = sandbox / "projects" / "p"
    best, runner_up = ranked_trial_ids(project_dir)[:2]
    damaged = project_dir / f"trial_{best}" / "trial.json"
    damaged.write_text(damaged.read_text()[:40])  # cut short, as by a crash

    shown = subprocess.run(  # as a user sees it
        [sys.executable, "-m", "tfnas", "report", str(project_dir), "--format", "json",
         "--plots", "none"], capture_output=True, text=True, timeout=300)
    assert shown.returncode == 0, shown.stderr
    assert f"tfnas: warning: skipping {damaged}: it is corrupt" in shown.stderr
    assert [t["trial_id"] for t in json.loads(shown.stdout)["trials"]][0] == runner_up

    with pytest.warns(TfnasWarning, match=re.escape(f"skipping {damaged}")):
        assert cli.main(["export", str(project_dir), str(tmp_path / "out")]) == 0
    with open(tmp_path / "out" / "architecture.json") as file:
        assert json.load(file)["trial_id"] == runner_up


@pytest.mark.slow
def test_export_falls_back_to_the_next_best_loadable_checkpoint(sandbox, tmp_path, capsys):
    project_dir = sandbox / "projects" / "p"
    best, runner_up = ranked_trial_ids(project_dir)[:2]
    checkpoint = project_dir / f"trial_{best}" / "checkpoint.weights.h5"
    checkpoint.write_bytes(b"not an h5 file")

    with pytest.warns(TfnasWarning) as warned:
        assert cli.main(["export", str(project_dir), str(tmp_path / "out")]) == 0
    (message,) = [str(w.message) for w in warned if w.category is TfnasWarning]
    assert message.startswith(f"exporting trial {runner_up} (")
    assert f"instead of the best one: trial {best}: {checkpoint} does not load" in message
    with open(tmp_path / "out" / "architecture.json") as file:
        assert json.load(file)["trial_id"] == runner_up
    assert tfnas.rebuild(tmp_path / "out" / "architecture.json").count_params() > 0

    for trial_id in ranked_trial_ids(project_dir):
        (project_dir / f"trial_{trial_id}" / "checkpoint.weights.h5").unlink()
    assert cli.main(["export", str(project_dir), str(tmp_path / "again")]) == 2
    assert "no completed trial" in one_error_line(capsys)


# Defect 9: expected failures are one line naming the file and the way out.

@pytest.mark.slow
@pytest.mark.parametrize("name", ["trial_0/trial.json", "tfnas_search.json", "oracle.json"])
def test_resuming_with_a_corrupt_state_file_names_it(sandbox, capsys, name):
    path = sandbox / "projects" / "p" / name
    path.write_text(path.read_text()[:len(path.read_text()) // 2])
    before = all_files(sandbox)
    code = cli.main(["search", *SEARCH, "--directory", str(sandbox / "projects"),
                     "--project-name", "p"])
    line = one_error_line(capsys)
    assert code == 2
    assert f"{path} is corrupt or unreadable" in line and "--overwrite" in line
    assert all_files(sandbox) == before  # nothing trained, nothing overwritten


@pytest.mark.slow
def test_resuming_with_a_corrupt_best_checkpoint_names_it(sandbox, capsys):
    project_dir = sandbox / "projects" / "p"
    (best,) = ranked_trial_ids(project_dir)[:1]
    checkpoint = project_dir / f"trial_{best}" / "checkpoint.weights.h5"
    checkpoint.write_bytes(b"not an h5 file")
    code = cli.main(["search", *SEARCH, "--directory", str(sandbox / "projects"),
                     "--project-name", "p"])
    line = one_error_line(capsys)
    assert code == 2
    assert str(checkpoint) in line and "tfnas export" in line


def test_directory_that_is_a_file_is_refused(tmp_path, capsys):
    target = tmp_path / "sandbox" / "file"
    target.parent.mkdir()
    target.write_text("keep me")
    assert cli.main(["search", *SEARCH, "--directory", str(target)]) == 2
    line = one_error_line(capsys)
    assert "--directory" in line and str(target) in line and "expected a folder" in line
    assert target.read_text() == "keep me"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to read-only folders")
def test_read_only_directory_is_refused(tmp_path, capsys):
    target = tmp_path / "sandbox" / "read-only"
    target.mkdir(parents=True)
    target.chmod(0o500)
    try:
        assert cli.main(["search", *SEARCH, "--directory", str(target)]) == 2
        assert f"--directory {target} cannot hold projects" in one_error_line(capsys)
    finally:
        target.chmod(0o700)


def test_negative_seed_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(["search", *SEARCH, "--directory", str(tmp_path), "--seed", "-1"])
    assert exited.value.code == 2
    assert "--seed: expected a non-negative integer, received '-1'" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_latency_table_with_missing_keys_is_named(tmp_path, capsys):
    table = tmp_path / "sandbox" / "latency.json"
    table.parent.mkdir()
    table.write_text(json.dumps({"space": {"name": "mlp", "config": {}}, "entries": {}}))
    code = cli.main(["search", *SEARCH, "--directory", str(tmp_path / "sandbox" / "projects"),
                     "--latency-table", str(table)])
    line = one_error_line(capsys)
    assert code == 2
    assert str(table) in line and "missing: ['base_ms', 'batch_size', 'repeats']" in line
    assert "tfnas latency-table" in line


@pytest.mark.slow
@pytest.mark.parametrize("space, expected", [
    ({"name": "nope", "config": {}}, "unknown space 'nope'"),
    ({"name": "mlp", "config": {"input_shape": [64], "num_classes": 10, "colour": 1}},
     "space 'mlp' cannot be built with the recorded arguments"),
])
def test_unknown_space_or_key_in_a_project_record_is_named(sandbox, capsys, space, expected):
    record = sandbox / "projects" / "p" / "tfnas_project.json"
    edit_json(record, lambda r: r.update(space=space))
    assert cli.main(["report", str(record.parent), "--plots", "none"]) == 2
    line = one_error_line(capsys)
    assert str(record) in line and expected in line


@pytest.mark.slow
def test_project_record_without_objective_is_named(sandbox, capsys):
    record = sandbox / "projects" / "p" / "tfnas_project.json"
    edit_json(record, lambda r: r.pop("objective"))
    assert cli.main(["export", str(record.parent), str(sandbox / "out")]) == 2
    line = one_error_line(capsys)
    assert f"{record} is corrupt or unreadable" in line and "objective" in line


def test_rebuild_names_what_is_wrong_with_its_argument(tmp_path):
    folder = tmp_path / "sandbox" / "export"
    folder.mkdir(parents=True)
    with pytest.raises(tfnas.errors.TfnasError, match="pass the architecture.json inside"):
        tfnas.rebuild(folder)
    with pytest.raises(TypeError, match="`architecture_file`"):
        tfnas.rebuild(42)
    record = folder / "architecture.json"
    record.write_text("{not json")
    with pytest.raises(tfnas.errors.CorruptFileError, match="not valid JSON"):
        tfnas.rebuild(record)
    record.write_text(json.dumps({"space": {"name": "mlp", "config": {}}}))
    with pytest.raises(tfnas.errors.TfnasError, match="holds no \"architecture\""):
        tfnas.rebuild(record)
    config = {"input_shape": [64], "num_classes": 10, "max_layers": -1}
    record.write_text(json.dumps({"architecture": {"num_layers": 1},
                                  "space": {"name": "mlp", "config": config}}))
    with pytest.raises(tfnas.errors.TfnasError) as caught:
        tfnas.rebuild(record)
    assert "cannot be built with the recorded arguments" in str(caught.value)
    assert "max_layers" in str(caught.value) and "names no built-in space" not in str(
        caught.value)
    record.write_text(json.dumps({"architecture": {}, "space": {"name": None}}))
    with pytest.raises(tfnas.errors.TfnasError, match="names no built-in space"):
        tfnas.rebuild(record)


@pytest.mark.slow
def test_unexpected_exceptions_keep_their_traceback(sandbox, monkeypatch):
    """Only expected failures become one line; a bug must not hide behind one."""
    def broken(source):
        raise RuntimeError("a bug in tfnas")

    monkeypatch.setattr(report, "trial_records", broken)
    with pytest.raises(RuntimeError, match="a bug in tfnas"):
        cli.main(["report", str(sandbox / "projects" / "p"), "--plots", "none"])
