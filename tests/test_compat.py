"""Canaries for the internals tfnas borrows (tfnas/compat.py).

Each test checks, against the installed KerasTuner, Keras or TensorFlow,
what tfnas relies on in one private symbol; it fails when upstream changes
it, before a search fails obscurely.
"""

import io
import threading

import h5py
import keras
import keras_tuner as kt
import numpy as np
import pytest
import tensorflow as tf

from tfnas import compat
from tests.waiting import run_fresh_python


def _oracle(tmp_path):
    oracle = kt.oracles.RandomSearchOracle(objective=kt.Objective("score", "max"),
                                           max_trials=3, seed=0)
    hps = kt.HyperParameters()
    hps.Choice("units", [4, 8])
    oracle._set_project_dir(str(tmp_path), "project")
    oracle.hyperparameters = hps
    return oracle


def test_installed_versions_are_tested():
    assert compat.is_tested("keras-tuner") and compat.is_tested("keras")


def test_untested_version_is_a_clear_error():
    assert compat.version_tuple("1.4.8rc1") == (1, 4, 8)
    assert compat.version_tuple("1.5.0.dev0") == (1, 5, 0)
    assert compat.is_tested("keras-tuner", "1.4.7")
    assert not compat.is_tested("keras-tuner", "1.5.0")
    assert not compat.is_tested("keras-tuner", "1.4.6")
    with pytest.raises(compat.CompatibilityError,
                       match=r"keras-tuner>=1.4.7,<1.5. Received: keras-tuner==1.5.0"):
        compat.check_version("keras-tuner", "1.5.0")


def test_oracle_lock_tables_are_keyed_by_oracle(tmp_path):
    locks, threads = compat.oracle_lock_tables()
    seen = []

    class Recording(kt.oracles.RandomSearchOracle):
        def populate_space(self, trial_id):
            # KerasTuner's own `synchronized` records the holder's thread here.
            seen.append(threads[self])
            return super().populate_space(trial_id)

    oracle = Recording(objective=kt.Objective("score", "max"), max_trials=3, seed=0)
    oracle._set_project_dir(str(tmp_path), "project")
    oracle.hyperparameters.Choice("units", [4, 8])
    assert hasattr(locks[oracle], "acquire") and threads[oracle] is None
    oracle.create_trial("tuner0")
    assert seen == [threading.current_thread().name] and threads[oracle] is None


def test_retry_queue_is_what_reload_fills(tmp_path):
    oracle = _oracle(tmp_path)
    assert compat.retry_queue(oracle) == []
    trial = oracle.create_trial("tuner0")
    oracle.save()
    reloaded = _oracle(tmp_path)
    reloaded.reload()
    assert compat.retry_queue(reloaded) == [trial.trial_id]
    assert compat.retry_queue(reloaded) is compat.retry_queue(reloaded)  # the live list


def test_display_records_trial_starts(tmp_path):
    oracle = _oracle(tmp_path)
    oracle.verbose = 1  # KerasTuner's display records starts only when verbose
    trial = oracle.create_trial("tuner0")
    assert compat.display_has_started(oracle, trial.trial_id)
    assert not compat.display_has_started(oracle, "no-such-trial")


def test_a_trial_start_is_shown_once(tmp_path):
    oracle = _oracle(tmp_path)
    oracle.verbose = 0  # the display records nothing, as after a reload
    trial = oracle.create_trial("tuner0")
    assert not compat.display_has_started(oracle, trial.trial_id)
    oracle.verbose = 1
    compat.show_trial_start(oracle, trial)
    started = compat.display_has_started(oracle, trial.trial_id)
    compat.show_trial_start(oracle, trial)  # already shown: no second start
    assert started and len(oracle._display.trial_start) == 1


def test_tuner_adds_its_tuner_callback_and_save_best_epoch(tmp_path):
    seen = []

    class HyperModel(kt.HyperModel):
        def build(self, hp):
            model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(hp.Choice("u", [1]))])
            model.compile(loss="mse")
            return model

        def fit(self, hp, model, *args, callbacks=None, **kwargs):
            seen.extend(type(c) for c in callbacks)
            return model.fit(*args, callbacks=callbacks, **kwargs)

    tuner = kt.RandomSearch(HyperModel(), objective="val_loss", max_trials=1,
                            directory=tmp_path, seed=0)
    x = np.zeros((4, 2), "float32")
    tuner.search(x, x[:, :1], validation_data=(x, x[:, :1]), epochs=1, verbose=0)
    assert compat.tuner_callback_class() in seen
    assert compat.save_best_epoch_class() in seen
    io_module = compat.keras_tuner_io()
    assert callable(io_module.write_filepath) and callable(io_module.remove_temp_dir_with_filepath)


def test_keras_weights_writer_writes_a_loadable_file(tmp_path):
    from tfnas import checkpoints

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    path = tmp_path / "nested" / "m.weights.h5"
    checkpoints.save_weights_atomically(model, path)
    other = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    other.load_weights(path)
    for a, b in zip(model.get_weights(), other.get_weights()):
        np.testing.assert_array_equal(a, b)
    h5_store, _ = compat.keras_weights_writer()
    buffer = io.BytesIO()
    checkpoints_store = h5_store(buffer, mode="w")
    checkpoints_store.close()
    with h5py.File(io.BytesIO(buffer.getvalue()), "r") as file:  # an HDF5 file in memory
        assert file is not None


