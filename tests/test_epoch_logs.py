"""NASTuner's training curves: Keras's TensorBoard logs, without per-batch work."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfnas import epoch_logs


def _model():
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(inputs))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def _events(folder):
    """{(run, tag, step): value} of the scalars under `folder`."""
    found = {}
    for path in sorted(folder.rglob("events.out.tfevents.*")):
        run = path.parent.name
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "scalars":
                    found[(run, value.tag, event.step)] = float(
                        tf.make_ndarray(value.tensor))
    return found


def test_the_logs_are_keras_s_without_per_batch_hooks(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 4)).astype("float32"), rng.integers(0, 3, size=64)
    logs = {}
    for name, make in (("keras", keras.callbacks.TensorBoard),
                       ("tfnas", epoch_logs.EpochTensorBoard)):
        folder = tmp_path / "sandbox" / name
        model = _model()
        callback = make(log_dir=str(folder))
        hooks = [getattr(type(callback), hook) is getattr(keras.callbacks.Callback, hook)
                 for hook in ("on_train_batch_begin", "on_train_batch_end",
                              "on_test_batch_begin", "on_test_batch_end")]
        assert all(hooks) is (name == "tfnas")  # Keras's no-op hooks only in tfnas's
        model.fit(x, y, batch_size=8, epochs=3, validation_data=(x, y), verbose=0,
                  shuffle=False, callbacks=[callback])
        logs[name] = _events(folder)
    assert sorted(logs["tfnas"]) == sorted(logs["keras"])
    assert {run for run, _, _ in logs["keras"]} == {"train", "validation"}
    assert len({step for _, _, step in logs["keras"]}) >= 3
    for key, value in logs["keras"].items():
        assert logs["tfnas"][key] == pytest.approx(value, rel=1e-6), key


@pytest.mark.parametrize("argument", [{"update_freq": 10}, {"profile_batch": 2},
                                      {"write_steps_per_second": True}])
def test_arguments_that_need_batch_hooks_are_refused(tmp_path, argument):
    name = next(iter(argument))
    with pytest.raises(ValueError, match=f"need per-batch hooks: .*'{name}'"):
        epoch_logs.EpochTensorBoard(log_dir=str(tmp_path / "sandbox"), **argument)
