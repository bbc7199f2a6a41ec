"""Supernets from the spaces' own definitions, one-shot training, derivation."""

import json
import os
import random

import keras
import keras_tuner as kt
import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator

import tfnas
from tfnas import prebuild, spaces
from tfnas.spaces import ops
from tfnas.supernet.builder import build_supernet
from tfnas.supernet.oneshot import OneShotModel, derive, paired
from tfnas.supernet.tuner import PROBABILITIES_FILE, OneShotTuner

SMALL_SPACES = {
    "cell": dict(num_cells=3, num_blocks=2, filters=4),
    "nb201": dict(cells_per_stage=1, filters=4),
    "macro": dict(init_filters=4, head_filters=16),
    # Two blocks: every kind of mobile decision, a stride-2 block whose input
    # width is the first block's searched width.
    "mobile": dict(width_multiplier=0.25, num_blocks=2),
    "chain": dict(max_layers=3, filters=(8,), operations=("conv3x3", "sepconv3x3")),
}


MOBILE_DECISIONS = {"conv", "kernel", "se_ratio", "skip", "filters", "layers"}


def tiny_chain():
    """A chain space whose candidates agree in shape: ops, skips and depth."""
    return spaces.ChainSpace((8, 8, 1), 10, max_layers=2, filters=(4,),
                             operations=("conv3x3", "sepconv3x3"))


@pytest.mark.parametrize("name", sorted(SMALL_SPACES))
def test_supernet_of_each_space_trains(name, digits):
    model, builder = build_supernet(spaces.get(name, (8, 8, 1), 10, **SMALL_SPACES[name]))
    # Every op choice, input choice and depth of the space is a mixed layer.
    assert builder.mixed and all(len(layer.labels) >= 1 for layer in builder.mixed.values())
    if name == "mobile":
        assert {key.split("/")[-1] for key in builder.mixed} == MOBILE_DECISIONS
    x, y = next(iter(digits.train))
    # The optimizer's slots are made before the first trace of the step, as
    # NASTuner does (made inside it, they cost this test tens of seconds).
    prebuild.build_training_state(model, digits.train.element_spec)
    # Training-mode losses on one batch (inference would use batch-norm
    # statistics that a few steps barely move).
    losses = [model.train_on_batch(x, y, return_dict=True)["loss"] for _ in range(15)]
    assert losses[-1] < losses[0]


class PoolingKeepsChannels(kt.HyperModel):
    """An op choice between a pooling that keeps 1 channel and a 16-filter
    convolution: no supernet holds both."""

    def build(self, hp):
        inputs = keras.Input((8, 8, 1))
        x = tfnas.choose_op(hp, "op", {"pool": lambda: ops.Pool("max", 3),
                                       "conv": lambda: ops.ConvBN(16, 3)})(inputs)
        return keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))


def test_candidates_of_different_shapes_are_a_clear_error():
    with pytest.raises(ValueError, match="outputs of one shape"):
        build_supernet(PoolingKeepsChannels())


class SignalMustPass(kt.HyperModel):
    """One decision: the identity, or a zero op that blocks the signal."""

    def build(self, hp):
        inputs = keras.Input((8, 8, 1))
        x = keras.layers.Flatten()(inputs)
        x = tfnas.choose_op(hp, "op", {"zero": ops.Zero,
                                       "identity": keras.layers.Identity})(x)
        model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x))
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        return model


