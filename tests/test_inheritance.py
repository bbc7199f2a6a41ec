"""Weight inheritance (tfnas.inheritance): matching layers between builds,
function-preserving insertions, and a real search that inherits across a
restart."""

import json
import os
import warnings

import keras
import keras_tuner as kt
import numpy as np
import pytest
import tensorflow as tf

import tfnas
from tfnas import child_schedule, inheritance, net2net, oracles
from tfnas.spaces import (ChainSpace, MLPSpace, MobileSpace, SequenceSpace,
                          TransformerSpace)

OPERATIONS = ("conv3x3", "sepconv3x3", "maxpool3x3")
PARENT = {"num_layers": 2,
          "layer_0/stride": 1, "layer_0/op": "conv3x3", "layer_0/filters": 8,
          "layer_0/activation": "relu",
          "layer_1/stride": 1, "layer_1/op": "conv3x3", "layer_1/filters": 16,
          "layer_1/activation": "relu", "layer_1/skip/0": False}


def chain_space():
    return ChainSpace((8, 8, 1), 10, max_layers=3, filters=(8, 16), operations=OPERATIONS)


def build(space, values):
    """A candidate built as KerasTuner builds one: in a fresh session."""
    hp = kt.HyperParameters()
    hp.values.update(values)
    keras.backend.clear_session()
    return space.build(hp)


def layer_weights(model, name):
    return [np.asarray(w) for w in model.get_layer(name).weights]


def same(first, second):
    return len(first) == len(second) and all(
        a.shape == b.shape and np.array_equal(a, b) for a, b in zip(first, second))


@pytest.fixture(scope="module")
def inputs(digits):
    return np.concatenate([x for x, _ in digits.validation])


@pytest.fixture(scope="module")
def trained_parent(digits, inputs):
    """The parent, trained one epoch, as a donor; and its outputs on real inputs."""
    model = build(chain_space(), PARENT)
    model.fit(digits.train, epochs=1, verbose=0)
    weights = inheritance.weights_by_key(model)
    return inheritance.Donor("0", weights, 1), model.predict(inputs, verbose=0)


def test_unchanged_layers_inherit_and_changed_ones_start_fresh(trained_parent):
    donor, _ = trained_parent
    child_values = {**PARENT, "layer_1/op": "sepconv3x3"}  # layer 1's operation mutates
    child = build(chain_space(), child_values)
    fresh_layer_1 = layer_weights(child, "layer_1.sepconv3x3")
    report = inheritance.inherit(child, donor)

    assert same(layer_weights(child, "layer_0.conv3x3"), donor.weights["layer_0.conv3x3"])
    assert same(layer_weights(child, "head.dense"), donor.weights["head.dense"])  # 16 -> 10 still
    assert same(layer_weights(child, "layer_1.sepconv3x3"), fresh_layer_1)
    assert report["fresh_layers"] == 1 and report["morphed_layers"] == 0
    assert 0 < report["inherited_params"] < 1


def test_a_narrower_layer_keeps_the_parents_most_important_channels(trained_parent):
    """Narrowing layer 1 (16 -> 8 filters) keeps the parent's 8 channels
    whose outgoing weights (the head's rows, after global pooling) have the
    largest L1 norm; the head keeps those channels' rows."""
    donor, _ = trained_parent
    narrower = build(chain_space(), {**PARENT, "layer_1/filters": 8})
    report = inheritance.inherit(narrower, donor)
    assert report["pruned_layers"] == 2 and report["fresh_layers"] == 0
    assert report["morphed_layers"] == 0
    parent_head = donor.weights["head.dense"]
    importance = np.abs(parent_head[0]).sum(axis=1)  # (16 channels, 10 classes)
    kept = np.sort(np.argsort(-importance)[:8])
    assert len(set(importance[kept])) == 8 and min(importance[kept]) > max(
        np.delete(importance, kept))
    parent_conv, *parent_norm = donor.weights["layer_1.conv3x3"]
    conv, *norm = layer_weights(narrower, "layer_1.conv3x3")
    np.testing.assert_array_equal(conv, parent_conv[..., kept])
    for child_value, parent_value in zip(norm, parent_norm):
        np.testing.assert_array_equal(child_value, parent_value[kept])
    head_kernel, head_bias = layer_weights(narrower, "head.dense")
    np.testing.assert_array_equal(head_kernel, parent_head[0][kept])
    np.testing.assert_array_equal(head_bias, parent_head[1])
    assert same(layer_weights(narrower, "layer_0.conv3x3"), donor.weights["layer_0.conv3x3"])


