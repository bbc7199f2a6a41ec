"""The training state built before `fit`: one trace of the training step."""

import contextlib

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import rewriter_config_pb2

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
    log = RewriteOptionsLog()
    log.seen.clear()
    before = current_rewrite_options()
    tuner.search(digits.train, validation_data=digits.validation, epochs=2, verbose=0,
                 callbacks=[log])
    completed = [t for t in tuner.oracle.trials.values() if t.status == "COMPLETED"]
    assert len(completed) == 2
    assert len(CountingChainSpace.traces) == 2  # one per candidate, not two
    # Every candidate's training and validation functions first run under the
    # lean grappler settings, which are restored after each fit.
    assert len(log.seen) == 2 * 2 * 2  # trials x epochs x (training, validation)
    for options in log.seen:
        assert options.meta_optimizer_iterations == rewriter_config_pb2.RewriterConfig.ONE
        assert options.memory_optimization == rewriter_config_pb2.RewriterConfig.NO_MEM_OPT
        assert options.disable_tfg_optimizer
        assert options.constant_folding == before.constant_folding
    assert current_rewrite_options() == before


class RewriteOptionsLog(keras.callbacks.Callback):
    """Grappler's options in effect at the start of training and validation
    (in a class list: KerasTuner gives each trial a copy of the callbacks)."""

    seen = []

    def on_epoch_begin(self, epoch, logs=None):
        self.seen.append(current_rewrite_options())

    def on_test_begin(self, logs=None):
        self.seen.append(current_rewrite_options())


def current_rewrite_options():
    from tensorflow.core.protobuf import config_pb2
    from tensorflow.python.eager import context

    serialized = context.context().function_call_options.config_proto_serialized
    return config_pb2.ConfigProto.FromString(serialized).graph_options.rewrite_options


def test_lean_graph_optimization_leaves_training_bit_identical():
    """The grappler passes a candidate's fit skips change no value: the same
    seed trains to exactly the same weights and losses with and without them."""
    from tfnas import graph_options

    x, y = _arrays()
    trained = []
    for lean in (False, True):
        model = _model(seed=5)
        with graph_options.lean_graph_optimization() if lean else contextlib.nullcontext():
            history = model.fit(x, y, batch_size=16, epochs=2, verbose=0, shuffle=False,
                                validation_data=(x[:16], y[:16]))
        trained.append((model.get_weights(), history.history))
    (default, default_history), (lean, lean_history) = trained
    assert default_history == lean_history
    assert len(default) == len(lean)
    for a, b in zip(default, lean):
        assert np.array_equal(a, b)
