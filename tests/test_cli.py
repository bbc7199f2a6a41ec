"""The `tfnas` command, run as a user runs it: in a real subprocess.

Help and refusals, which end before any work, run `cli.main` in this process:
the same code, without a TensorFlow start-up (seconds) each.
"""

import json
import os
import re
import signal
import subprocess
import sys

import pytest

TRIAL_LINE = re.compile(r"^\[trial (\d+)\] (\S+)")


def tfnas_command(*args):
    return [sys.executable, "-m", "tfnas", *args]


def run(*args, timeout=300, environment=None):
    return subprocess.run(
        tfnas_command(*args), capture_output=True, text=True, timeout=timeout,
        env={**(os.environ if environment is None else environment), "PYTHONUNBUFFERED": "1"},
    )


def users_environment():
    """The environment without the tests' `TF_CPP_MIN_LOG_LEVEL` (conftest.py)."""
    return {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}


def run_here(capsys, *args):
    """`tfnas ARGS` in this process: its exit status and standard error."""
    from tfnas import cli

    try:
        code = cli.main(list(args))
    except SystemExit as exit_:  # argparse's own refusals
        code = exit_.code
    return code, capsys.readouterr().err


def trial_lines(output):
    return [m.groups() for m in map(TRIAL_LINE.match, output.splitlines()) if m]


def test_the_command_line_loads_tensorflow_in_its_commands_only():
    # `main` sets TensorFlow's log level, which TensorFlow reads when it loads.
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, tfnas.cli; print('tensorflow' in sys.modules)"],
        capture_output=True, text=True, timeout=120, check=True).stdout
    assert loaded.strip() == "False"


def test_help_documents_every_option(capsys):
    from tfnas import cli

    with pytest.raises(SystemExit) as exit_:
        cli.main(["search", "--help"])
    assert exit_.value.code == 0
    shown = capsys.readouterr().out
    for option in ("--space", "--strategy", "--dataset", "--data-dir", "--max-trials",
                   "--epochs", "--batch-size", "--directory", "--project-name",
                   "--seed", "--objective", "--overwrite"):
        assert option in shown, option


@pytest.mark.parametrize(
    "args, message",
    [
        (["--max-trials", "0"], "expected a positive integer"),
        (["--dataset", "cifar10"], "'digits', 'mnist1d', 'tfds:NAME'"),
        (["--space", "nope"], "invalid choice: 'nope'"),
    ],
)
def test_bad_arguments_exit_with_a_clear_error(tmp_path, capsys, args, message):
    code, err = run_here(capsys, "search", "--directory", str(tmp_path), *args)
    assert code == 2
    assert message in err
    assert not list(tmp_path.iterdir())  # nothing was trained or written


def test_search_runs_to_completion_and_exports(tmp_path, capsys):
    result = run("search", "--max-trials", "2", "--epochs", "1",
                 "--directory", str(tmp_path), environment=users_environment())
    assert result.returncode == 0, result.stderr
    # TensorFlow's C++ INFO lines (grappler's, once per trial) are hidden;
    # those it prints as it loads, before its log level applies, are not.
    assert "single_machine.cc" not in result.stderr
    assert "Warning:" not in result.stderr  # no Python warning reaches the user
    lines = trial_lines(result.stdout)
    assert [trial_id for trial_id, _ in lines] == ["0", "1"]
    assert "'evolution' on 'digits': 2 trials of 1 epochs (0 already completed)" in result.stdout
    assert all(status.startswith("val_accuracy=") for _, status in lines)
    assert re.search(r"Test accuracy of the best architecture: 0\.\d{4}", result.stdout)
    project = tmp_path / "chain-evolution-digits"
    record = json.loads((project / "best" / "architecture.json").read_text())
    assert record["space"]["name"] == "chain" and "num_layers" in record["architecture"]
    assert (project / "best" / "saved_model" / "saved_model.pb").exists()
    assert (project / "best" / "model.keras").exists()

    # The same command with other search arguments refuses to mix projects.
    code, err = run_here(capsys, "search", "--max-trials", "2", "--epochs", "3",
                         "--directory", str(tmp_path))
    assert code == 2
    assert "epochs: 1 -> 3" in err and "--overwrite" in err


def _completed_scores(project):
    scores = {}
    for trial_file in project.glob("trial_*/trial.json"):
        trial = json.loads(trial_file.read_text())
        if trial["status"] == "COMPLETED":
            scores[trial["trial_id"]] = trial["score"]
    return scores


