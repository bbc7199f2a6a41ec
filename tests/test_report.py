"""Reports: trial records, rendered tables, PNG plots, `tfnas report`."""

import csv
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tfnas import pareto, plots, report

# One process computes the shared `searched_project` fixture for both files.
pytestmark = pytest.mark.xdist_group("searched_project")


def test_records_from_the_tuner_and_from_the_directory_agree(searched_project):
    from_tuner = report.trial_records(searched_project)
    from_dir = report.trial_records(searched_project.project_dir)
    strip = [{k: v for k, v in r.items() if k != "summary"} for r in from_tuner]
    assert strip == [{k: v for k, v in r.items() if k != "summary"} for r in from_dir]
    assert [r["trial_id"] for r in from_tuner] == searched_project.oracle.end_order
    for record in from_tuner:
        trial = searched_project.oracle.trials[record["trial_id"]]
        assert record["status"] == trial.status
        if trial.status == "COMPLETED":
            assert record["score"] == trial.score and record["reason"] is None
            assert record["params"] == trial.metrics.get_last_value("params")
            assert record["summary"] == searched_project.hypermodel.describe(
                record["architecture"])
        else:
            assert record["score"] is None
            assert "layer 0 must be conv3x3" in record["reason"]


def test_render_sorts_by_objective_in_every_format(searched_project):
    records = report.trial_records(searched_project)
    scores = sorted((r["score"] for r in records if r["score"] is not None), reverse=True)

    markdown = report.render(records, "val_accuracy", "max")
    rows = [line for line in markdown.splitlines() if line.startswith("| ")][1:]
    assert len(rows) == len(records)
    assert [float(row.split(" | ")[2]) for row in rows[:len(scores)]] == pytest.approx(
        scores, abs=1e-4)
    assert all("FAILED" in row for row in rows[len(scores):])
    best = report.ranked(records, "max")[0]
    assert f"Best architecture: trial {best['trial_id']}" in markdown
    assert json.dumps(best["architecture"], indent=2, sort_keys=True) in markdown

    parsed = list(csv.DictReader(io.StringIO(report.render(records, "val_accuracy", "max",
                                                           "csv"))))
    assert [row["trial_id"] for row in parsed] == [r["trial_id"] for r in
                                                   report.ranked(records, "max")]
    assert json.loads(parsed[0]["architecture"]) == best["architecture"]

    as_json = json.loads(report.render(records, "val_accuracy", "max", "json"))
    assert as_json["trials"][0]["trial_id"] == best["trial_id"]

    with pytest.raises(ValueError, match="`format`"):
        report.render(records, "val_accuracy", "max", "html")


def _check_png(path):
    with open(path, "rb") as file:
        image = tf.io.decode_png(file.read()).numpy()
    assert image.shape[0] > 200 and image.shape[1] > 200
    colours = np.unique(image.reshape(-1, image.shape[-1]), axis=0)
    assert len(colours) > 20, f"{path} looks blank"


def test_plots_are_real_images(searched_project, tmp_path):
    written = report.write_plots(searched_project, tmp_path)
    assert set(written) == {"best_so_far", "val_accuracy_vs_params",
                            "val_accuracy_vs_flops", "val_accuracy_vs_latency_ms",
                            "best_architecture"}
    for path in written.values():
        _check_png(path)


def test_trials_dataframe_needs_pandas_only_when_called(searched_project):
    try:
        import pandas  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pip install pandas"):
            report.trials_dataframe(searched_project)
    else:
        frame = report.trials_dataframe(searched_project)
        assert len(frame) == len(searched_project.oracle.trials)


def test_cli_report_prints_and_plots(searched_project, tmp_path, capsys):
    from tfnas import cli

    tfnas = os.path.join(os.path.dirname(sys.executable), "tfnas")
    result = subprocess.run(
        [tfnas, "report", searched_project.project_dir, "--format", "csv",
         "--plots", str(tmp_path / "plots")],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == len(searched_project.oracle.trials)
    # The test space is not a registered one: no diagram from the directory.
    assert sorted(os.listdir(tmp_path / "plots")) == [
        "best_so_far.png", "val_accuracy_vs_flops.png", "val_accuracy_vs_latency_ms.png",
        "val_accuracy_vs_params.png"]

    # A refusal, in this process: one TensorFlow start-up less.
    assert cli.main(["report", str(tmp_path / "nothing")]) == 2
    assert "not a tfnas project directory" in capsys.readouterr().err


def _brute_force_front(points, directions):
    signs = [1 if d == "min" else -1 for d in directions]
    front = []
    for i, p in enumerate(points):
        dominated = False
        for q in points:
            no_worse = all(s * a <= s * b for s, a, b in zip(signs, q, p))
            better = any(s * a < s * b for s, a, b in zip(signs, q, p))
            dominated |= no_worse and better
        if not dominated:
            front.append(i)
    return front


@pytest.mark.parametrize("directions", [("min", "max"), ("max", "max"),
                                        ("min", "min", "max")])
def test_non_dominated_matches_brute_force(directions):
    rng = np.random.default_rng(0)
    for _ in range(20):
        # Few distinct values, so ties and duplicates occur.
        points = rng.integers(0, 5, size=(30, len(directions))).tolist()
        assert pareto.non_dominated(points, directions) == _brute_force_front(
            points, directions)


def test_non_dominated_on_a_known_front():
    points = [(1, 0.90), (2, 0.95), (3, 0.94), (1, 0.85), (4, 0.99), (2, 0.95)]
    assert pareto.non_dominated(points, ["min", "max"]) == [0, 1, 4, 5]
    with pytest.raises(ValueError, match="directions"):
        pareto.non_dominated(points, ["min", "maximize"])


def test_running_best():
    assert plots.running_best([0.5, None, 0.4, 0.7, 0.6], "max") == [
        0.5, 0.5, 0.5, 0.7, 0.7]
    assert plots.running_best([None, 3, 1, 2], "min") == [None, 3, 1, 1]
    assert plots.running_best([], "max") == []