def test_atomic_checkpoint_callback_subclasses_keras_tuners():
    from tfnas import checkpoints

    atomic_class = checkpoints.atomic_save_best_epoch_class()
    assert issubclass(atomic_class, compat.save_best_epoch_class())
    assert "_save_model" in vars(compat.save_best_epoch_class())  # what it overrides


def test_freeze_to_graph_folds_variables():
    dense = keras.layers.Dense(3)
    dense.build((1, 2))
    function = tf.function(lambda x: dense(x)).get_concrete_function(
        tf.TensorSpec((1, 2), tf.float32))
    graph = compat.freeze_to_graph(function)
    kinds = {op.type for op in graph.get_operations()}
    assert "MatMul" in kinds and "VarHandleOp" not in kinds and "ReadVariableOp" not in kinds


def test_wrapped_oracle_of_a_keras_tuner_client(tmp_path):
    from keras_tuner.src.distribute import oracle_client

    oracle = _oracle(tmp_path)
    client = oracle_client.OracleClient.__new__(oracle_client.OracleClient)
    client._oracle = oracle  # what OracleClient.__init__ stores
    assert compat.wrapped_oracle(client) is oracle
    source = oracle_client.OracleClient.__init__.__code__.co_names
    assert "_oracle" in source


def test_missing_private_is_a_clear_error():
    with pytest.raises(compat.CompatibilityError, match=r"`keras_tuner.src.engine.oracle.Nope`"):
        compat._private("keras_tuner.src.engine.oracle", "Nope", "a test")


def test_quiet_condition_protos_converts_as_keras_tuner_without_printing(capsys):
    from keras_tuner.src.engine import conditions

    original = conditions.Parent.to_proto
    kinds = [["a", "b"], [True], [1, 2], [0.5]]
    try:
        expected = [original(conditions.Parent("p", values)) for values in kinds]
        capsys.readouterr()
        compat.quiet_condition_protos()
        compat.quiet_condition_protos()  # idempotent
        got = [conditions.Parent("p", values).to_proto() for values in kinds]
    finally:
        conditions.Parent.to_proto = original
    assert got == expected
    assert capsys.readouterr().out == ""


@pytest.mark.slow
def test_importing_distributed_patches_nothing():
    run_fresh_python("from keras_tuner.src.engine import conditions\n"
                     "before = conditions.Parent.to_proto\n"
                     "import tfnas.distributed, tfnas.tuner\n"
                     "assert conditions.Parent.to_proto is before, 'patched on import'\n",
                     timeout=120)


def test_keras_tuner_distributed_modules_have_what_tfnas_extends():
    protos = compat.keras_tuner_module("protos")
    chief = compat.keras_tuner_module("distribute.oracle_chief")
    client = compat.keras_tuner_module("distribute.oracle_client")
    assert callable(protos.get_service_grpc().add_OracleServicer_to_server)
    assert callable(protos.get_service().EndTrialResponse)
    assert callable(chief.exit_chief)
    for name in ("EndTrial", "UpdateTrial", "CreateTrial"):
        assert callable(getattr(chief.OracleServicer, name))
    for name in ("create_trial", "end_trial", "update_trial"):
        assert callable(getattr(client.OracleClient, name))
    with pytest.raises(compat.CompatibilityError, match="keras_tuner.src.nope"):
        compat.keras_tuner_module("nope")


def test_keras_trainer_internals_tfnas_replaces():
    tree, trainer = compat.keras_trainer_internals()
    assert callable(tree.map_structure)
    assert callable(trainer.reduce_per_replica)
    assert callable(trainer._collective_all_reduce_multi_worker)
    assert callable(trainer.TensorFlowTrainer._maybe_symbolic_build)


def test_keras_symbolic_build_creates_the_training_state():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    build = compat.keras_symbolic_build(model)
    assert build is not None and not model.optimizer.built
    build(data_batch=(tf.TensorSpec((None, 3)), tf.TensorSpec((None, 2))))
    assert model.optimizer.built and model.optimizer.variables


def test_function_rewrites_reach_the_functions_config_and_are_restored():
    from tensorflow.python.eager import context

    def rewrite_options():
        options = context.context().function_call_options
        return tf.compat.v1.ConfigProto.FromString(
            options.config_proto_serialized).graph_options.rewrite_options

    before = rewrite_options().disable_tfg_optimizer
    with compat.function_rewrites(disable_tfg_optimizer=not before):
        assert rewrite_options().disable_tfg_optimizer == (not before)
    assert rewrite_options().disable_tfg_optimizer == before


def test_keras_graph_neighbours_reads_a_functional_models_graph():
    keras.backend.clear_session()
    inputs = keras.Input((4,))
    first = keras.layers.Dense(3, name="first")
    second = keras.layers.Dense(2, name="second")
    third = keras.layers.Dense(2, name="third")
    hidden = first(inputs)
    keras.Model(inputs, [second(hidden), third(hidden)])
    inbound, outbound = compat.keras_graph_neighbours(first)
    assert len(inbound) == 1 and isinstance(inbound[0], keras.layers.InputLayer)
    assert sorted(layer.name for layer in outbound) == ["second", "third"]
    assert [layer.name for layer in compat.keras_graph_neighbours(second)[0]] == ["first"]
    assert compat.keras_graph_neighbours(second)[1] == []
