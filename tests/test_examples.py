"""The examples keep working: each runs for real with one short trial."""

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
# The examples import the tfnas of this checkout, not another installed one.
CHECKOUT_FIRST = {**os.environ, "PYTHONPATH": os.pathsep.join(
    filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


@pytest.mark.parametrize("script", ["quickstart.py", "custom_space.py",
                                    "text_classification.py"])
def test_example_runs(script, tmp_path):
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / script), "--max-trials", "2", "--epochs", "1",
         "--directory", str(tmp_path)],
        capture_output=True, text=True, timeout=300, env=CHECKOUT_FIRST,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Results summary" in result.stdout
    assert "val_accuracy=" in result.stdout
    if script == "text_classification.py":  # the final model reads raw strings
        assert result.stdout.count("positive with probability") == 3


@pytest.mark.slow
def test_distributed_example_runs(tmp_path):
    """A chief and two workers started by the documented shell script."""

    from tfnas.distributed import free_port

    environment = {k: v for k, v in os.environ.items() if not k.startswith("KERASTUNER_")}
    environment.update(PYTHON=sys.executable, KERASTUNER_ORACLE_PORT=str(free_port()))
    result = subprocess.run(
        ["bash", str(EXAMPLES / "distributed" / "local_cluster.sh"), "--max-trials", "3",
         "--epochs", "1", "--directory", str(tmp_path)],
        capture_output=True, text=True, timeout=300, env=environment,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Results summary" in result.stdout
    assert result.stdout.count("val_accuracy=") >= 3