def test_a_narrower_layer_feeding_a_convolution_keeps_its_most_used_channels(digits):
    """Layer 0 narrows 16 -> 8: its kept channels are those whose incoming
    rows in layer 1's kernel have the largest L1 norm, and layer 1 keeps
    exactly those rows."""
    values = {**PARENT, "layer_0/filters": 16}
    parent = build(chain_space(), values)
    parent.fit(digits.train, epochs=1, verbose=0)
    donor = inheritance.Donor("0", inheritance.weights_by_key(parent), 1)
    child = build(chain_space(), {**values, "layer_0/filters": 8})
    report = inheritance.inherit(child, donor)
    assert report["pruned_layers"] == 2 and report["fresh_layers"] == 0
    consumer = donor.weights["layer_1.conv3x3"][0]  # (3, 3, 16 in, 16 out)
    kept = np.sort(np.argsort(-np.abs(consumer).sum(axis=(0, 1, 3)))[:8])
    np.testing.assert_array_equal(layer_weights(child, "layer_0.conv3x3")[0],
                                  donor.weights["layer_0.conv3x3"][0][..., kept])
    np.testing.assert_array_equal(layer_weights(child, "layer_1.conv3x3")[0],
                                  consumer[:, :, kept, :])
    assert same(layer_weights(child, "head.dense"), donor.weights["head.dense"])


def test_inherit_sets_the_childs_fewer_epochs(trained_parent):
    donor, _ = trained_parent
    user_callback = keras.callbacks.History()
    fit_kwargs = {"epochs": 6, "initial_epoch": 2, "callbacks": [user_callback]}
    inheritance.inherit(build(chain_space(), PARENT), donor, fit_kwargs)
    schedule = fit_kwargs.pop("callbacks")
    assert fit_kwargs == {"epochs": 1, "initial_epoch": 0}
    assert schedule[0] is user_callback and isinstance(schedule[1], child_schedule.ChildSchedule)
    untouched = {"epochs": 6}
    assert inheritance.inherit(build(chain_space(), PARENT), None, untouched) == {}
    assert untouched == {"epochs": 6}


@pytest.fixture(scope="module", params=OPERATIONS)
def narrow_parent(request, digits, inputs):
    """A trained parent whose first layer (8 filters) feeds a layer of each
    kind: a convolution, a separable convolution, a pooling's projection."""
    values = {**PARENT, "layer_0/filters": 8, "layer_1/op": request.param,
              "layer_1/filters": 8}
    if request.param not in ("conv3x3", "sepconv3x3"):
        del values["layer_1/activation"]
    model = build(chain_space(), values)
    model.fit(digits.train, epochs=1, verbose=0)
    donor = inheritance.Donor("0", inheritance.weights_by_key(model), 1,
                              convolutions=inheritance.conv_configs(model))
    return values, donor, model.predict(inputs, verbose=0)


@pytest.mark.parametrize("widened", ["layer_0", "layer_1"])
def test_a_wider_layer_preserves_the_parents_outputs(narrow_parent, inputs, widened):
    """Net2WiderNet: filters 8 -> 16 in layer 0 (its consumer is layer 1, of
    each kind) or layer 1 (its consumer is the head, after global pooling)."""
    values, donor, parent_outputs = narrow_parent
    child = build(chain_space(), {**values, f"{widened}/filters": 16})
    assert not np.allclose(child.predict(inputs, verbose=0), parent_outputs, atol=1e-3)
    report = inheritance.inherit(child, donor, seed="7")
    assert report["morphed_layers"] == 2 and report["fresh_layers"] == 0
    np.testing.assert_allclose(child.predict(inputs, verbose=0), parent_outputs, atol=1e-5)

    # The copies' shares of a parent channel's outgoing weights differ (so
    # their gradients differ): no two copies' incoming rows in the consumer match.
    names = [layer.name for layer in child.layers]
    consumer = next(child.layers[i] for i in range(names.index(
        next(n for n in names if n.startswith(widened + "."))) + 1, len(names))
        if child.layers[i].weights)
    summing = net2net.primitives(consumer)[0]
    kernel = np.asarray(summing.pointwise_kernel if hasattr(summing, "pointwise_kernel")
                        else summing.kernel)
    rows = kernel.reshape(-1, *kernel.shape[-2:]).sum(axis=0)[8:]  # the 8 extra channels
    assert not any(np.allclose(rows[i], rows[j]) for i in range(8) for j in range(i))


