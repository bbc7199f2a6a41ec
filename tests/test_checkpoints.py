"""A trial's best-epoch checkpoint: the best epoch's weights, written once per fit."""

import h5py
import keras
import keras_tuner as kt
import numpy as np
import pytest

from tfnas import checkpoints
from tfnas.spaces import ChainSpace

SCORES = [0.1, 0.5, 0.3, 0.4]  # the best epoch is the second (index 1)


def _model():
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    space = ChainSpace((8, 8, 1), 10, max_layers=1, filters=(4,), operations=("conv3x3",),
                       activations=("relu",), strides=(1,), skips=False)
    return space.build(kt.HyperParameters())


def _arrays():
    rng = np.random.default_rng(0)
    return rng.normal(size=(32, 8, 8, 1)).astype("float32"), rng.integers(0, 10, size=32)


class ScriptedScore(keras.callbacks.Callback):
    """Sets `logs["score"]` to SCORES[epoch] and writes every epoch's weights
    with Keras's own `save_weights`."""

    def __init__(self, folder):
        super().__init__()
        self.folder = folder

    def on_epoch_end(self, epoch, logs=None):
        logs["score"] = SCORES[epoch]
        self.model.save_weights(self.folder / f"epoch{epoch}.weights.h5")


def _datasets(path):
    values = {}
    with h5py.File(path, "r") as file:
        file.visititems(lambda name, item: values.setdefault(name, np.array(item))
                        if isinstance(item, h5py.Dataset) else None)
    return values


def _counting_writes(monkeypatch):
    writes = []
    write = checkpoints.save_weights_atomically

    def counted(model, path):
        writes.append(path)
        return write(model, path)

    monkeypatch.setattr(checkpoints, "save_weights_atomically", counted)
    return writes


def test_the_best_epoch_is_written_once_when_fit_ends(tmp_path, monkeypatch):
    folder = tmp_path / "sandbox" / "trial"
    folder.mkdir(parents=True)
    writes = _counting_writes(monkeypatch)
    path = folder / "checkpoint.weights.h5"
    callback = compat_save_best_epoch(kt.Objective("score", "max"), str(path))
    checkpoints.make_atomic([callback])
    model = _model()
    x, y = _arrays()
    model.fit(x, y, batch_size=8, epochs=len(SCORES), verbose=0, shuffle=False,
              callbacks=[ScriptedScore(folder), callback])

    assert writes == [str(path)]  # improvements at epochs 0 and 1, one write
    written, best, last = (_datasets(p) for p in (
        path, folder / "epoch1.weights.h5", folder / f"epoch{len(SCORES) - 1}.weights.h5"))
    assert sorted(written) == sorted(best)
    for name, value in best.items():  # what Keras writes at the best epoch, exactly
        np.testing.assert_array_equal(written[name], value, err_msg=name)
    assert any(not np.array_equal(best[name], last[name]) for name in best)
    current = {v.path: np.array(v) for v in model.weights}
    model.load_weights(folder / f"epoch{len(SCORES) - 1}.weights.h5")
    for variable in model.weights:  # fit's model keeps its last epoch's weights
        np.testing.assert_array_equal(current[variable.path], np.array(variable))


class Counter(keras.layers.Layer):
    """A layer whose saved state is a plain value, not a variable."""

    def call(self, inputs):
        return inputs

    def save_own_variables(self, store):
        store["calls"] = np.array(7)


def test_state_that_is_not_a_variable_is_written_at_every_improvement(
        tmp_path, monkeypatch):
    folder = tmp_path / "sandbox" / "trial"
    folder.mkdir(parents=True)
    writes = _counting_writes(monkeypatch)
    keras.backend.clear_session()
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2)(Counter()(inputs)))
    model.compile(optimizer="sgd", loss="mse")
    assert checkpoints.saved_variables(model) is None
    callback = compat_save_best_epoch(kt.Objective("score", "max"), str(folder / "c.weights.h5"))
    checkpoints.make_atomic([callback])
    model.fit(np.ones((8, 4)), np.ones((8, 2)), epochs=len(SCORES), verbose=0,
              callbacks=[ScriptedScore(folder), callback])
    assert len(writes) == 2  # as KerasTuner does: at epochs 0 and 1


def compat_save_best_epoch(objective, filepath):
    from tfnas import compat

    return compat.save_best_epoch_class()(objective, filepath)


class SaveEveryEpoch(keras.callbacks.Callback):
    """Writes every epoch's weights with Keras's `save_weights`, one folder per fit."""

    fits = []  # [(folder, [val_accuracy per epoch])], in the order of the fits

    def __init__(self, folder):
        super().__init__()
        self.folder = folder

    def on_train_begin(self, logs=None):
        SaveEveryEpoch.fits.append((self.folder / f"fit{len(SaveEveryEpoch.fits)}", []))
        SaveEveryEpoch.fits[-1][0].mkdir(parents=True)

    def on_epoch_end(self, epoch, logs=None):
        folder, scores = SaveEveryEpoch.fits[-1]
        scores.append(logs["val_accuracy"])
        self.model.save_weights(folder / f"epoch{epoch}.weights.h5")


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["default", "mirrored"])
def test_a_search_writes_each_trial_s_best_epoch_once(digits, tmp_path, monkeypatch,
                                                      request, strategy):
    import tfnas

    writes = _counting_writes(monkeypatch)
    SaveEveryEpoch.fits.clear()
    space = ChainSpace((8, 8, 1), 10, max_layers=2, filters=(8,), operations=("conv3x3",),
                       activations=("relu",), strides=(1,), skips=False)
    tuner = tfnas.NASTuner(
        space, oracle="random", max_trials=2, seed=0,
        distribution_strategy=(request.getfixturevalue("mirrored")
                               if strategy == "mirrored" else None),
        directory=tmp_path / "sandbox" / "search", project_name="p",
        measure_latency=False, count_flops=False, log_dir=None, progress=False)
    tuner.search(digits.train, validation_data=digits.validation, epochs=3, verbose=0,
                 callbacks=[SaveEveryEpoch(tmp_path / "sandbox" / "epochs")])
    trials = sorted(tuner.oracle.trials.values(), key=lambda t: t.trial_id)
    assert [t.status for t in trials] == ["COMPLETED"] * 2
    paths = [tuner._get_checkpoint_fname(t.trial_id) for t in trials]
    assert sorted(writes) == sorted(paths)  # one write per trial
    for path, (folder, scores) in zip(paths, SaveEveryEpoch.fits):
        best = scores.index(max(scores))  # the first best epoch, as KerasTuner keeps
        expected = _datasets(folder / f"epoch{best}.weights.h5")
        written = _datasets(path)
        assert sorted(written) == sorted(expected)
        for name, value in expected.items():
            np.testing.assert_array_equal(written[name], value, err_msg=name)
