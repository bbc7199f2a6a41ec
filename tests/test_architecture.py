import json
import subprocess
import sys

import keras_tuner as kt
import numpy as np
import pytest

from tfnas import Architecture


def test_json_is_canonical_and_round_trips():
    arch = Architecture({"b": 2, "a": "conv3x3", "c": 0.5, "d": True})
    assert arch.to_json() == '{"a":"conv3x3","b":2,"c":0.5,"d":true}'
    again = Architecture.from_json(arch.to_json())
    assert again == arch
    assert again.hash == arch.hash
    assert type(again.values["d"]) is bool and type(again.values["b"]) is int


def test_hash_distinguishes_types_and_values():
    assert Architecture({"x": 1}).hash != Architecture({"x": True}).hash
    assert Architecture({"x": 1}).hash != Architecture({"x": 1.0}).hash
    assert Architecture({"x": 1}).hash != Architecture({"x": 2}).hash
    assert len(Architecture({"x": 1}).hash) == 64


def test_numpy_scalars_become_plain_python():
    arch = Architecture({"i": np.int64(3), "f": np.float32(0.25), "b": np.bool_(True)})
    assert arch.values == {"b": True, "f": 0.25, "i": 3}
    assert all(type(v) in (bool, int, float) for v in arch.values.values())
    assert arch == Architecture({"i": 3, "f": 0.25, "b": True})


@pytest.mark.parametrize("bad", [[1, 2], {"k": 1}, None, float("nan"), float("inf")])
def test_rejects_values_that_are_not_plain_scalars(bad):
    with pytest.raises((TypeError, ValueError), match="decision `x`"):
        Architecture({"x": bad})


def test_rejects_non_mapping_and_bad_names():
    with pytest.raises(TypeError, match="expected a mapping"):
        Architecture([("x", 1)])
    with pytest.raises(TypeError, match="non-empty strings"):
        Architecture({"": 1})
    with pytest.raises(ValueError, match="JSON of an architecture"):
        Architecture.from_json("[1, 2]")


def test_hash_is_stable_across_processes():
    values = {"num_layers": 3, "layer_0/op": "sepconv3x3", "lr": 0.001, "skip": False}
    code = (
        "import json, sys; from tfnas.architecture import Architecture; "
        "print(Architecture(json.loads(sys.argv[1])).hash)"
    )
    # Another interpreter, with a different hash seed and insertion order.
    reordered = json.dumps(dict(reversed(list(values.items()))))
    output = subprocess.run(
        [sys.executable, "-c", code, reordered],
        capture_output=True, text=True, check=True, env={"PYTHONHASHSEED": "123"},
    ).stdout.strip()
    assert output == Architecture(values).hash


def test_hyperparameter_round_trip_keeps_only_active_values():
    hp = kt.HyperParameters()
    depth = hp.Choice("depth", [1, 2])
    with hp.conditional_scope("depth", [2]):
        hp.Choice("second", ["a", "b"])
    assert depth == 1
    arch = Architecture.from_hyperparameters(hp)
    assert arch.values == {"depth": 1}  # "second" is inactive

    rebuilt = Architecture({"depth": 2, "second": "b"}).to_hyperparameters()
    assert rebuilt.Choice("depth", [1, 2]) == 2
    with rebuilt.conditional_scope("depth", [2]):
        assert rebuilt.Choice("second", ["a", "b"]) == "b"
    assert Architecture.from_hyperparameters(rebuilt) == Architecture(
        {"depth": 2, "second": "b"}
    )


def test_summary_is_one_line_and_truncates():
    arch = Architecture({"a": 1, "b": "x" * 50})
    assert arch.summary() == "a=1 b=" + "x" * 50
    assert len(arch.summary(max_length=20)) == 20
    assert Architecture({}).summary() == "(no decisions)"
