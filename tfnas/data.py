"""Datasets for searches: digits, MNIST-1D, tensorflow-datasets, your own files.

Each returns a `SearchData`: train, validation and test splits as batched
`tf.data.Dataset`s of `(inputs, label)` pairs, plus the input shape and the
number of classes a search space needs. Your own images, tables and arrays
(`images:DIR`, `csv:PATH`, `npz:PATH`) are read by `tfnas.datasets`.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from tfnas.validation import check_positive_int

DIGITS = "digits"
MNIST1D = "mnist1d"
TFDS_PREFIX = "tfds:"


@dataclasses.dataclass
class SearchData:
    """The splits of a classification dataset, ready for `tuner.search`."""

    name: str
    train: tf.data.Dataset
    validation: tf.data.Dataset
    test: tf.data.Dataset
    input_shape: tuple
    num_classes: int
    #: Keras model from raw inputs to the features the splits hold (adapted
    #: on the training split), which exports put in front of the trained
    #: model; None when the splits hold the raw inputs.
    preprocessing: object = None
    #: The source, seed, split sizes, classes and features (JSON).
    record: dict = None
    #: Size of the token vocabulary when the inputs are token ids.
    vocabulary_size: int = None

    def save(self, project_dir):
        """Writes `data.json` and `preprocessing.keras` into a project folder,
        where `tfnas report` and every export of the project find them."""
        from tfnas.datasets import preprocessing

        preprocessing.save(project_dir, self.record, self.preprocessing)

    def on_raw_inputs(self, model):
        """`model` behind this data's preprocessing: the model of raw inputs."""
        from tfnas.datasets import preprocessing

        return preprocessing.with_preprocessing(self.preprocessing, model)


