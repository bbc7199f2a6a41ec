"""Cheaper collections between trials keep freeing every trial's model."""

import gc
import weakref

import keras
import keras_tuner as kt
import pytest

import tfnas
from tfnas import gc_scope


@pytest.fixture
def unfrozen():
    """Nothing set aside during the test, as in a fresh process (conftest.py
    sets aside what the collection of the tests left alive)."""
    gc.unfreeze()
    yield
    gc.collect()
    gc.freeze()


def test_search_collections_set_aside_then_return_objects(unfrozen):
    assert gc.get_freeze_count() == 0
    with gc_scope.SearchCollections():
        frozen = gc.get_freeze_count()
        assert frozen > 0
        keep = [[] for _ in range(100)]
        # Nested, the outer one owns the freeze: the new lists are not set
        # aside. (The count may drop: frozen objects are still freed by
        # reference counting, e.g. by another thread.)
        with gc_scope.SearchCollections():
            assert 0 < gc.get_freeze_count() <= frozen
        assert 0 < gc.get_freeze_count() <= frozen and keep
    assert gc.get_freeze_count() == 0


@pytest.mark.slow
def test_each_trials_model_is_collected_before_the_next_is_built(tmp_path, digits, unfrozen):
    models, alive_at_build, frozen_at_build = [], [], []

    class Space(kt.HyperModel):
        def build(self, hp):
            hp.Int("repetition", 0, 10**6)
            alive_at_build.append([ref() is not None for ref in models])
            frozen_at_build.append(gc.get_freeze_count() > 0)
            model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                                      keras.layers.Dense(10, activation="softmax")])
            model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                          metrics=["accuracy"])
            models.append(weakref.ref(model))
            return model

    tuner = tfnas.NASTuner(Space(), max_trials=3, seed=0, directory=tmp_path / "p" / "q",
                           measure_latency=False, count_flops=False, progress=False)
    tuner.search(digits.train.take(2), validation_data=digits.validation.take(1),
                 epochs=1, verbose=0)
    # Keras models hold reference cycles: only a collection frees them.
    # The first build discovers the space (before the search).
    assert alive_at_build == [[], [False], [False, False], [False, False, False]]
    assert frozen_at_build == [False, True, True, True]  # from the search's beginning
    assert gc.get_freeze_count() == 0
