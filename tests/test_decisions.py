import keras
import keras_tuner as kt
import pytest

import tfnas
from tfnas import decisions
from tfnas.spaces import ChainSpace


def _dense(units):
    return lambda: keras.layers.Dense(units)


def test_choose_op_builds_only_the_chosen_candidate():
    built = []

    def factory(name):
        def make():
            built.append(name)
            return keras.layers.Dense(3, name=name)

        return make

    hp = kt.HyperParameters()
    hp.values["op"] = "b"
    layer = tfnas.choose_op(hp, "op", {"a": factory("a"), "b": factory("b")})
    assert built == ["b"] and layer.name == "b"
    assert hp.get("op") == "b"
    assert hp.space[0].values == ["a", "b"]


def test_choose_op_default_and_validation():
    hp = kt.HyperParameters()
    layer = tfnas.choose_op(hp, "op", {"a": _dense(1), "b": _dense(2)}, default="b")
    assert layer.units == 2
    with pytest.raises(ValueError, match="`default`, expected one of"):
        tfnas.choose_op(hp, "op2", {"a": _dense(1)}, default="z")
    with pytest.raises(ValueError, match="`candidates`"):
        tfnas.choose_op(hp, "op3", {})
    with pytest.raises(ValueError, match="`candidates`"):
        tfnas.choose_op(hp, "op4", {"a": 3})
    with pytest.raises(ValueError, match="`name`"):
        tfnas.choose_op(hp, "", {"a": _dense(1)})


def _three_inputs():
    return [keras.Input((4,)) for _ in range(3)]


def test_choose_inputs_k_of_n_is_one_categorical_decision():
    hp = kt.HyperParameters()
    hp.values["skip"] = "p+c"
    inputs = _three_inputs()
    out = tfnas.choose_inputs(
        hp, "skip", inputs, n_chosen=2, merge="concat", labels=["p", "q", "c"]
    )
    assert hp.space[0].values == ["p+q", "p+c", "q+c"]
    model = keras.Model(inputs, out)
    assert model.output_shape == (None, 8)
    # Only inputs "p" (0) and "c" (2) reach the output.
    import numpy as np

    ones = [np.ones((1, 4)) * (i + 1) for i in range(3)]
    assert model.predict(ones, verbose=0).tolist() == [[1.0] * 4 + [3.0] * 4]


def test_choose_inputs_single_and_any_subset():
    hp = kt.HyperParameters()
    inputs = _three_inputs()
    assert tfnas.choose_inputs(hp, "one", inputs) is inputs[0]  # default first
    assert hp.space[0].values == ["0", "1", "2"]

    hp = kt.HyperParameters()
    assert tfnas.choose_inputs(hp, "any", inputs, n_chosen=None) is None
    assert sorted(hp.values) == ["any/0", "any/1", "any/2"]
    hp.values["any/1"] = True
    assert tfnas.choose_inputs(hp, "any", inputs, n_chosen=None) is inputs[1]


def test_add_chosen_inputs_adds_the_chosen_earlier_outputs():
    import numpy as np

    x, *sources = _three_inputs()
    hp = kt.HyperParameters()
    assert decisions.add_chosen_inputs(hp, "layer_0/skip", x, []) is x
    assert hp.values == {}  # no earlier output: no decision
    assert decisions.add_chosen_inputs(hp, "layer_2/skip", x, sources) is x  # none chosen
    assert sorted(hp.values) == ["layer_2/skip/0", "layer_2/skip/1"]
    hp.values["layer_2/skip/1"] = True
    out = decisions.add_chosen_inputs(hp, "layer_2/skip", x, sources)
    model = keras.Model([x, *sources], out)
    ones = [np.ones((1, 4)) * (i + 1) for i in range(3)]
    assert model.predict(ones, verbose=0).tolist() == [[1.0 + 3.0] * 4]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_chosen": 0}, "`n_chosen`"),
        ({"n_chosen": 4}, "`n_chosen`"),
        ({"n_chosen": True}, "`n_chosen`"),
        ({"merge": "max"}, "`merge`"),
        ({"labels": ["a", "a", "b"]}, "`labels`"),
        ({"labels": ["a+b", "c", "d"]}, "`labels`"),
    ],
)
def test_choose_inputs_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tfnas.choose_inputs(kt.HyperParameters(), "x", _three_inputs(), **kwargs)


def _stack(hp):
    inputs = keras.Input((4,))

    def block(index, x):
        units = hp.Choice(f"block_{index}/units", [2, 4])
        return keras.layers.Dense(units)(x)

    out = tfnas.repeat(hp, "depth", block, inputs, depths=[3, 1, 2])
    return keras.Model(inputs, out)