def digits_arrays(seed=0):
    """scikit-learn's 8x8 handwritten digits, split 60/20/20, stratified.

    The split depends only on `seed`, so every run of a search with the same
    seed sees the same examples.

    Returns:
        A dict with keys "train", "validation" and "test", each an
        `(images, labels)` pair: float32 images of shape (n, 8, 8, 1) scaled
        to [0, 1] and int32 labels.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = (digits.images / 16.0).astype("float32")[..., np.newaxis]
    labels = digits.target.astype("int32")
    x_rest, x_test, y_rest, y_test = train_test_split(
        images, labels, test_size=0.2, random_state=seed, stratify=labels
    )
    return _stratified_split(x_rest, y_rest, x_test, y_test, seed)


def _stratified_split(x_rest, y_rest, x_test, y_test, seed):
    """Train/validation (75/25, stratified, seeded) plus the given test split."""
    from sklearn.model_selection import train_test_split

    x_train, x_val, y_train, y_val = train_test_split(
        x_rest, y_rest, test_size=0.25, random_state=seed, stratify=y_rest
    )
    return {
        "train": (x_train, y_train),
        "validation": (x_val, y_val),
        "test": (x_test, y_test),
    }


def mnist1d_arrays(seed=0):
    """MNIST-1D (Greydanus, 2020), generated locally by the `mnist1d` package.

    The package's default arguments make 4,000 training and 1,000 test
    sequences of length 40 (its own generation seed is fixed, so the examples
    never change); the 4,000 are split 75/25 into train and validation,
    stratified, by `seed`. The package's test split is the test split.

    Returns:
        A dict with keys "train", "validation" and "test", each an
        `(sequences, labels)` pair: float32 sequences of shape (n, 40, 1)
        and int32 labels.
    """
    from mnist1d.data import get_dataset_args, make_dataset

    generated = make_dataset(get_dataset_args())
    x_rest = generated["x"].astype("float32")[..., np.newaxis]
    x_test = generated["x_test"].astype("float32")[..., np.newaxis]
    y_rest = generated["y"].astype("int32")
    y_test = generated["y_test"].astype("int32")
    return _stratified_split(x_rest, y_rest, x_test, y_test, seed)


def leave_order_to_dataset(fit_args, fit_kwargs):
    """`model.fit`'s keyword arguments with `shuffle=False` unless given,
    when the training data (`fit_args[0]` or `x`) is a `tf.data.Dataset`.

    A dataset orders itself (these shuffle their training split every
    epoch); Keras ignores fit's default `shuffle=True` for one, and warns.
    """
    data = fit_args[0] if fit_args else fit_kwargs.get("x")
    if isinstance(data, tf.data.Dataset):
        return {"shuffle": False, **fit_kwargs}
    return fit_kwargs


def _batched(dataset, batch_size, shuffle_seed=None):
    if shuffle_seed is not None:
        dataset = dataset.shuffle(4096, seed=shuffle_seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _load_arrays(name, splits, num_classes, batch_size, seed):
    datasets = {
        split: _batched(
            tf.data.Dataset.from_tensor_slices(arrays),
            batch_size,
            shuffle_seed=seed if split == "train" else None,
        )
        for split, arrays in splits.items()
    }
    return SearchData(
        name=name,
        input_shape=splits["train"][0].shape[1:],
        num_classes=num_classes,
        record={"source": name, "seed": seed,
                "split_sizes": {split: len(arrays[1]) for split, arrays in splits.items()},
                "class_names": [str(label) for label in range(num_classes)]},
        **datasets,
    )


def load_digits_data(batch_size=32, seed=0):
    """The digits dataset as a `SearchData`."""
    return _load_arrays(DIGITS, digits_arrays(seed), 10, batch_size, seed)


def load_mnist1d_data(batch_size=32, seed=0):
    """MNIST-1D as a `SearchData` (see `mnist1d_arrays`)."""
    return _load_arrays(MNIST1D, mnist1d_arrays(seed), 10, batch_size, seed)


def _to_float(image, label):
    if image.dtype.is_integer:
        image = tf.cast(image, tf.float32) / 255.0
    return image, label


def load_tfds_data(name, batch_size=32, seed=0, data_dir=None, download=True, cache=True):
    """A tensorflow-datasets classification dataset as a `SearchData`.

    Uses the dataset's "validation" split when it has one, else the last 10%
    of "train"; its "test" split when it has one, else the last 10% of
    "train" too. Integer images are scaled to [0, 1].

    Args:
        name: The TFDS name, e.g. "cifar10" or "mnist:3.0.1".
        batch_size: Batch size of the returned datasets.
        seed: Seed of the training-set shuffle.
        data_dir: Where TFDS keeps its data (TFDS's default when None).
        download: Whether TFDS may download and prepare the data. With
            False, the data must already be prepared in `data_dir`.
        cache: True to cache the decoded, normalized examples in memory after
            the first epoch, a file path prefix to cache them on disk (for
            data larger than memory), False for no cache.
    """
    import tensorflow_datasets as tfds

    builder = tfds.builder(name, data_dir=data_dir)
    if download:
        builder.download_and_prepare()
    elif not builder.is_prepared():
        raise FileNotFoundError(
            f"Dataset `{name}` is not prepared in {builder.data_dir}; run once "
            "with download=True (or `tfds build`), or pass the `data_dir` "
            "that holds it."
        )
    info = builder.info
    if not info.supervised_keys:
        raise ValueError(
            f"Dataset `{name}` has no supervised (input, label) keys, so it "
            "cannot be used for a classification search. Received a dataset "
            f"with features: {list(info.features.keys())}"
        )
    input_key, label_key = info.supervised_keys
    label_feature = info.features[label_key]
    if not hasattr(label_feature, "num_classes"):
        raise ValueError(
            f"Dataset `{name}`: expected the label feature `{label_key}` to be a "
            f"ClassLabel. Received: {type(label_feature).__name__}"
        )
    splits = set(info.splits.keys())
    if "train" not in splits:
        raise ValueError(
            f"Dataset `{name}` has no 'train' split. Received splits: {sorted(splits)}"
        )
    held_out = []
    if "validation" not in splits:
        held_out.append("validation")
    if "test" not in splits:
        held_out.append("test")
    train_percent = 100 - 10 * len(held_out)
    split_names = {"train": f"train[:{train_percent}%]"}
    for index, split in enumerate(held_out):
        start = train_percent + 10 * index
        split_names[split] = f"train[{start}%:{start + 10}%]"
    for split in ("validation", "test"):
        split_names.setdefault(split, split)

    datasets = {}
    for split, tfds_split in split_names.items():
        dataset = builder.as_dataset(split=tfds_split, as_supervised=True)
        dataset = dataset.map(_to_float, num_parallel_calls=tf.data.AUTOTUNE)
        if cache:
            dataset = dataset.cache(f"{cache}-{split}" if isinstance(cache, str) else "")
        datasets[split] = _batched(
            dataset, batch_size, shuffle_seed=seed if split == "train" else None
        )
    return SearchData(
        name=TFDS_PREFIX + name,
        input_shape=tuple(info.features[input_key].shape),
        num_classes=int(label_feature.num_classes),
        **datasets,
    )


def load_data(dataset=DIGITS, batch_size=32, seed=0, data_dir=None, **source_options):
    """Loads a dataset as a `SearchData`.

    Args:
        dataset: "digits", "mnist1d", "tfds:NAME", or your own data:
            "images:DIR" (one subfolder of images per class), "csv:PATH"
            (with `label_column`) or "npz:PATH" (arrays `x` and `y`).
        batch_size: Batch size of the returned datasets.
        seed: Seed of the split and of the training-set shuffle.
        data_dir: tensorflow-datasets data directory.
        **source_options: For your own data: `image_size`, `label_column`,
            `text_columns`, `text_encoding` (see `tfnas.datasets.load`).

    Raises:
        tfnas.datasets.DataError: when the data cannot be searched on; the
            message names the file, column or folder.
    """
    from tfnas import datasets

    check_positive_int(batch_size, "batch_size")
    if datasets.is_source(dataset):
        options = {k: v for k, v in source_options.items() if v is not None}
        return SearchData(**datasets.load(dataset, batch_size=batch_size, seed=seed,
                                          **options))
    given = {k: v for k, v in source_options.items() if v}
    if given:
        raise ValueError(f"{sorted(given)} apply to 'images:', 'csv:' and 'npz:' datasets "
                         f"only. Received: dataset={dataset!r}")
    if dataset == DIGITS:
        return load_digits_data(batch_size=batch_size, seed=seed)
    if dataset == MNIST1D:
        return load_mnist1d_data(batch_size=batch_size, seed=seed)
    if isinstance(dataset, str) and dataset.startswith(TFDS_PREFIX):
        name = dataset[len(TFDS_PREFIX):]
        if not name:
            raise ValueError("Received an empty TFDS name: dataset='tfds:'")
        return load_tfds_data(name, batch_size=batch_size, seed=seed, data_dir=data_dir)
    raise ValueError(
        "Received an invalid value for `dataset`, expected 'digits', 'mnist1d', "
        "'tfds:NAME' (e.g. 'tfds:cifar10'), 'images:DIR', 'csv:PATH' or 'npz:PATH'. "
        f"Received: dataset={dataset!r}"
    )