def test_a_narrower_inserted_layer_keeps_the_main_channels_and_a_wider_one_is_widened(
        narrow_parent, inputs):
    values, donor, parent_outputs = narrow_parent
    deeper = {**values, "num_layers": 3, "layer_2/stride": 1, "layer_2/op": "conv3x3",
              "layer_2/activation": "relu", "layer_2/skip/0": False,
              "layer_2/skip/1": False}
    child = build(chain_space(), {**deeper, "layer_2/filters": 16})  # 8 -> 16 channels
    report = inheritance.inherit(child, donor)
    assert report["morphed_layers"] == 2 and report["fresh_layers"] == 0  # it and the head
    if values["layer_1/op"] != "maxpool3x3":  # a projection's output can be negative
        np.testing.assert_allclose(child.predict(inputs, verbose=0), parent_outputs,
                                   atol=1e-5)
    wider_parent = {**values, "layer_1/filters": 16}
    narrowing = {**deeper, **{k: v for k, v in wider_parent.items() if k.startswith("layer_1")},
                 "layer_2/filters": 8}
    keras.backend.clear_session()
    parent = build(chain_space(), wider_parent)
    wide_donor = inheritance.Donor("1", inheritance.weights_by_key(parent), 1)
    child = build(chain_space(), narrowing)
    report = inheritance.inherit(child, wide_donor)
    # The narrowing layer passes on the parent's 8 channels that the head
    # weighs most, and the head keeps their rows.
    assert report["pruned_layers"] == 2 and report["fresh_layers"] == 0
    head_kernel = wide_donor.weights["head.dense"][0]
    kept = np.sort(np.argsort(-np.abs(head_kernel).sum(axis=1))[:8])
    np.testing.assert_array_equal(layer_weights(child, "head.dense")[0], head_kernel[kept])
    inserted = layer_weights(child, "layer_2.conv3x3")[0]
    np.testing.assert_array_equal(inserted[1, 1][kept], np.eye(8))
    assert np.count_nonzero(inserted) == 8


def test_deeper_chain_preserves_the_parents_outputs(trained_parent, inputs):
    donor, parent_outputs = trained_parent
    child = build(chain_space(), {
        **PARENT, "num_layers": 3, "layer_2/stride": 1, "layer_2/op": "conv3x3",
        "layer_2/filters": 16, "layer_2/activation": "relu",
        "layer_2/skip/0": False, "layer_2/skip/1": False})
    assert not np.allclose(child.predict(inputs, verbose=0), parent_outputs, atol=1e-3)
    report = inheritance.inherit(child, donor)
    assert report["morphed_layers"] == 1 and report["fresh_layers"] == 0
    np.testing.assert_allclose(child.predict(inputs, verbose=0), parent_outputs, atol=1e-5)


def test_switched_on_skip_with_a_projection_adds_zero(trained_parent, inputs):
    donor, parent_outputs = trained_parent
    child = build(chain_space(), {**PARENT, "layer_1/skip/0": True})  # 8 -> 16 channels
    report = inheritance.inherit(child, donor)
    assert report == {"inherited_params": pytest.approx(report["inherited_params"]),
                      "morphed_layers": 1.0, "pruned_layers": 0.0, "fresh_layers": 0.0,
                      "inherit_load_s": 0.0, "inherit_copy_s": report["inherit_copy_s"]}
    np.testing.assert_allclose(child.predict(inputs, verbose=0), parent_outputs, atol=1e-5)
    # It still learns: a zero scale has a non-zero gradient.
    child.fit(inputs[:64], np.zeros(64, "int32"), epochs=1, verbose=0)
    gamma = child.get_layer("layer_1_skip_0.shortcut").project.norm.gamma
    assert np.any(np.asarray(gamma) != 0)


def test_a_grown_kernel_preserves_the_parents_outputs(digits, inputs):
    space = ChainSpace((8, 8, 1), 10, max_layers=3, filters=(8, 16),
                       operations=OPERATIONS + ("conv5x5",))
    parent = build(space, PARENT)
    parent.fit(digits.train, epochs=1, verbose=0)
    expected = parent.predict(inputs, verbose=0)
    donor = inheritance.Donor("0", inheritance.weights_by_key(parent), 1,
                              convolutions=inheritance.conv_configs(parent))
    child = build(space, {**PARENT, "layer_1/op": "conv5x5"})  # conv3x3 -> conv5x5
    report = inheritance.inherit(child, donor)
    assert report["morphed_layers"] == 1 and report["fresh_layers"] == 0
    np.testing.assert_allclose(child.predict(inputs, verbose=0), expected, atol=1e-5)

    # Another kind (separable) cannot be resized: fresh.
    other_kind = build(space, {**PARENT, "layer_1/op": "sepconv3x3"})
    assert inheritance.inherit(other_kind, donor)["fresh_layers"] == 1


