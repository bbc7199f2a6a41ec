"""Nothing deleted, nothing overwritten: project names, overwrite, resume,
one search per project, a full disk (issue 13, defects 1, 2, 4 and 11).

Everything that could delete runs in a sandbox laid out as

    tmp_path/outer/sentinel.txt            a file outside the projects
    tmp_path/outer/projects/<project>      the projects' directory

so that the worst case deletes only this test's own files; every test that
could delete asserts the sentinel survives.
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

import tfnas
from tfnas import cli, project, project_lock, project_safety
from tfnas.spaces import MLPSpace


def tfnas_command(*args):
    return [sys.executable, "-m", "tfnas", *args]


def environment():
    env = {k: v for k, v in os.environ.items() if not k.startswith("KERASTUNER_")}
    env.pop("TF_CONFIG", None)
    return {**env, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}


@pytest.fixture
def sandbox(tmp_path):
    """`(projects, sentinel)`: the projects' directory and a file beside it."""
    outer = tmp_path / "outer"
    projects = outer / "projects"
    projects.mkdir(parents=True)
    sentinel = outer / "sentinel.txt"
    sentinel.write_text("must survive")
    sibling = projects / "sibling"
    sibling.mkdir()
    (sibling / "oracle.json").write_text("{}")
    return projects, sentinel


def small_space():
    return MLPSpace((8, 8, 1), 10, max_layers=1, units=(8, 16, 32))


def make_tuner(directory, project_name="p", max_trials=2, **kwargs):
    return tfnas.NASTuner(small_space(), oracle="random", max_trials=max_trials, seed=0,
                          directory=directory, project_name=project_name, progress=False,
                          measure_latency=False, count_flops=False, log_dir=None, **kwargs)


def search(tuner, digits):
    tuner.search(digits.train, validation_data=digits.validation, epochs=1, verbose=0)


def completed_scores(project_dir):
    return {t.trial_id: t.score for t in project.load_trials(str(project_dir))
            if t.status == "COMPLETED"}


# 1. --overwrite deletes outside the project.

