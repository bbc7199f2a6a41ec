import json

import pytest

from tfnas import Architecture, bench, cli, spaces
from tfnas.spaces import nbmacro

from tests.tables import write_nb201_table


def test_packaged_nas_bench_macro_table():
    table = bench.load_nas_bench_macro()
    assert len(table.rows) == 6_561 and table.space_name == "macro"
    assert table.optimum() == pytest.approx(93.127, abs=1e-3)
    values = nbmacro.from_code("02012100")
    assert table.key(values) == "02012100"
    assert table.lookup(values, "test_acc[0]") == pytest.approx(89.47, abs=1e-2)
    assert table.lookup(values, "mean_acc") == pytest.approx(89.1967, abs=1e-3)
    with pytest.raises(KeyError, match="column 'nope'"):
        table.lookup(values, "nope")


def test_run_records_the_best_so_far_curve():
    table = bench.load_nas_bench_macro()
    from tfnas import oracles
    import keras_tuner as kt

    oracle = oracles.get("random", kt.Objective("signal", "max"), 30, seed=1)
    result = bench.run(oracle, table)
    assert len(result.best_so_far) == 30
    signals = [table.lookup(nbmacro.from_code(key), "test_acc[0]") for key in result.picks]
    assert signals == sorted(signals)  # the pick's signal never gets worse
    assert result.best_so_far[-1] == table.rows[result.picks[-1]]["mean_acc"]


def test_user_csv_table_over_nas_bench_201(tmp_path):
    path = write_nb201_table(tmp_path / "nb201.csv", signal="val", final="test",
                             final_offset=0.5)
    table = bench.load_table(path, "nb201", signal="val", final="test")
    assert len(table.rows) == 15_625 and table.optimum() == 18.5
    records = bench.compare(table, ["random", "local"], budgets=[10, 150], seeds=range(3))
    by_key = {(r["strategy"], r["budget"]): r for r in records}
    for r in records:
        assert r["seeds"] == 3 and r["regret"] >= 0
    # Local search climbs this smooth table to its optimum.
    assert by_key[("local", 150)]["regret"] == 0
    assert by_key[("local", 150)]["mean"] >= by_key[("local", 10)]["mean"]


def test_user_json_table_keyed_by_architecture_json(tmp_path):
    space = spaces.MLPSpace((32, 32, 3), 10, max_layers=1, units=(8, 16),
                            activations=("relu",))
    rows = {}
    for units in (8, 16):
        values = {"num_layers": 1, "layer_0/units": units, "layer_0/activation": "relu"}
        rows[Architecture(values).to_json()] = {"signal": units, "final": units / 10}
    path = tmp_path / "t.json"
    path.write_text(json.dumps(rows))
    table = bench.load_table(str(path), space)
    assert table.optimum() == 1.6
    (record,) = bench.compare(table, ["random"], budgets=[2], seeds=[0])
    assert record["mean"] == 1.6 and record["regret"] == 0


def test_load_table_errors(tmp_path):
    (tmp_path / "t.txt").write_text("x")
    with pytest.raises(ValueError, match=".csv or .json"):
        bench.load_table(str(tmp_path / "t.txt"), "nb201")
    (tmp_path / "t.json").write_text(json.dumps([{"name": "a", "signal": 1, "final": 1}]))
    with pytest.raises(ValueError, match="no key column `arch`"):
        bench.load_table(str(tmp_path / "t.json"), "nb201")
    (tmp_path / "u.json").write_text(json.dumps({"a": {"acc": 1}}))
    with pytest.raises(KeyError, match="column 'signal'"):
        bench.load_table(str(tmp_path / "u.json"), "nb201")


def test_bench_command_prints_json_records(capsys):
    code = cli.main(["bench", "--strategies", "random,evolution", "--budget", "10", "20",
                     "--seeds", "2", "--format", "json"])
    assert code == 0
    records = json.loads(capsys.readouterr().out)
    assert [(r["strategy"], r["budget"]) for r in records] == [
        ("random", 10), ("random", 20), ("evolution", 10), ("evolution", 20)]
    assert all(set(r) == {"strategy", "budget", "seeds", "mean", "std", "median", "regret"}
               for r in records)


def test_bench_command_table_and_errors(capsys, tmp_path):
    assert cli.main(["bench", "--strategies", "local,controller,ppo", "--budget", "5",
                     "--seeds", "1"]) == 0
    out = capsys.readouterr().out
    assert "optimum of the table: 93.127" in out
    assert all(name in out for name in ("local", "controller", "ppo"))
    assert cli.main(["bench", "--strategies", "bogus"]) == 2
    assert "--strategies" in capsys.readouterr().err
    assert cli.main(["bench", "--table", str(tmp_path / "x.csv")]) == 2
    assert "--space is required" in capsys.readouterr().err


def test_numeric_looking_keys_stay_strings(tmp_path):
    """NAS-Bench-Macro codes look like numbers: `00000000` and `10202202` must
    not become `0.0` and `10202202.0`."""
    codes = ["00000000", "10202202", "22222222"]
    path = tmp_path / "tables" / "macro.csv"
    path.parent.mkdir()
    path.write_text("arch,signal,final\n" + "".join(
        f"{code},{i},{i + 0.5}\n" for i, code in enumerate(codes)))
    table = bench.load_table(str(path), "macro")
    assert sorted(table.rows) == codes
    assert table.lookup(nbmacro.from_code("00000000"), "final") == 0.5
    assert table.lookup(nbmacro.from_code("10202202"), "signal") == 1.0


@pytest.mark.parametrize("cell, shown", [("nan", "'nan'"), ("n/a", "'n/a'"), ("", "''")])
def test_every_row_is_validated_up_front(tmp_path, cell, shown):
    path = tmp_path / "t.csv"
    path.write_text(f"arch,signal,final\n00000000,1,1\n10202202,{cell},2\n")
    with pytest.raises(ValueError) as caught:
        bench.load_table(str(path), "macro")
    message = str(caught.value)
    assert str(path) in message and "row '10202202'" in message
    assert "column 'signal'" in message and shown in message


def test_duplicate_keys_are_an_error(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("arch,signal,final\n00000000,1,1\n00000001,2,2\n00000000,3,3\n")
    with pytest.raises(ValueError, match="'00000000' appears twice"):
        bench.load_table(str(path), "macro")
    (tmp_path / "t.json").write_text('{"00000000": {"signal": 1, "final": 1}, '
                                     '"00000000": {"signal": 2, "final": 2}}')
    with pytest.raises(ValueError, match="duplicate key '00000000'"):
        bench.load_table(str(tmp_path / "t.json"), "macro")
    (tmp_path / "l.json").write_text(json.dumps(
        [{"arch": "00000000", "signal": 1, "final": 1},
         {"arch": "00000000", "signal": 2, "final": 2}]))
    with pytest.raises(ValueError, match="appears twice"):
        bench.load_table(str(tmp_path / "l.json"), "macro")


def test_bench_command_names_the_bad_row(capsys, tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("arch,signal,final\n00000000,1,1\n00000001,2,nan\n")
    assert cli.main(["bench", "--table", str(path), "--space", "macro"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tfnas: error: ") and err.count("\n") == 1
    assert "row '00000001', column 'final'" in err