def test_a_smaller_kernel_starts_from_the_centre_of_the_parents(digits):
    space = ChainSpace((8, 8, 1), 10, max_layers=3, filters=(8, 16),
                       operations=OPERATIONS + ("conv5x5",))
    parent = build(space, {**PARENT, "layer_0/op": "conv5x5"})
    parent.fit(digits.train, epochs=1, verbose=0)
    donor = inheritance.Donor("1", inheritance.weights_by_key(parent), 1,
                              convolutions=inheritance.conv_configs(parent))
    child = build(space, PARENT)  # conv5x5 -> conv3x3
    report = inheritance.inherit(child, donor)
    assert report["pruned_layers"] == 1 and report["fresh_layers"] == 0
    kernel, *norm = donor.weights["layer_0.conv5x5"]
    child_kernel, *child_norm = layer_weights(child, "layer_0.conv3x3")
    np.testing.assert_array_equal(child_kernel, kernel[1:4, 1:4])
    assert same(child_norm, norm)
    assert same(layer_weights(child, "layer_1.conv3x3"), donor.weights["layer_1.conv3x3"])


def test_a_new_layer_that_cannot_be_the_identity_starts_fresh(trained_parent, inputs):
    donor, parent_outputs = trained_parent
    child = build(chain_space(), {  # stride 2: the resolution changes
        **PARENT, "num_layers": 3, "layer_2/stride": 2, "layer_2/op": "conv3x3",
        "layer_2/filters": 16, "layer_2/activation": "relu",
        "layer_2/skip/0": False, "layer_2/skip/1": False})
    report = inheritance.inherit(child, donor)
    assert report["morphed_layers"] == 0 and report["fresh_layers"] == 1
    assert not np.allclose(child.predict(inputs, verbose=0), parent_outputs, atol=1e-3)


def test_deeper_mlp_preserves_the_parents_outputs(digits, inputs):
    space = MLPSpace((8, 8, 1), 10, max_layers=3, units=(16, 32), activations=("relu",))
    parent_values = {"num_layers": 1, "layer_0/units": 32, "layer_0/activation": "relu"}
    parent = build(space, parent_values)
    parent.fit(digits.train, epochs=1, verbose=0)
    expected = parent.predict(inputs, verbose=0)
    donor = inheritance.Donor("0", inheritance.weights_by_key(parent), 1)
    child = build(space, {**parent_values, "num_layers": 2, "layer_1/units": 32,
                          "layer_1/activation": "relu"})
    assert inheritance.inherit(child, donor)["morphed_layers"] == 1
    np.testing.assert_allclose(child.predict(inputs, verbose=0), expected, atol=1e-5)


def test_invalid_arguments_are_named():
    with pytest.raises(ValueError, match="inherit_epochs"):
        oracles.get("evolution", "val_accuracy", 5, inherit_weights=True, inherit_epochs=0)
    with pytest.raises(TypeError, match="inherit_weights"):
        oracles.get("local", "val_accuracy", 5, inherit_weights="yes")
    with pytest.raises(ValueError, match="halving"):
        oracles.get("evolution", "val_accuracy", 5, inherit_weights=True,
                    halving=oracles.SuccessiveHalving(1, 3))


def _search(directory, max_trials, digits, oracle="evolution", **oracle_args):
    space = chain_space()
    if oracle == "evolution":
        oracle_args = {"population_size": 2, "sample_size": 1, **oracle_args}
    strategy = oracles.get(oracle, "val_accuracy", max_trials, seed=3, space=space,
                           inherit_weights=True, inherit_epochs=1, **oracle_args)
    tuner = tfnas.NASTuner(space, oracle=strategy, directory=directory, project_name="p",
                           progress=False, measure_latency=False, count_flops=False,
                           log_dir=None)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # "cannot inherit" would fail here
        warnings.filterwarnings("ignore", message=".*shuffle.*")
        tuner.search(digits.train, validation_data=digits.validation, epochs=2, verbose=0)
    return tuner


def _children(tuner):
    return [t for t in tuner.oracle.trials.values() if inheritance.parent_of(t) is not None]