def test_repeat_declares_inner_decisions_conditionally():
    hp = kt.HyperParameters()
    hp.values.update({"depth": 2, "block_0/units": 4, "block_1/units": 2})
    model = _stack(hp)
    assert len(model.layers) == 3  # input + two dense blocks
    assert hp.space[0].values == [1, 2, 3]  # depths sorted
    assert hp.is_active("block_1/units")
    hp.values["depth"] = 1
    assert not hp.is_active("block_1/units")
    assert tfnas.Architecture.from_hyperparameters(hp).values == {
        "block_0/units": 4, "depth": 1,
    }


@pytest.mark.parametrize("depths", [[], [-1, 2], [1, 1], [1.5]])
def test_repeat_validation(depths):
    with pytest.raises(ValueError, match="`depths`"):
        tfnas.repeat(kt.HyperParameters(), "d", lambda i, x: x, keras.Input((2,)), depths)


def test_oracle_never_samples_inactive_decisions(tmp_path):
    """A real oracle explores the chain space: every trial's values hold
    exactly the decisions that its depth and operations make active."""
    space = ChainSpace((8, 8, 1), 10, max_layers=3)
    # Creating the tuner discovers every conditional decision.
    tuner = tfnas.NASTuner(space, max_trials=40, seed=1, directory=tmp_path)
    oracle = tuner.oracle
    depths_seen, pool_seen = set(), False
    for trial_id in range(40):
        values = oracle.populate_space(str(trial_id))["values"]
        depth = values["num_layers"]
        depths_seen.add(depth)
        expected = {"num_layers"}
        for index in range(depth):
            # A pooling projects to the layer's filters; only convolutions
            # have an activation.
            expected |= {f"layer_{index}/op", f"layer_{index}/stride",
                         f"layer_{index}/filters"}
            expected |= {f"layer_{index}/skip/{j}" for j in range(index)}
            if values[f"layer_{index}/op"] in ("maxpool3x3", "avgpool3x3"):
                pool_seen = True
            else:
                expected |= {f"layer_{index}/activation"}
        assert set(values) == expected, values
    assert depths_seen == {1, 2, 3} and pool_seen


def test_builder_is_looked_up_on_the_hyperparameters():
    """The supernet extension point: a HyperParameters subclass whose
    `tfnas_builder` gives the same space definition another meaning."""

    class AllCandidates(decisions.CandidateBuilder):
        def op(self, hp, name, candidates, default):
            layers = [make() for make in candidates.values()]
            return lambda x: keras.layers.Add()([layer(x) for layer in layers])

    class SupernetLikeHyperParameters(kt.HyperParameters):
        tfnas_builder = AllCandidates()

    hp = SupernetLikeHyperParameters()
    inputs = keras.Input((4,))
    out = tfnas.choose_op(hp, "op", {"a": _dense(3), "b": _dense(3)})(inputs)
    model = keras.Model(inputs, out)
    assert len([layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]) == 2
    assert decisions.builder_for(kt.HyperParameters()) is not hp.tfnas_builder


def test_activity_read_from_conditions_agrees_with_keras_tuner():
    """`moves.is_active` decides as `HyperParameters.is_active` does, on the
    nested conditions of `repeat` (depths) and op-conditional decisions, and
    every architecture `enumerate_architectures` lists is one KerasTuner
    accepts: its active decisions set, its inactive ones not."""
    from tfnas import moves

    hps = kt.HyperParameters()
    hps.values["num_layers"] = 3  # built at its deepest: every layer's decisions declared
    ChainSpace((8, 8, 1), 10, max_layers=3, filters=(8,),
               operations=("conv3x3", "maxpool3x3")).build(hps)
    space = hps.space
    assert {len(hp.conditions) for hp in space} == {0, 1, 2}
    architectures = moves.enumerate_architectures(space)
    assert architectures and len({tuple(sorted(a.items())) for a in architectures}) == len(
        architectures)
    # Layer 2's decisions are active at depth 3 only: the depth conditions are
    # both met and missed (an is_active that ignored them would list more).
    assert {a["num_layers"] for a in architectures} == {1, 2, 3}
    assert all(("layer_2/op" in a) == (a["num_layers"] == 3) for a in architectures)
    for values in architectures:
        reference = kt.HyperParameters()
        for hp in space:
            reference.merge([hp])
            if hp.name in values:
                reference.values[hp.name] = values[hp.name]
        for hp in space:
            assert moves.is_active(hp, values) == reference.is_active(hp), (hp.name, values)
            assert (hp.name in values) == reference.is_active(hp), (hp.name, values)
