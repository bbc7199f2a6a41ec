"""`tfnas table`: enumeration, training every architecture, resuming, workers."""

import csv
import json
import os
import signal
import subprocess
import sys

import keras_tuner as kt
import pytest

from tests.waiting import wait_for
from tfnas import spaces
from tfnas.architecture import Architecture
from tfnas.bench import journal, tables
from tfnas.bench import ground_truth

# A chain space of 4 architectures: conv3x3 or conv5x5, 4 or 8 filters, one layer.
TINY_ARGS = {"operations": ["conv3x3", "conv5x5"], "filters": [4, 8],
             "activations": ["relu"], "strides": [1], "skips": False, "max_layers": 1}


def tiny_cli_args(output, seeds=1, workers=1, space_args=TINY_ARGS):
    args = ["table", "--space", "chain", "--seeds", str(seeds), "--epochs", "1",
            "--batch-size", "64", "--workers", str(workers), "--output", str(output)]
    for key, value in space_args.items():
        args += ["--space-arg", f"{key}={json.dumps(value)}"]
    return args


def tfnas_process(args, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "tfnas", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"}, **kwargs)


def run_tfnas(args, timeout=900):
    process = tfnas_process(args)
    output, _ = process.communicate(timeout=timeout)
    return process.returncode, output


def read_rows(path):
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def raw_journal_pairs(path):
    """(arch, seed) of every complete line, duplicates kept."""
    pairs = []
    with open(path) as file:
        for line in file:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            pairs.append((record["arch"], record["seed"]))
    return pairs


# Enumeration.


def test_enumeration_is_the_space_with_conditional_decisions():
    space = spaces.ChainSpace((8, 8, 1), 10, operations=("conv3x3", "maxpool3x3"),
                              filters=(4, 8), activations=("relu",), strides=(1,),
                              skips=True, min_layers=1, max_layers=2)
    architectures = ground_truth.enumerate_space(space)
    # Per layer: (conv3x3, maxpool3x3) x 2 widths; the second may skip from the first.
    assert len(architectures) == space.size() == 4 + 4 * 4 * 2
    assert len({Architecture(v).to_json() for v in architectures}) == 36
    for values in architectures:
        depth = values["num_layers"]
        for index in range(2):
            active = index < depth
            assert (f"layer_{index}/op" in values) == active, values
            conv = active and values[f"layer_{index}/op"] == "conv3x3"
            assert (f"layer_{index}/activation" in values) == conv, values
        assert ("layer_1/skip/0" in values) == (depth == 2), values
        # Building the architecture declares exactly these active decisions.
        hp = kt.HyperParameters()
        hp.values.update(values)
        space.build(hp)
        active = {h.name: hp.values[h.name] for h in hp.space if hp.is_active(h)}
        assert active == values


def test_a_space_too_large_is_refused_with_its_size_and_the_way_out():
    space = spaces.ChainSpace((8, 8, 1), 10)
    with pytest.raises(ground_truth.SpaceTooLargeError) as error:
        ground_truth.enumerate_space(space, limit=1000)
    message = str(error.value)
    assert f"{space.size():,}" in message and "--space-arg" in message and "--limit" in message


def test_cli_errors_are_one_line(tmp_path, capsys):
    from tfnas import cli

    # In this process: refusals come before any work (`tfnas table` as a
    # process is run by the tests below).
    def refusal(*args):
        assert cli.main(["table", *args]) == 2
        captured = capsys.readouterr()
        assert captured.out == "" and captured.err.count("\n") == 1, captured
        return captured.err

    output = refusal("--space-arg", "max_layers=9", "--output", str(tmp_path / "big.csv"))
    assert "tfnas: error: the space chain has" in output and "--limit" in output
    output = refusal("--space-arg", "bogus=1", "--output", str(tmp_path / "t.csv"))
    assert "tfnas: error: --space-arg for space 'chain'" in output
    output = refusal("--output", str(tmp_path / "t.json"))
    assert "expected a path ending in .csv" in output
    assert not os.listdir(tmp_path)  # nothing written on a refused command


# The journal.


def test_journal_skips_a_cut_line_and_keeps_the_first_record_of_a_run(tmp_path):
    path = tmp_path / "nested" / "t.runs.jsonl"
    journal.append(path, {"arch": "a", "seed": 0, "val_acc": 0.5})
    with open(path, "a") as file:
        file.write('{"arch": "b", "seed": 0, "val')  # a write cut by a kill
    journal.append(path, {"arch": "a", "seed": 1, "val_acc": 0.6})
    journal.append(path, {"arch": "a", "seed": 0, "val_acc": 0.9})
    records = journal.read(path)
    assert [(r["arch"], r["seed"], r["val_acc"]) for r in records] == [
        ("a", 0, 0.5), ("a", 1, 0.6)]


# Training tables (real training: slow).


@pytest.fixture(scope="module")
def tiny_table(tmp_path_factory):
    """The tiny space's table, 2 seeds, 1 epoch, trained in this process (its
    tests share an xdist group, so that one xdist worker trains it once)."""
    path = tmp_path_factory.mktemp("table") / "sub" / "tiny.csv"
    result = ground_truth.build_table(str(path), space_args=TINY_ARGS, seeds=[0, 1],
                                      epochs=1, batch_size=64, progress=None)
    assert result == {"rows": 4, "architectures": 4, "runs": 8, "failed": 0,
                      "path": str(path)}
    return path


@pytest.mark.slow
@pytest.mark.xdist_group("tiny_table")
def test_table_rows_round_trip_through_bench(tiny_table, capsys):
    from tfnas import cli

    rows = read_rows(tiny_table)
    assert len(rows) == 4
    for row in rows:
        for column in ("val_acc[0]", "val_acc[1]", "test_acc[0]", "test_acc[1]"):
            assert 0.0 <= float(row[column]) <= 1.0
        mean = (float(row["test_acc[0]"]) + float(row["test_acc[1]"])) / 2
        assert float(row["test_acc_mean"]) == pytest.approx(mean, abs=1e-5)
        assert float(row["params"]) > 0 and float(row["flops"]) > 0
        assert float(row["latency_ms"]) > 0 and float(row["train_time_s"]) > 0
    # Every architecture a strategy proposes is found in the table.
    table = tables.load_ground_truth(str(tiny_table))
    space = table.space
    for values in ground_truth.enumerate_space(space):
        assert table.lookup(values, "test_acc_mean") == pytest.approx(
            float(next(r for r in rows if r["arch"] == table.key(values))["test_acc_mean"]))
    assert cli.main(["bench", "--table", str(tiny_table), "--budget", "4",
                     "--seeds", "2", "--format", "json"]) == 0
    records = json.loads(capsys.readouterr().out)
    best = max(float(r["test_acc_mean"]) for r in rows)
    assert {r["strategy"] for r in records} == {"random", "evolution", "local"}
    for record in records:  # 4 queries of a 4-architecture table: every row was read
        assert record["seeds"] == 2 and record["regret"] == pytest.approx(
            best - record["mean"])


@pytest.mark.slow
@pytest.mark.xdist_group("tiny_table")
def test_a_rerun_of_a_finished_table_trains_nothing(tiny_table):
    before = journal.read(ground_truth.journal_path(str(tiny_table)))
    result = ground_truth.build_table(str(tiny_table), space_args=TINY_ARGS, seeds=[0, 1],
                                      epochs=1, batch_size=64, progress=None)
    assert result["rows"] == 4
    assert journal.read(ground_truth.journal_path(str(tiny_table))) == before


@pytest.mark.slow
@pytest.mark.xdist_group("tiny_table")
def test_other_settings_are_refused_on_resume(tiny_table):
    with pytest.raises(ValueError, match="epochs: 1 -> 2"):
        ground_truth.build_table(str(tiny_table), space_args=TINY_ARGS, seeds=[0, 1],
                                 epochs=2, batch_size=64, progress=None)


@pytest.mark.slow
def test_resumes_after_a_kill_without_losing_or_repeating_runs(tmp_path):
    output = tmp_path / "sandbox" / "tiny.csv"
    runs_file = ground_truth.journal_path(str(output))
    process = tfnas_process(tiny_cli_args(output, seeds=2))
    try:
        wait_for(lambda: os.path.exists(runs_file) and len(journal.read(runs_file)) >= 2,
                 "two finished runs", timeout=600)
    finally:
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=60)
    finished = journal.read(runs_file)
    assert 2 <= len(finished) < 8
    code, output_text = run_tfnas(tiny_cli_args(output, seeds=2))
    assert code == 0, output_text
    assert f"{len(finished)} already finished, {8 - len(finished)} to train" in output_text
    pairs = raw_journal_pairs(runs_file)
    assert len(pairs) == len(set(pairs)) == 8  # nothing repeated, nothing lost
    after = journal.read(runs_file)
    assert after[:len(finished)] == finished  # finished runs were not trained again
    assert len(read_rows(output)) == 4