@pytest.mark.slow
def test_search_inherits_from_checkpoints_and_resumes(tmp_path, digits):
    tuner = _search(tmp_path / "search", 4, digits)
    first = {t.trial_id for t in tuner.oracle.trials.values()}
    children = _children(tuner)
    assert children, "evolution mutated no parent"
    # A missing checkpoint warns, and warnings are errors in `_search`: a
    # child that could not inherit would have FAILED.
    assert all(t.status == "COMPLETED" for t in tuner.oracle.trials.values())
    assert any(c.metrics.get_last_value("inherited_params") > 0 for c in children)
    for child in children:
        parent = tuner.oracle.trials[inheritance.parent_of(child)]
        assert parent.status == "COMPLETED"
        assert child.metrics.get_last_value("epochs") == 1
        assert child.metrics.exists("inherited_params")
        # The parent is recorded in the child's trial file, read after a restart.
        with open(os.path.join(tuner.project_dir, f"trial_{child.trial_id}",
                               "trial.json")) as file:
            saved = json.load(file)["hyperparameters"]["values"]
        assert saved[inheritance.INHERIT_FROM] == parent.trial_id
    for trial in tuner.oracle.trials.values():
        if inheritance.parent_of(trial) is None:
            assert trial.metrics.get_last_value("epochs") == 2  # the full training
    # A parent that trained in this process is read from memory: the same
    # best-epoch weights as its checkpoint's, without building it again.
    remembered = inheritance.load_parent(tuner, children[0])
    tuner._inheritance_donors = None  # as in a new process
    loaded = inheritance.load_parent(tuner, children[0])
    assert remembered.weights.keys() == loaded.weights.keys()
    assert all(same(remembered.weights[k], loaded.weights[k]) for k in loaded.weights)
    assert remembered.convolutions == loaded.convolutions

    resumed = _search(tmp_path / "search", 7, digits)  # a new tuner on the same project
    new_children = [t for t in _children(resumed) if t.trial_id not in first]
    assert len(resumed.oracle.trials) == 7 and new_children
    assert all(t.status == "COMPLETED" for t in resumed.oracle.trials.values())
    assert any(c.metrics.get_last_value("inherited_params") > 0 for c in new_children)
    for child in new_children:
        assert child.metrics.get_last_value("epochs") == 1
    assert any(inheritance.parent_of(t) in first for t in new_children), \
        "no child of the resumed search inherited from a trial of the first session"


@pytest.mark.slow
def test_local_search_inherits_from_the_incumbent(tmp_path, digits):
    tuner = _search(tmp_path / "local", 3, digits, oracle="local", initial_trials=1)
    children = _children(tuner)
    assert len(children) == 2
    assert all(t.status == "COMPLETED" for t in tuner.oracle.trials.values())
    assert any(c.metrics.get_last_value("inherited_params") > 0 for c in children)
    for child in children:
        assert child.metrics.get_last_value("epochs") == 1


@pytest.mark.slow
def test_missing_parent_checkpoint_trains_the_child_fully(tmp_path, digits):
    tuner = _search(tmp_path / "search", 3, digits)
    child = _children(tuner)[0]
    parent_id = inheritance.parent_of(child)
    os.remove(kt.Tuner._get_checkpoint_fname(tuner, parent_id))
    tuner._inheritance_donors = None  # a new process: nothing in memory
    with pytest.warns(UserWarning, match=f"cannot inherit the weights of trial {parent_id}"):
        assert inheritance.load_parent(tuner, child) is None


def test_cli_refuses_inheritance_for_a_strategy_without_parents(tmp_path, capsys):
    from tfnas import cli

    code = cli.main(["search", "--strategy", "random", "--inherit-weights",
                     "--directory", str(tmp_path / "projects")])
    assert code == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("tfnas: error: --inherit-weights works")
    assert "'evolution'" in error[0] and "'local'" in error[0]


@pytest.mark.slow
def test_cli_search_inherits_weights(tmp_path, capsys):
    from tfnas import cli

    args = ["search", "--space", "chain", "--space-arg", "max_layers=2",
            "--space-arg", "filters=[8]", "--strategy", "local", "--max-trials", "3",
            "--epochs", "2", "--inherit-weights", "--inherit-epochs", "1",
            "--directory", str(tmp_path)]
    assert cli.main(args) == 0
    project = tmp_path / "chain-local-digits"
    children = []
    for trial_dir in project.glob("trial_*"):
        record = json.loads((trial_dir / "trial.json").read_text())
        if inheritance.INHERIT_FROM in record["hyperparameters"]["values"]:
            children.append(record)
    assert len(children) == 2  # local search: 1 random trial, then neighbours
    for record in children:
        assert record["metrics"]["metrics"]["epochs"]["observations"][0]["value"] == [1.0]
    capsys.readouterr()
    # Resuming with other inheritance arguments would mix incomparable trials.
    assert cli.main(args[:-4] + ["--inherit-epochs", "2", "--directory",
                                 str(tmp_path)]) == 2
    assert "inherit_epochs: 1 -> 2" in capsys.readouterr().err