BAD_NAMES = ["..", ".", "", "a/b", "OUTER", "../projects", "x\\y"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_a_project_name_must_be_one_plain_folder_name(sandbox, name):
    projects, sentinel = sandbox
    if name == "OUTER":
        name = str(sentinel.parent)  # an absolute path
    with pytest.raises(ValueError, match="project_name.*one plain folder name"):
        make_tuner(projects, project_name=name, overwrite=True)
    assert sentinel.read_text() == "must survive"
    assert (projects / "sibling" / "oracle.json").exists()


def test_one_shot_tuner_checks_its_project_name_too(sandbox):
    from tfnas.supernet.tuner import OneShotTuner

    projects, sentinel = sandbox
    with pytest.raises(ValueError, match="project_name"):
        OneShotTuner(small_space(), strategy="darts", directory=projects,
                     project_name="..", overwrite=True)
    assert sentinel.exists() and (projects / "sibling" / "oracle.json").exists()


@pytest.mark.parametrize("name", ["..", "."])
def test_the_command_line_refuses_a_project_name_that_is_not_a_folder_name(sandbox, capsys,
                                                                           name):
    projects, sentinel = sandbox
    code = cli.main(["search", "--space", "mlp", "--max-trials", "1", "--epochs", "1",
                     "--directory", str(projects), "--project-name", name, "--overwrite"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("tfnas: error: Received an invalid value for `--project-name`")
    assert sentinel.exists() and (projects / "sibling" / "oracle.json").exists()


def test_overwrite_refuses_a_folder_that_is_not_a_tfnas_project(sandbox):
    projects, sentinel = sandbox
    notes = projects / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("mine")
    with pytest.raises(project_safety.UnsafeOverwriteError,
                       match=f"Refusing to overwrite {notes}.*todo.txt"):
        make_tuner(projects, project_name="notes", overwrite=True)
    assert [p.name for p in notes.iterdir()] == ["todo.txt"]  # not even a lock file
    assert (notes / "todo.txt").read_text() == "mine"
    # Nor a project that holds a file tfnas did not write.
    (projects / "sibling" / "thesis.tex").write_text("mine")
    with pytest.raises(project_safety.UnsafeOverwriteError, match="thesis.tex"):
        make_tuner(projects, project_name="sibling", overwrite=True)
    assert (projects / "sibling" / "thesis.tex").exists()
    assert (projects / "sibling" / "oracle.json").exists()
    # Nor through a symbolic link.
    (projects / "link").symlink_to(sentinel.parent, target_is_directory=True)
    with pytest.raises(project_safety.UnsafeOverwriteError, match="symbolic link"):
        make_tuner(projects, project_name="link", overwrite=True)
    assert sentinel.exists()


def test_overwrite_deletes_a_real_project_and_starts_over(sandbox, digits):
    projects, sentinel = sandbox
    first = make_tuner(projects, max_trials=1)
    search(first, digits)
    assert len(completed_scores(projects / "p")) == 1
    (projects / "empty").mkdir()
    make_tuner(projects, project_name="empty", overwrite=True)  # an empty folder: fine

    again = make_tuner(projects, max_trials=1, overwrite=True)
    assert again.oracle.trials == {}
    assert not list((projects / "p").glob("trial_*"))
    assert sentinel.exists() and (projects / "sibling" / "oracle.json").exists()


def test_a_directory_that_is_a_file_is_a_clear_error(sandbox, capsys):
    projects, _ = sandbox
    a_file = projects / "file.txt"
    a_file.write_text("mine")
    with pytest.raises(ValueError, match=f"`directory`.*{a_file} is a file"):
        make_tuner(a_file)
    with pytest.raises(ValueError, match="is a file"):
        make_tuner(a_file / "below")
    code = cli.main(["search", "--directory", str(a_file)])
    assert code == 2
    assert f"`--directory`, expected a folder (or a path where one can be created), " \
           f"but {a_file} is a file" in capsys.readouterr().err
    assert a_file.read_text() == "mine"


# 2. Resume can silently restart and overwrite finished trials.

def test_a_lost_or_corrupt_tuner_file_still_resumes_the_finished_trials(sandbox, digits):
    projects, _ = sandbox
    search(make_tuner(projects, max_trials=2), digits)
    project_dir = projects / "p"
    before = completed_scores(project_dir)
    assert len(before) == 2

    (project_dir / "tuner0.json").unlink()
    with pytest.warns(UserWarning, match="tuner0.json is missing"):
        resumed = make_tuner(projects, max_trials=3)
    assert {t.trial_id: t.score for t in resumed.oracle.trials.values()} == before
    search(resumed, digits)
    after = completed_scores(project_dir)
    assert len(after) == 3 and {k: after[k] for k in before} == before
    assert json.loads((project_dir / "tuner0.json").read_text()) == {}  # rewritten

    (project_dir / "tuner0.json").write_text('{"truncated')
    with pytest.warns(UserWarning, match="tuner0.json cannot be read"):
        again = make_tuner(projects, max_trials=3)
    assert len(again.oracle.trials) == 3


def test_trials_without_oracle_state_are_refused_with_the_way_out(sandbox, digits):
    projects, _ = sandbox
    search(make_tuner(projects, max_trials=1), digits)
    project_dir = projects / "p"
    (project_dir / "tuner0.json").unlink()
    (project_dir / "oracle.json").unlink()
    trial_files = sorted(project_dir.glob("trial_*/trial.json"))
    with pytest.raises(project_safety.ResumeError,
                       match=f"{project_dir}/oracle.json is missing.*overwrite=True"):
        make_tuner(projects, max_trials=1)
    assert sorted(project_dir.glob("trial_*/trial.json")) == trial_files  # untouched


def test_a_local_project_resumed_as_chief_keeps_its_trials(sandbox, digits, monkeypatch):
    projects, _ = sandbox
    local = make_tuner(projects, max_trials=2)
    search(local, digits)
    before = completed_scores(projects / "p")
    # A third trial the local search was running when it stopped.
    local.oracle.max_trials = 3
    running = local.oracle.create_trial("tuner0")
    assert running.status == "RUNNING"

    monkeypatch.setenv("KERASTUNER_TUNER_ID", "chief")
    monkeypatch.setenv("KERASTUNER_ORACLE_IP", "127.0.0.1")
    monkeypatch.setenv("KERASTUNER_ORACLE_PORT", "8470")
    with pytest.warns(UserWarning, match="chief.json is missing"):
        chief = make_tuner(projects, max_trials=3)
    assert chief.role == "chief"
    assert {t: s.score for t, s in chief.oracle.trials.items()
            if s.status == "COMPLETED"} == before
    # Its trial goes to the next worker: no worker is named tuner0.
    assert chief.oracle.ongoing_trials == {}
    assert chief.oracle._retry_queue == [running.trial_id]

    # Back to a local search while worker0 runs that trial: the local tuner,
    # the only one now, takes it over.
    assert chief.oracle.create_trial("worker0").trial_id == running.trial_id
    for name in ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT"):
        monkeypatch.delenv(name)
    local = make_tuner(projects, max_trials=3)
    assert local.oracle.ongoing_trials == {}
    assert local.oracle._retry_queue == [running.trial_id]
    search(local, digits)
    assert len(completed_scores(projects / "p")) == 3


def _run(*args, timeout=300):
    return subprocess.run(tfnas_command(*args), capture_output=True, text=True,
                          timeout=timeout, env=environment())


def _run_here(capsys, *args):
    """`tfnas ARGS` in this process (no TensorFlow start-up): exit status, stdout, stderr."""
    code = cli.main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.slow
def test_a_project_resumes_across_local_and_distributed_runs(sandbox, capsys):
    projects, _ = sandbox
    common = ["search", "--space", "mlp", "--space-arg", "units=[8,16,32]", "--epochs", "1",
              "--directory", str(projects), "--project-name", "p"]
    project_dir = projects / "p"
    # The local runs in this process, the distributed one as real processes.
    code, _, err = _run_here(capsys, *common, "--max-trials", "2")
    assert code == 0, err
    first = completed_scores(project_dir)
    assert len(first) == 2

    distributed = _run(*common, "--max-trials", "3", "--workers", "1")
    assert distributed.returncode == 0, distributed.stdout + distributed.stderr
    assert "(2 already completed)" in distributed.stdout
    second = completed_scores(project_dir)
    assert len(second) == 3 and {k: second[k] for k in first} == first

    code, out, err = _run_here(capsys, *common, "--max-trials", "4")
    assert code == 0, err
    assert "(3 already completed)" in out
    third = completed_scores(project_dir)
    assert len(third) == 4 and {k: third[k] for k in second} == second


# 4. Two searches on one project corrupt it.

def test_the_project_lock_is_exclusive_and_names_its_holder(tmp_path):
    import socket

    first = project_lock.ProjectLock(tmp_path)
    with first:
        with first:  # re-entrant for its owner
            pass
        assert first.held
        with pytest.raises(project_lock.ProjectInUseError,
                           match=rf"in use by another search \(pid {os.getpid()} on host "
                                 rf"{socket.gethostname()}, started 20\d\d-"):
            project_lock.ProjectLock(tmp_path).acquire()
        # Overwriting a project in use deletes nothing.
        (tmp_path / "oracle.json").write_text("{}")
        with pytest.raises(project_lock.ProjectInUseError):
            project_safety.clear_project(str(tmp_path))
        assert (tmp_path / "oracle.json").exists()
    with project_lock.ProjectLock(tmp_path):
        pass


@pytest.mark.slow
def test_a_second_search_is_refused_and_a_killed_holders_lock_is_taken_over(sandbox, capsys):
    projects, sentinel = sandbox
    # Short trials, many of them: the holder searches for minutes, and the
    # search that takes its lock over trains at most one short trial.
    common = ["search", "--space", "mlp", "--space-arg", "units=[8,16,32]",
              "--epochs", "4", "--directory", str(projects), "--project-name", "p"]
    lock_file = projects / "p" / project_lock.LOCK_FILE
    holder = subprocess.Popen(tfnas_command(*common, "--max-trials", "300"),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env=environment())
    try:
        deadline = time.monotonic() + 120
        while not list((projects / "p").glob("trial_*")):  # it trains its first trial
            assert holder.poll() is None, "the first search ended early"
            assert time.monotonic() < deadline, "the first search never started a trial"
            time.sleep(0.1)

        # The second search in this process: no TensorFlow start-up to wait for.
        code, out, err = _run_here(capsys, *common, "--max-trials", "1")
        assert code == 2, out + err
        error = err.strip().splitlines()[-1]
        assert error.startswith("tfnas: error: the project ")
        assert f"in use by another search (pid {holder.pid} on host " in error
        assert "started " in error and "UTC" in error
        assert "[trial" not in out  # it trained nothing
        assert holder.poll() is None

        holder.send_signal(signal.SIGKILL)  # mid-search: its lock file stays behind
        holder.wait(30)
        assert json.loads(lock_file.read_text())["pid"] == holder.pid

        third = _run(*common, "--max-trials", "1", timeout=300)
        assert third.returncode == 0, third.stdout + third.stderr
        assert completed_scores(projects / "p")
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(30)
    assert sentinel.exists()


# 11. Disk full.

@pytest.fixture
def small_disk(tmp_path):
    """A 64 KiB tmpfs mounted at tmp_path/outer/disk (root only)."""
    if os.geteuid() != 0:
        pytest.skip("filling a disk for real needs root, to mount a small tmpfs")
    disk = tmp_path / "outer" / "disk"
    disk.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)],
                             capture_output=True, text=True)
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs: {mounted.stderr.strip()}")
    try:
        yield disk
    finally:
        if subprocess.run(["umount", str(disk)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def _fill(disk, leave_bytes):
    """Fills `disk` up to `leave_bytes` of free space."""
    stat = os.statvfs(disk)
    free = stat.f_bavail * stat.f_frsize
    with open(disk / "filler", "wb") as file:
        file.write(b"\0" * max(0, free - leave_bytes))


def test_a_full_disk_keeps_the_previous_state_and_leaves_no_temporary_file(small_disk):
    path = small_disk / "oracle.json"
    project.write_atomically(path, {"version": 1})
    _fill(small_disk, 4096)
    with pytest.raises(project.DiskFullError,
                       match=f"^no space left on device writing {path} "):
        project.write_atomically(path, {"version": 2, "pad": "x" * 100_000})
    assert json.loads(path.read_text()) == {"version": 1}
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler", "oracle.json"]


@pytest.mark.slow
def test_a_search_on_a_full_disk_fails_clearly_and_resumes_once_there_is_space(small_disk):
    arguments = ["search", "--space", "mlp", "--max-trials", "1", "--epochs", "1",
                 "--directory", str(small_disk), "--project-name", "p"]
    full = _run(*arguments)
    assert full.returncode == 2, (full.returncode, full.stderr)  # not a crash (139)
    error = full.stderr.strip().splitlines()[-1]
    assert error.startswith("tfnas: error: no space left on device writing "
                            f"{small_disk}/p/"), full.stderr
    files = [p for p in small_disk.rglob("*") if p.is_file()]
    assert not [p for p in files if p.name.endswith(".tmp")]
    for state in files:
        if state.suffix == ".json" and state.name != project_lock.LOCK_FILE:
            json.loads(state.read_text())  # every state file whole

    remounted = subprocess.run(["mount", "-o", "remount,size=16m", str(small_disk)],
                               capture_output=True, text=True)
    assert remounted.returncode == 0, remounted.stderr
    resumed = _run(*arguments)
    assert resumed.returncode == 0, resumed.stderr
    assert len(completed_scores(small_disk / "p")) == 1