def test_interrupted_search_resumes_without_losing_or_repeating_trials(tmp_path):
    args = ["search", "--max-trials", "3", "--epochs", "2", "--directory", str(tmp_path)]
    process = subprocess.Popen(
        tfnas_command(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        # A test runner started in the background inherits SIGINT ignored;
        # the search under test must see Ctrl-C as a terminal would send it.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    first_lines = []
    for line in process.stdout:
        if TRIAL_LINE.match(line):
            first_lines.append(line)
            process.send_signal(signal.SIGINT)  # Ctrl-C during the next trial
            break
    remaining_out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "run the same command again to resume" in err
    project = tmp_path / "chain-evolution-digits"
    before = _completed_scores(project)
    assert 1 <= len(before) < 3

    resumed = run(*args)
    assert resumed.returncode == 0, resumed.stderr
    assert f"({len(before)} already completed)" in resumed.stdout
    rerun_ids = {trial_id for trial_id, _ in trial_lines(resumed.stdout)}
    assert not rerun_ids & set(before), "a completed trial was run again"
    after = _completed_scores(project)
    assert len(after) == 3
    assert {k: after[k] for k in before} == before


SMALL_SPACE_ARGS = {
    "mlp": [],
    "chain": [],
    "cell": ["num_cells=3", "num_blocks=2", "filters=8"],
    "nb201": ["cells_per_stage=1", "filters=8"],
    "macro": ["init_filters=8", "head_filters=64"],
    # "mobile" is left out: the CLI treats it like every other space, and a
    # MobileNetV2-deep candidate costs 45 s here (its conformance suite and
    # supernet test build it).
}


@pytest.mark.parametrize("space", sorted(SMALL_SPACE_ARGS))
def test_search_each_space_on_digits(space, tmp_path, capsys):
    from tfnas import cli

    args = ["search", "--space", space, "--max-trials", "1", "--epochs", "1",
            "--directory", str(tmp_path)]
    for space_arg in SMALL_SPACE_ARGS[space]:
        args += ["--space-arg", space_arg]
    assert cli.main(args) == 0
    output = capsys.readouterr().out
    assert len(trial_lines(output)) == 1
    assert "Test accuracy of the best architecture" in output
    record = json.loads(
        (tmp_path / f"{space}-evolution-digits" / "best" / "architecture.json").read_text())
    assert record["space"]["name"] == space


def test_unknown_space_argument_is_a_clear_error(tmp_path, capsys):
    from tfnas import cli

    code = cli.main(["search", "--space", "nb201", "--space-arg", "depth=3",
                     "--directory", str(tmp_path)])
    assert code == 2
    assert "--space-arg for space 'nb201'" in capsys.readouterr().err


def test_weight_sharing_search_from_the_command_line(tmp_path, capsys):
    result = run("search", "--strategy", "darts", "--epochs", "1",
                 "--space-arg", "max_layers=2", "--space-arg", "filters=[4]",
                 "--space-arg", 'operations=["conv3x3","sepconv3x3"]',
                 "--directory", str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    # Keras's "`shuffle=True` was passed" came from the supernet's fit.
    assert "Warning:" not in result.stderr
    assert [trial_id for trial_id, _ in trial_lines(result.stdout)] == ["0"]
    assert ("'darts' on 'digits': a supernet for 1 epochs, then the derived architecture "
            "for 1 epochs (0 already completed)") in result.stdout
    project = tmp_path / "chain-darts-digits"
    assert (project / "architecture_probabilities.json").exists()
    assert (project / "best" / "saved_model" / "saved_model.pb").exists()

    # A stride choice changes shapes: refused before training, with the way out.
    code, err = run_here(capsys, "search", "--strategy", "darts", "--epochs", "1",
                         "--space-arg", "strides=[1,2]", "--directory", str(tmp_path / "other"))
    assert code == 2
    assert "`layer_0/stride`" in err and "strides=[1]" in err


def test_an_enas_search_says_what_it_trains(tmp_path):
    # ENAS trains each sampled path for a few batches, not the supernet for --epochs.
    result = run("search", "--strategy", "enas", "--max-trials", "2", "--epochs", "1",
                 "--space-arg", "max_layers=2", "--space-arg", "filters=[4]",
                 "--directory", str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    assert ("'enas' on 'digits': 2 paths sampled by its controller, each trained for 10 "
            "batches on the shared weights, then the derived architecture for 1 epochs"
            ) in result.stdout