@pytest.mark.parametrize("new_op", ["conv3x3", "sepconv3x3"])
def test_deeper_sequence_chain_preserves_the_parents_outputs(digits, new_op):
    # On sequences the convolutions are 1-D: their kernels are (k, in, out).
    space = ChainSpace((64, 1), 10, max_layers=2, filters=(8,),
                       operations=("conv3x3", "sepconv3x3"), activations=("relu",))
    sequences = digits.train.map(lambda x, y: (keras.ops.reshape(x, (-1, 64, 1)), y))
    inputs = np.concatenate([x for x, _ in digits.validation]).reshape(-1, 64, 1)
    parent_values = {"num_layers": 1, "layer_0/stride": 1, "layer_0/op": "conv3x3",
                     "layer_0/filters": 8, "layer_0/activation": "relu"}
    parent = build(space, parent_values)
    parent.fit(sequences, epochs=1, verbose=0)
    expected = parent.predict(inputs, verbose=0)
    donor = inheritance.Donor("0", inheritance.weights_by_key(parent), 1)
    child = build(space, {**parent_values, "num_layers": 2, "layer_1/stride": 1,
                          "layer_1/op": new_op, "layer_1/filters": 8,
                          "layer_1/activation": "relu", "layer_1/skip/0": False})
    report = inheritance.inherit(child, donor)
    assert report["morphed_layers"] == 1 and report["fresh_layers"] == 0
    np.testing.assert_allclose(child.predict(inputs, verbose=0), expected, atol=1e-5)


def _of_type(model, layer_type):
    """`model`'s layers of `layer_type`, in the order they compute."""
    return [layer for layer in model.layers if isinstance(layer, layer_type)]


def _values(layer):
    return [np.asarray(w) for w in layer.weights]


def test_sequence_child_inherits_its_unchanged_blocks():
    # Block 0 mutates from a GRU to a convolution: block 1's GRU must get
    # the parent's block-1 GRU, not block 0's (the same shapes).
    space = SequenceSpace((16, 2), 10, max_blocks=2, widths=(8,), strides=(1,),
                          poolings=("avg",), operations=("conv3", "gru"))
    parent_values = {"width": 8, "num_blocks": 2, "block_0/op": "gru", "block_0/stride": 1,
                     "block_1/op": "gru", "block_1/stride": 1, "block_1/skip/0": True,
                     "pooling": "avg"}
    parent = build(space, parent_values)
    donor = inheritance.Donor("0", inheritance.weights_by_key(parent), 1)
    child = build(space, {**parent_values, "block_0/op": "conv3"})
    report = inheritance.inherit(child, donor)

    parent_grus, (child_gru,) = _of_type(parent, keras.layers.GRU), _of_type(
        child, keras.layers.GRU)
    assert same(_values(child_gru), _values(parent_grus[1]))
    assert not same(_values(child_gru), _values(parent_grus[0]))
    assert same(_values(child.layers[-1]), _values(parent.layers[-1]))  # the head
    assert same(_values(child.layers[1]), _values(parent.layers[1]))  # the stem
    assert report["fresh_layers"] == 1 and report["morphed_layers"] == 0


def test_transformer_child_inherits_its_unchanged_layers():
    space = TransformerSpace((16, 2), 10, max_layers=2, model_dims=(8,), heads=(1, 2),
                             key_dims=(4,), ff_units=(8,), norms=("pre",),
                             poolings=("avg",))
    parent_values = {"model_dim": 8, "norm": "pre", "num_layers": 1, "layer_0/key_dim": 4,
                     "layer_0/heads": "2", "layer_0/ff_units": "8", "pooling": "avg"}
    parent = build(space, parent_values)
    donor = inheritance.Donor("0", inheritance.weights_by_key(parent), 1)
    norm, attention = keras.layers.LayerNormalization, tfnas.spaces.sequence_ops.SelfAttention

    # A layer added on top: the first layer, the encoder's final norm and
    # the head inherit; the new layer's four parts start fresh.
    deeper = build(space, {**parent_values, "num_layers": 2, "layer_1/key_dim": 4,
                           "layer_1/heads": "2", "layer_1/ff_units": "8"})
    report = inheritance.inherit(deeper, donor)
    assert same(_values(_of_type(deeper, attention)[0]), _values(_of_type(parent, attention)[0]))
    assert same(_values(_of_type(deeper, norm)[-1]), _values(_of_type(parent, norm)[-1]))
    assert same(_values(deeper.layers[-1]), _values(parent.layers[-1]))
    assert report["fresh_layers"] == 4 and report["morphed_layers"] == 0

    # Layer 0's heads change: its attention starts fresh, the rest inherits.
    other_heads = build(space, {**parent_values, "layer_0/heads": "1"})
    fresh_attention = _values(_of_type(other_heads, attention)[0])
    report = inheritance.inherit(other_heads, donor)
    assert same(_values(_of_type(other_heads, attention)[0]), fresh_attention)
    for kept, source in zip(_of_type(other_heads, norm), _of_type(parent, norm)):
        assert same(_values(kept), _values(source))
    assert same(_values(other_heads.layers[-1]), _values(parent.layers[-1]))
    assert report["fresh_layers"] == 1


