"""The training state built before `fit`: one trace of the training step."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfnas
from tfnas import prebuild
from tfnas.spaces import ChainSpace


def _space():
    return ChainSpace((8, 8, 1), 10, max_layers=2, filters=(8,),
                      operations=("conv3x3",), activations=("relu",), strides=(1,),
                      skips=False)


def _model(seed=0, strategy=None):
    import contextlib

    import keras_tuner as kt

    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    with strategy.scope() if strategy else contextlib.nullcontext():
        return _space().build(kt.HyperParameters())


def _count_traces(model):
    """Counts the traces of `model`'s training step (a Python call each)."""
    traces = []
    train_step = model.train_step

    def counted(data):
        traces.append(1)
        return train_step(data)

    model.train_step = counted
    return traces


def _arrays(count=64):
    rng = np.random.default_rng(0)
    return (rng.normal(size=(count, 8, 8, 1)).astype("float32"),
            rng.integers(0, 10, size=count))


def test_training_step_traces_once_after_the_state_is_built():
    x, y = _arrays()
    lazy = _model()
    lazy_traces = _count_traces(lazy)
    lazy.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)

    built = _model()
    built_traces = _count_traces(built)
    assert prebuild.build_training_state(built, prebuild.data_spec(x, y))
    assert built.optimizer.built
    built.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)
    assert len(built_traces) == 1
    assert len(lazy_traces) > len(built_traces)  # Keras's lazy build traces twice


def test_training_is_unchanged_by_building_the_state_first():
    x, y = _arrays()
    weights = []
    for build_first in (False, True):
        model = _model(seed=3)
        if build_first:
            assert prebuild.build_training_state(model, prebuild.data_spec(x, y))
        history = model.fit(x, y, batch_size=16, epochs=2, verbose=0, shuffle=False)
        weights.append((model.get_weights(), history.history["loss"]))
    (lazy, lazy_loss), (built, built_loss) = weights
    np.testing.assert_allclose(lazy_loss, built_loss, rtol=1e-6)
    for a, b in zip(lazy, built):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_data_spec_reads_fit_arguments():
    x, y = _arrays(8)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
    assert prebuild.fit_data_spec((dataset,), {}) == dataset.element_spec
    assert prebuild.fit_data_spec((), {"x": dataset}) == dataset.element_spec
    spec = prebuild.fit_data_spec((x, y), {"sample_weight": np.ones(8)})
    assert [a.shape for a in spec] == [(8, 8, 8, 1), (8,), (8,)]
    assert prebuild.fit_data_spec((x,), {}) == (x,)
    assert prebuild.fit_data_spec((iter([(x, y)]),), {}) is None
    assert prebuild.fit_data_spec((), {}) is None


def test_nothing_is_built_under_a_strategy_or_twice(mirrored):
    x, y = _arrays(8)
    spec = prebuild.data_spec(x, y)
    model = _model(strategy=mirrored)
    assert not prebuild.build_training_state(model, spec)  # Keras builds it in fit
    assert not model.optimizer.built
    model = _model()
    assert prebuild.build_training_state(model, spec)
    assert not prebuild.build_training_state(model, spec)
    assert not prebuild.build_training_state(_model(), None)


class CountingChainSpace(ChainSpace):
    """Counts the traces of its models' training steps."""

    traces = []

    def build(self, hp):
        model = super().build(hp)
        train_step = model.train_step

        def counted(data):
            CountingChainSpace.traces.append(1)
            return train_step(data)

        model.train_step = counted
        return model


@pytest.mark.slow
def test_a_search_traces_each_candidate_s_training_step_once(digits, tmp_path):
    space = CountingChainSpace((8, 8, 1), 10, max_layers=2, filters=(8,),
                               operations=("conv3x3", "maxpool3x3"), skips=False)
    CountingChainSpace.traces.clear()
    tuner = tfnas.NASTuner(space, oracle="random", max_trials=2, seed=0,
                           directory=tmp_path / "sandbox" / "search", project_name="p",
                           measure_latency=False, count_flops=False, log_dir=None,
                           progress=False)
    tuner.search(digits.train, validation_data=digits.validation, epochs=2, verbose=0)
    completed = [t for t in tuner.oracle.trials.values() if t.status == "COMPLETED"]
    assert len(completed) == 2
    assert len(CountingChainSpace.traces) == 2  # one per candidate, not two