@pytest.mark.slow
@pytest.mark.xdist_group("tiny_table")
def test_two_workers_give_the_rows_of_one(tiny_table, tmp_path):
    output = tmp_path / "sandbox" / "tiny.csv"
    process = tfnas_process(tiny_cli_args(output, seeds=2, workers=2))
    text, _ = process.communicate(timeout=900)
    assert process.returncode == 0, text
    pairs = raw_journal_pairs(ground_truth.journal_path(str(output)))
    assert len(pairs) == len(set(pairs)) == 8
    records = journal.read(ground_truth.journal_path(str(output)))
    assert process.pid not in {r["pid"] for r in records}  # trained by worker processes
    assert {r["arch"] for r in read_rows(output)} == {r["arch"] for r in read_rows(tiny_table)}
    assert sorted(pairs) == sorted(raw_journal_pairs(
        ground_truth.journal_path(str(tiny_table))))


# The packaged tables.


@pytest.mark.parametrize("name", ["digits", "mnist1d"])
def test_packaged_tables_hold_every_architecture_of_their_space(name):
    table = tables.load_ground_truth(name)
    keys = {table.key(values) for values in ground_truth.enumerate_space(table.space)}
    assert keys == set(table.rows)
    accuracies = [row["test_acc_mean"] for row in table.rows.values()]
    assert max(accuracies) - min(accuracies) > 0.3  # architectures differ: a useful truth


@pytest.mark.parametrize("name", ["digits", "mnist1d"])
def test_bench_runs_the_strategies_on_a_packaged_table_by_name(name, capsys):
    from tfnas import cli

    assert cli.main(["bench", "--table", name, "--budget", "5", "--seeds", "2",
                     "--format", "json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert {r["strategy"] for r in records} == {"random", "evolution", "local"}
    assert all(r["seeds"] == 2 and r["regret"] >= 0 for r in records)