def test_mobile_child_with_a_deeper_block_inherits_the_later_blocks():
    from tfnas.spaces.ops import MobileBlock

    space = MobileSpace((32, 32, 3), 10, width_multiplier=0.25, num_blocks=3)
    hp = kt.HyperParameters()
    keras.backend.clear_session()
    parent = space.build(hp)  # MobileNetV2's defaults: block 1 has 2 layers
    parent_values = dict(hp.values)
    donor = inheritance.Donor("0", inheritance.weights_by_key(parent), 1)
    child = build(space, {**parent_values, "block_1/layers": 3})
    report = inheritance.inherit(child, donor)

    parent_blocks, child_blocks = _of_type(parent, MobileBlock), _of_type(child, MobileBlock)
    assert len(child_blocks) == len(parent_blocks) + 1
    # Block 2's first layer is the parent's 4th block and the child's 5th.
    assert same(_values(child_blocks[4]), _values(parent_blocks[3]))
    for kept, source in zip(child_blocks[4:], parent_blocks[3:]):
        assert same(_values(kept), _values(source))
    assert same(_values(child.layers[-1]), _values(parent.layers[-1]))
    assert report["fresh_layers"] == 1  # the inserted layer


def test_child_learning_rate_warms_up_then_anneals_to_zero():
    rates = [child_schedule.child_learning_rate(step, 20, 0.01, 0.1) for step in range(20)]
    assert rates[:2] == pytest.approx([0.005, 0.01])  # 2 warm-up steps
    assert max(rates) == pytest.approx(0.01) and rates[-1] == pytest.approx(0.0, abs=1e-12)
    assert all(later <= earlier for earlier, later in zip(rates[1:], rates[2:]))


def _digits_arrays(digits, count):
    return (np.concatenate([x for x, _ in digits.train])[:count],
            np.concatenate([y for _, y in digits.train])[:count])


def _rates_under_child_schedule(model, *args, **kwargs):
    """The learning rate of each step of `model.fit(*args, **kwargs)` under a
    `ChildSchedule`."""
    seen = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(float(np.asarray(self.model.optimizer.learning_rate)))

    model.fit(*args, verbose=0, callbacks=[child_schedule.ChildSchedule(), Record()], **kwargs)
    return seen


def test_child_schedule_sets_each_steps_rate_and_restores_the_compiled_one(digits):
    model = build(chain_space(), PARENT)
    x, y = _digits_arrays(digits, 320)
    expected = [child_schedule.child_learning_rate(step, 20, 0.001) for step in range(20)]
    seen = _rates_under_child_schedule(model, x, y, batch_size=32, epochs=2)
    assert seen == pytest.approx(expected)  # 10 steps an epoch, 2 epochs
    assert float(np.asarray(model.optimizer.learning_rate)) == pytest.approx(0.001)
    # A fit from `initial_epoch`: the schedule spans its own epochs.
    seen = _rates_under_child_schedule(model, x, y, batch_size=32, epochs=3, initial_epoch=1)
    assert seen == pytest.approx(expected)


def test_remember_reads_the_checkpoint_only_when_the_last_epoch_is_not_the_saved_one():
    objective = kt.Objective("val_accuracy", "max")
    history = keras.callbacks.History()
    history.history = {"loss": [1.0, 0.8, 0.7], "val_accuracy": [0.5, 0.7, 0.6]}
    assert not inheritance._last_epoch_saved(objective, history)  # epoch 1 is saved
    history.history["val_accuracy"] = [0.5, 0.6, 0.7]
    assert inheritance._last_epoch_saved(objective, history)
    history.history["val_accuracy"] = [0.7, 0.6, 0.7]  # a tie is not saved again
    assert not inheritance._last_epoch_saved(objective, history)
    assert inheritance._last_epoch_saved(kt.Objective("score", "max"), history)  # not logged
    assert not inheritance._last_epoch_saved(objective, None)


