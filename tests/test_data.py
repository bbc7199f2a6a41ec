import os

import numpy as np
import pytest
import tensorflow_datasets as tfds

import tfnas
from tfnas import data


def test_digits_split_is_deterministic_disjoint_and_stratified():
    first, second = data.digits_arrays(seed=0), data.digits_arrays(seed=0)
    sizes = {split: len(first[split][1]) for split in first}
    assert sizes == {"train": 1077, "validation": 360, "test": 360}
    for split in first:
        np.testing.assert_array_equal(first[split][0], second[split][0])
    rows = {split: {x.tobytes() for x in first[split][0]} for split in first}
    assert not rows["test"] & rows["train"] and not rows["test"] & rows["validation"]
    for split in first:
        assert np.bincount(first[split][1]).min() >= 0.09 * sizes[split]
    assert first["train"][0].dtype == np.float32 and first["train"][0].max() <= 1.0
    other = data.digits_arrays(seed=1)
    assert not np.array_equal(other["test"][1], first["test"][1])


def test_load_data_digits():
    loaded = tfnas.load_data("digits", batch_size=50)
    assert loaded.input_shape == (8, 8, 1) and loaded.num_classes == 10
    images, labels = next(iter(loaded.train))
    assert images.shape == (50, 8, 8, 1) and labels.shape == (50,)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"dataset": "mnist"}, "'digits', 'mnist1d', 'tfds:NAME'"),
        ({"dataset": "tfds:"}, "empty TFDS name"),
        ({"batch_size": 0}, "`batch_size`"),
    ],
)
def test_load_data_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tfnas.load_data(**kwargs)


class TinyDigits(tfds.core.GeneratorBasedBuilder):
    """Digits written in TFDS format: train and test splits, no validation."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(8, 8, 1)),
                "label": tfds.features.ClassLabel(num_classes=10),
            }),
            supervised_keys=("image", "label"),
        )

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples("train"),
                "test": self._generate_examples("test")}

    def _generate_examples(self, split):
        images, labels = data.digits_arrays()[split]
        for index, (image, label) in enumerate(zip(images[:200], labels[:200])):
            yield index, {"image": (image * 255).astype(np.uint8), "label": int(label)}


class UnlabelledDigits(TinyDigits):
    """The same images without supervised keys."""

    def _info(self):
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(8, 8, 1)),
                "label": tfds.features.ClassLabel(num_classes=10),
            }),
        )


def test_tfds_dataset_is_prepared_read_and_searched(tmp_path, capsys):
    loaded = tfnas.load_data("tfds:tiny_digits", batch_size=20, data_dir=str(tmp_path))
    assert loaded.name == "tfds:tiny_digits"
    assert loaded.input_shape == (8, 8, 1) and loaded.num_classes == 10
    counts = {split: sum(int(y.shape[0]) for _, y in getattr(loaded, split))
              for split in ("train", "validation", "test")}
    # No validation split in the dataset: the last 10% of train is held out.
    assert counts == {"train": 180, "validation": 20, "test": 200}
    images, _ = next(iter(loaded.train))
    assert images.dtype.name == "float32" and float(images.numpy().max()) <= 1.0

    space = tfnas.spaces.get("chain", loaded.input_shape, loaded.num_classes,
                             max_layers=1, filters=(8,))
    tuner = tfnas.NASTuner(space, max_trials=1, directory=tmp_path / "search")
    tuner.search(loaded.train, validation_data=loaded.validation, epochs=1, verbose=0)
    assert [t.status for t in tuner.oracle.trials.values()] == ["COMPLETED"]

    # The prepared files are read back by TFDS alone (download=False), cached
    # on disk when asked.
    again = data.load_tfds_data("tiny_digits", batch_size=20, data_dir=str(tmp_path),
                                download=False, cache=str(tmp_path / "cache"))
    for split in ("train", "validation", "test"):
        for _ in range(2):  # the second epoch reads the cache
            labels = np.concatenate([y.numpy() for _, y in getattr(again, split)])
            expected = np.concatenate([y.numpy() for _, y in getattr(loaded, split)])
            assert len(labels) == counts[split]
            if split != "train":  # train is shuffled
                np.testing.assert_array_equal(labels, expected)
    assert any(name.startswith("cache-train") for name in os.listdir(tmp_path))
    with pytest.raises(FileNotFoundError, match="`tiny_digits` is not prepared"):
        data.load_tfds_data("tiny_digits", data_dir=str(tmp_path / "empty"), download=False)


def test_tfds_dataset_without_labels_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="no supervised \\(input, label\\) keys"):
        tfnas.load_data("tfds:unlabelled_digits", data_dir=str(tmp_path))


def test_mnist1d_is_generated_locally_split_by_seed_and_stratified():
    first, again = data.mnist1d_arrays(seed=0), data.mnist1d_arrays(seed=0)
    sizes = {split: len(first[split][1]) for split in first}
    assert sizes == {"train": 3000, "validation": 1000, "test": 1000}
    assert first["train"][0].shape[1:] == (40, 1)
    np.testing.assert_array_equal(first["train"][0], again["train"][0])
    other = data.mnist1d_arrays(seed=1)
    assert not np.array_equal(first["train"][1], other["train"][1])
    # The test split is the package's own and never depends on the seed.
    np.testing.assert_array_equal(first["test"][0], other["test"][0])
    # Stratified: each class is split 3 to 1 between train and validation.
    train_counts = np.bincount(first["train"][1])
    validation_counts = np.bincount(first["validation"][1])
    assert np.all(np.abs(3 * validation_counts - train_counts) <= 3)
    loaded = tfnas.load_data("mnist1d", batch_size=100)
    assert loaded.input_shape == (40, 1) and loaded.num_classes == 10