@pytest.mark.parametrize("second_order", [False, True])
def test_darts_moves_alpha_toward_the_op_that_passes_the_signal(second_order, digits):
    keras.utils.set_random_seed(0)
    supernet, builder = build_supernet(SignalMustPass())
    model = OneShotModel(supernet, builder, second_order=second_order, warmup_steps=17,
                         architecture_optimizer=keras.optimizers.Adam(0.01, beta_1=0.5))
    model.compile(optimizer=keras.optimizers.Adam(0.01),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(paired(digits.train, digits.validation), epochs=4, verbose=0)
    assert model.probabilities()["op"]["identity"] > 0.7
    assert derive(model) == {"op": "identity"}
    assert history.history["loss"][-1] < history.history["loss"][0]


def _scalar_tags(path):
    accumulator = event_accumulator.EventAccumulator(
        str(path), size_guidance={event_accumulator.TENSORS: 0})
    accumulator.Reload()
    return accumulator.Tags()["tensors"]


def test_one_shot_search_derives_and_retrains_a_standalone_model(tmp_path, digits):
    space = tiny_chain()
    tuner = OneShotTuner(space, strategy="darts", supernet_epochs=2, directory=tmp_path,
                         architecture_learning_rate=3e-3, seed=0, progress=False)
    tuner.search(digits.train, validation_data=digits.validation, epochs=1, verbose=0)

    derived = tuner.oracle.architecture
    trial = tuner.oracle.get_best_trials(1)[0]
    assert trial.status == "COMPLETED"
    assert tfnas.Architecture.from_trial(trial).values == derived
    assert "num_layers" in derived and "layer_0/op" in derived
    model = tuner.get_best_models(1)[0]
    assert not any(isinstance(layer, tfnas.supernet.MixedOp) for layer in model.layers)
    assert model.count_params() == space.build(
        tfnas.Architecture(derived).to_hyperparameters()).count_params()

    with open(os.path.join(tuner.project_dir, PROBABILITIES_FILE)) as file:
        rows = json.load(file)
    decisions = {row["decision"] for row in rows}
    assert {row["epoch"] for row in rows} == {1, 2} and "layer_0/op" in decisions
    for decision in decisions:
        total = sum(r["probability"] for r in rows if r["decision"] == decision
                    and r["epoch"] == 2)
        assert total == pytest.approx(1.0, abs=1e-5)
    assert "supernet/layer_0/op/conv3x3" in _scalar_tags(
        os.path.join(tuner.log_dir, "search"))

    # A second search on the same project reuses the derived architecture.
    again = OneShotTuner(space, strategy="darts", directory=tmp_path, seed=0, progress=False)
    assert again.oracle.architecture == derived


class InitialWeights(tfnas.supernet.strategies.OneShotStrategy):
    """Keeps the supernet's weights as the tuner built it; derives the first
    candidates without training."""

    mode = "single_path"
    weights = None

    def search(self, tuner, model, train, validation, epochs):
        self.weights = [w.numpy() for w in model.weights]
        return {name: model.builder.values[name][0] for name in model.decisions}


def test_a_seeded_one_shot_search_starts_from_the_same_supernet_whatever_ran_before(
        tmp_path, digits):
    kept = []
    for seed, draws in ((0, 0), (0, 7), (1, 0)):
        for _ in range(draws):  # as KerasTuner's unseeded discovery of the space draws
            random.random()
            keras.initializers.GlorotUniform()
        strategy = InitialWeights()
        tuner = OneShotTuner(tiny_chain(), strategy=strategy, supernet_epochs=1, seed=seed,
                             directory=tmp_path, project_name=f"seed{seed}-draws{draws}",
                             progress=False)
        tuner.search(digits.train.take(1), validation_data=digits.validation.take(1),
                     epochs=1, verbose=0)
        kept.append(strategy.weights)
    assert len(kept[0]) == len(kept[1]) > 0
    assert all(np.array_equal(a, b) for a, b in zip(kept[0], kept[1]))
    assert not all(np.array_equal(a, b) for a, b in zip(kept[0], kept[2]))  # another seed


# Every registered one-shot strategy ("darts" also has its own test below).
@pytest.mark.parametrize("strategy", [name for name in tfnas.strategies.names(one_shot=True)
                                      if name != "darts"])
def test_every_one_shot_strategy_runs_end_to_end(strategy, tmp_path, digits):
    tuner = OneShotTuner(tiny_chain(), strategy=strategy, supernet_epochs=1,
                         directory=tmp_path, seed=0, spos_trials=4, enas_trials=4,
                         enas_steps=2, progress=False)
    tuner.search(digits.train.take(6), validation_data=digits.validation.take(2),
                 epochs=1, verbose=0)
    values = tuner.oracle.architecture
    rebuilt = tiny_chain().build(tfnas.Architecture(values).to_hyperparameters())
    assert rebuilt.count_params() == tuner.get_best_models(1)[0].count_params()


def grown_cells():
    """A cell space whose blocks per cell are searched (1 or 2): its depths'
    outputs concatenate 1 or 2 blocks, so they differ in channels. (Its
    convolution, of one separable layer, is the cheapest to trace.)"""
    return spaces.CellSpace((8, 8, 1), 10, num_cells=3, min_blocks=1, max_blocks=2,
                            filters=4, operations=("dil_conv_3x3", "identity"))


def test_a_depth_whose_outputs_differ_in_channels_is_zero_padded_in_the_supernet(digits):
    model, builder = build_supernet(grown_cells(), seed=0)
    depth = builder.mixed["num_blocks"]
    assert depth.labels == ["1", "2"] and builder.copies["num_blocks"] == 3
    x, _ = next(iter(digits.train))
    outputs = keras.Model(model.inputs, depth.input)(x[:4])
    narrow, wide = (keras.ops.convert_to_numpy(o) for o in outputs)
    assert narrow.shape[-1] * 2 == wide.shape[-1]
    padded = [keras.ops.convert_to_numpy(c(outputs)) for c in depth.candidates]
    np.testing.assert_array_equal(padded[0][..., :narrow.shape[-1]], narrow)
    assert not padded[0][..., narrow.shape[-1]:].any()
    np.testing.assert_array_equal(padded[1], wide)


# The blocks per cell are searched by a mixing and a single-path supernet: the
# zero-padding of narrower depths happens in the builder, before any mode's
# mixing or sampling (each mode's own mixing is tested above).
@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["darts", "spos"])
def test_every_one_shot_strategy_searches_the_blocks_per_cell(strategy, tmp_path, digits):
    tuner = OneShotTuner(grown_cells(), strategy=strategy, supernet_epochs=1,
                         directory=tmp_path, seed=0, spos_trials=4, enas_trials=4,
                         enas_steps=2, progress=False)
    tuner.search(digits.train.take(4), validation_data=digits.validation.take(2),
                 epochs=1, verbose=0)
    values = tuner.oracle.architecture
    assert values["num_blocks"] in (1, 2)
    assert any("block_1" in name for name in values) == (values["num_blocks"] == 2)
    rebuilt = grown_cells().build(tfnas.Architecture(values).to_hyperparameters())
    assert rebuilt.count_params() == tuner.get_best_models(1)[0].count_params()