def test_child_schedule_leaves_a_compiled_schedule_alone(digits):
    model = build(chain_space(), PARENT)
    schedule = keras.optimizers.schedules.ExponentialDecay(0.01, 5, 0.5)
    model.compile(optimizer=keras.optimizers.Adam(schedule),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x, y = _digits_arrays(digits, 64)
    model.fit(x, y, batch_size=32, epochs=1, verbose=0,
              callbacks=[child_schedule.ChildSchedule()])
    steps = int(np.asarray(model.optimizer.iterations))
    assert steps == 2
    assert float(np.asarray(model.optimizer.learning_rate)) == pytest.approx(
        float(schedule(steps)))


# Data of unknown size, on purpose: Keras learns its end at the first epoch's.
@pytest.mark.filterwarnings("ignore:Your input ran out of data:UserWarning")
def test_child_schedule_keeps_the_compiled_rate_for_data_of_unknown_size(digits):
    # Unknown steps per epoch: a schedule of a guessed length (the old
    # `steps or 1`) reached zero after `epochs` steps and stopped training.
    model = build(chain_space(), PARENT)
    x, y = _digits_arrays(digits, 320)
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(32).filter(lambda x, y: True)
    assert data.cardinality() == tf.data.UNKNOWN_CARDINALITY
    seen = _rates_under_child_schedule(model, data, epochs=2)
    assert len(seen) == 20
    assert seen == pytest.approx([0.001] * 20)


def test_remember_reads_the_checkpoint_after_an_execution_that_may_not_hold_it(tmp_path):
    # KerasTuner's checkpoint keeps the best epoch over all of a trial's
    # executions: a later execution whose last epoch is its own best may not
    # be the checkpoint's, so its final weights are not the trial's best.
    space = chain_space()
    strategy = oracles.get("evolution", "val_accuracy", 2, seed=3, space=space,
                           inherit_weights=True, inherit_epochs=1, population_size=2,
                           sample_size=1)
    tuner = tfnas.NASTuner(space, oracle=strategy, directory=tmp_path / "sandbox",
                           project_name="p", progress=False, measure_latency=False,
                           count_flops=False, log_dir=None, executions_per_trial=2)
    trial = kt.engine.trial.Trial(kt.HyperParameters(), trial_id="0")
    model = build(space, PARENT)
    best = inheritance.weights_by_key(model)
    checkpoint = tuner._get_checkpoint_fname(trial.trial_id)
    os.makedirs(os.path.dirname(checkpoint), exist_ok=True)
    model.save_weights(checkpoint)  # the first execution's best epoch
    for variable in model.trainable_variables:  # the second execution's last epoch
        variable.assign(variable + 1.0)
    history = keras.callbacks.History()
    history.history = {"loss": [1.0, 0.8], "val_accuracy": [0.5, 0.6]}  # its own best last
    inheritance.remember(tuner, trial, model, history)
    remembered = tuner._inheritance_donors.get(trial.trial_id)[0]
    assert remembered.keys() == best.keys()
    assert all(same(remembered[key], best[key]) for key in best)


def test_a_narrower_chain_ranks_only_its_output_by_the_consumers_importance():
    # The consumers' importance ranks the chain's output channels; an inner
    # layer's channels are ranked by their own incoming weights.
    def chain(units):
        layer = keras.Sequential([keras.layers.Dense(units), keras.layers.Dense(units)])
        layer.build((None, 4))
        return layer

    child = chain(4)  # its parent: chain(8), with `values`
    first = np.full((4, 8), 0.1, "float32")
    first[:, 4:] = 1.0  # the inner layer's channels 4-7 have the largest incoming weights
    second = np.arange(64, dtype="float32").reshape(8, 8) / 64
    values = [first, np.zeros(8, "float32"), second, np.zeros(8, "float32")]
    importance = np.array([8, 7, 6, 5, 4, 3, 2, 1], "float64")  # outputs 0-3 weigh most
    transferred, out_map = net2net.transfer(child, values, None, np.random.default_rng(0),
                                            importance=importance)
    assert same([transferred[0]], [first[:, 4:]])
    assert list(out_map.source) == [0, 1, 2, 3]
    assert same([transferred[2]], [second[4:, :4]])
