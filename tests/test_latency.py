"""The latency lookup table and latency-aware search from the command line."""

import json
import os

import pytest

from tfnas import spaces
from tfnas.latency import PREDICTED_LATENCY, LatencyTable
from tfnas.objectives import mnasnet_reward
from tfnas.testing import sample_architectures


def test_table_sums_measured_operations_and_round_trips(tmp_path):
    space = spaces.ChainSpace((8, 8, 1), 10, max_layers=3, filters=(8, 16))
    _, samples = sample_architectures(space, 4, seed=0)
    table = LatencyTable.measure(space, samples[:3], repeats=3)
    assert table.base_ms >= 0 and all(ms > 0 for ms in table.entries.values())
    for values in samples[:3]:
        operations = table.operations(values)
        assert len(operations) == values["num_layers"]  # one op per layer
        for index, key in enumerate(sorted(operations)):
            assert key.startswith(f"layer_{index}/op={values[f'layer_{index}/op']}@")
        assert table.predict(values) == pytest.approx(
            table.base_ms + sum(operations.values()))

    table.save(tmp_path / "table.json")
    loaded = LatencyTable.load(tmp_path / "table.json", measure_missing=False)
    assert loaded.entries == table.entries and loaded.base_ms == table.base_ms
    assert loaded.predict(samples[0]) == pytest.approx(table.predict(samples[0]))
    unseen = [v for v in samples if any(k not in table.entries
                                        for k in LatencyTable(space, repeats=1)
                                        .operations(v))]
    for values in unseen:
        with pytest.raises(KeyError, match="No latency"):
            loaded.predict(values)


def _tfnas(*args, cwd):
    """`tfnas ARGS` run from `cwd`, in this process: the command's code without a
    TensorFlow start-up (test_cli.py runs the command as a process)."""
    from tfnas import cli

    previous = os.getcwd()
    os.chdir(cwd)
    try:
        assert cli.main(list(args)) == 0
    finally:
        os.chdir(previous)


def test_latency_aware_search_from_the_command_line(tmp_path):
    _tfnas("latency-table", "--space", "chain", "--space-arg", "max_layers=2",
           "--space-arg", "filters=[8]", "--samples", "3", "--repeats", "3",
           "--output", "table.json", cwd=tmp_path)
    with open(tmp_path / "table.json") as file:
        record = json.load(file)
    assert record["space"]["name"] == "chain" and record["entries"]

    _tfnas("search", "--space", "chain", "--space-arg", "max_layers=2",
           "--space-arg", "filters=[8]", "--strategy", "controller", "--max-trials", "2",
           "--epochs", "1", "--latency-table", "table.json", "--mnasnet-target", "0.5",
           "--project-name", "lat", cwd=tmp_path)
    project = tmp_path / "tfnas_projects" / "lat"
    for name in sorted(os.listdir(project)):
        if not name.startswith("trial_"):
            continue
        with open(project / name / "trial.json") as file:
            trial = json.load(file)
        metrics = {k: v["observations"][0]["value"][0]
                   for k, v in trial["metrics"]["metrics"].items()}
        assert trial["score"] == pytest.approx(mnasnet_reward(
            metrics["val_accuracy"], metrics[PREDICTED_LATENCY], 0.5), rel=1e-5)