def test_supernet_trains_under_a_mirrored_strategy(digits, mirrored):
    with mirrored.scope():
        supernet, builder = build_supernet(tiny_chain())
        model = OneShotModel(supernet, builder)
        model.compile(optimizer=keras.optimizers.Adam(1e-3),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    alphas = [a.numpy().copy() for a in model.alphas]
    history = model.fit(paired(digits.train.take(8), digits.validation), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert any(not np.allclose(a, b.numpy()) for a, b in zip(alphas, model.alphas))


@pytest.mark.parametrize("strategy", ["darts", "gdas", "proxyless", "spos"])
def test_supernet_trains_under_mixed_precision(strategy, digits):
    """float16 candidates, float32 architecture weights and head, scaled losses.

    Seeded, on a fresh copy of the data: the shared `digits` fixture's
    order depends on the tests that iterated it before, and so did whether
    ProxylessNAS's loss fell within 3 epochs (it once rose from 2.297 to
    2.298, under a different test order)."""
    from tfnas.supernet.strategies import resolve
    from tfnas.tuner import dtype_policy_scope

    keras.utils.set_random_seed(0)
    train = tfnas.data.load_digits_data(batch_size=64, seed=0).train.take(10)
    with dtype_policy_scope("mixed_float16"):
        supernet, builder = build_supernet(tiny_chain(), resolve(strategy).mode, seed=0)
        model = OneShotModel(supernet, builder, strategy=strategy, seed=0)
        model.compile(optimizer=keras.optimizers.Adam(1e-2),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    assert keras.config.dtype_policy().name == "float32"  # the scope restored it
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert all(a.dtype == "float32" for a in model.alphas)
    candidate = next(iter(builder.mixed.values())).candidates[0]
    assert candidate.compute_dtype == "float16"
    alphas = [a.numpy().copy() for a in model.alphas]
    history = model.fit(paired(train, digits.validation), epochs=3, verbose=0)
    losses = history.history["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]
    if strategy != "spos":  # SPOS learns no architecture weights
        assert any(not np.allclose(a, b.numpy()) for a, b in zip(alphas, model.alphas))


def test_one_shot_tuner_retrains_under_its_dtype_policy(tmp_path, digits):
    tuner = OneShotTuner(tiny_chain(), strategy="darts", seed=0, directory=tmp_path,
                         progress=False, log_dir=None, dtype_policy="mixed_float16")
    tuner.search(digits.train.take(10), validation_data=digits.validation, epochs=1,
                 verbose=0)
    assert keras.config.dtype_policy().name == "float32"
    model = tuner.get_best_models(1)[0]
    assert model.dtype_policy.name == "mixed_float16"
    assert model.layers[-1].dtype_policy.name == "float32"  # the softmax head
    assert np.isfinite(tuner.oracle.get_best_trials(1)[0].score)


def test_one_shot_tuner_validates_its_arguments(tmp_path, digits):
    with pytest.raises(ValueError, match="strategy"):
        OneShotTuner(tiny_chain(), strategy="enas2", directory=tmp_path)
    tuner = OneShotTuner(tiny_chain(), directory=tmp_path / "b", progress=False)
    with pytest.raises(ValueError, match="validation_data"):
        tuner.search(digits.train, epochs=1)


def test_enas_shares_weights_across_the_controller_trials(tmp_path, digits):
    tuner = OneShotTuner(tiny_chain(), strategy="enas", directory=tmp_path, seed=0,
                         enas_trials=6, enas_steps=20, progress=False,
                         weight_optimizer=keras.optimizers.Adam(0.01))
    tuner.search(digits.train, validation_data=digits.validation, epochs=1, verbose=0)
    history = tuner.architecture_history
    assert len(history) == 6 and all(0 <= row["score"] <= 1 for row in history)
    best = max(history, key=lambda row: row["score"])
    assert tuner.oracle.architecture == best["architecture"]
    # The shared weights kept training: later paths score above chance.
    assert max(row["score"] for row in history[3:]) > 0.2


def test_path_accuracy_recalibrates_each_path_in_one_trace(digits):
    from tfnas.supernet import paths

    space = spaces.ChainSpace((8, 8, 1), 10, max_layers=2, filters=(4, 8), skips=False,
                              activations=("relu",), operations=("conv3x3", "maxpool3x3"))
    keras.utils.set_random_seed(0)
    supernet, builder = build_supernet(space, "single_path", seed=0)
    model = OneShotModel(supernet, builder, strategy="spos", seed=0)
    model.compile(optimizer="adam", loss=supernet.loss, metrics=["accuracy"])
    model.fit(paired(digits.train, digits.validation), epochs=1, verbose=0)
    calibration = paths.calibration_batch(digits.train)
    architectures = [
        {"num_layers": 2, "layer_0/op": "conv3x3", "layer_0/filters": 8,
         "layer_1/op": "maxpool3x3", "layer_1/filters": 4},
        {"num_layers": 1, "layer_0/op": "maxpool3x3", "layer_0/filters": 4},
        {"num_layers": 2, "layer_0/op": "conv3x3", "layer_0/filters": 4,
         "layer_1/op": "conv3x3", "layer_1/filters": 8}]
    scorer = paths.PathAccuracy(model, calibration, digits.validation)
    fast = scorer(architectures)
    # One graph for every path, and the layers' own momentum kept.
    assert scorer.traces == 1
    assert all(layer.momentum == 0.9 for layer in scorer.normalizations)
    for values, accuracy in zip(architectures, fast):
        # The slow way: set the path, recalibrate, evaluate.
        paths.set_path(model, values)
        paths.recalibrate(model.supernet, calibration)
        expected = model.evaluate(digits.validation, verbose=0, return_dict=True)["accuracy"]
        assert accuracy == pytest.approx(expected, abs=1e-6)
    assert len(set(fast)) > 1  # the paths differ
