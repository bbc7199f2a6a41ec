"""`images:DIR`: a folder with one subfolder of images per class.

Read with `keras.utils.image_dataset_from_directory`; every image is decoded
once up front, so an unreadable file fails before any training.
"""

import os

import keras
import numpy as np
import tensorflow as tf

from tfnas.datasets import common, splits
from tfnas.datasets.splits import DataError

# The extensions image_dataset_from_directory reads.
IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
DEFAULT_IMAGE_SIZE = (64, 64)


def _class_folders(directory):
    if not os.path.isdir(directory):
        raise DataError(f"images:{directory}: no such folder; expected a folder with one "
                        "subfolder of images per class.")
    folders = sorted(name for name in os.listdir(directory)
                     if os.path.isdir(os.path.join(directory, name)))
    if not folders:
        raise DataError(f"images:{directory}: the folder has no class subfolders; expected "
                        "one subfolder of images per class (e.g. DIR/cat/1.png, DIR/dog/2.png).")
    for name in folders:
        folder = os.path.join(directory, name)
        found = any(file.lower().endswith(IMAGE_EXTENSIONS)
                    for _, _, files in os.walk(folder) for file in files)
        if not found:
            raise DataError(f"images:{directory}: the class folder {folder} is empty; expected "
                            f"images ({', '.join(IMAGE_EXTENSIONS)}). Add images or remove it.")
    return folders


def _check_readable(paths):
    for path in paths:
        try:
            tf.io.decode_image(tf.io.read_file(path), expand_animations=False)
        except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError) as error:
            raise DataError(f"{path}: unreadable image ({error.message.splitlines()[0]}); "
                            "expected a BMP, GIF, JPEG or PNG file. Fix or remove it."
                            ) from None


def _check_image_size(image_size):
    size = tuple(image_size) if isinstance(image_size, (list, tuple)) else ()
    if len(size) != 2 or not all(isinstance(s, int) and s > 0 for s in size):
        raise ValueError("Received an invalid value for `image_size`, expected (height, "
                         f"width), two positive integers. Received: image_size={image_size!r}")
    return size


def rescaling_model(image_shape):
    """Pixels from [0, 255] to [0, 1]: the range is known, no statistics needed."""
    inputs = keras.Input(shape=image_shape, name="image", dtype="float32")
    outputs = keras.layers.Rescaling(1.0 / 255, name="rescaling")(inputs)
    return keras.Model(inputs, outputs, name="preprocessing")


def load_images(directory, image_size=None, batch_size=32, seed=0, color_mode="rgb"):
    """`images:DIR` as the parts of a `SearchData` (see `tfnas.datasets.load`)."""
    where = f"images:{directory}"
    image_size = _check_image_size(image_size or DEFAULT_IMAGE_SIZE)
    class_names = _class_folders(directory)
    dataset = keras.utils.image_dataset_from_directory(
        directory, labels="inferred", label_mode="int", class_names=class_names,
        color_mode=color_mode, image_size=image_size, batch_size=None, shuffle=False,
        verbose=False)
    paths = list(dataset.file_paths)
    _check_readable(paths)
    labels = np.array([class_names.index(os.path.relpath(p, directory).split(os.sep)[0])
                       for p in paths], dtype="int32")
    indices = splits.stratified_indices(labels, class_names, seed, where)
    preprocessing = rescaling_model(tuple(image_size) + (dataset.element_spec[0].shape[-1],))
    rescale = preprocessing.get_layer("rescaling")
    datasets = {}
    for split, index in indices.items():
        mask = np.zeros(len(paths), dtype=bool)
        mask[index] = True
        mask = tf.constant(mask)
        # The filter leaves the size unknown to tf.data; restored, Keras knows
        # each epoch's steps (a progress bar with its total, no "ran out of
        # data" warning at the first epoch's end, schedules sized by steps).
        subset = (dataset.enumerate()
                  .filter(lambda i, example: tf.gather(mask, i))
                  .map(lambda i, example: (rescale(example[0]), example[1]))
                  .apply(tf.data.experimental.assert_cardinality(len(index))))
        datasets[split] = common.batched(subset, batch_size, split, seed, cache=True)
    input_shape = tuple(int(d) for d in dataset.element_spec[0].shape)
    return dict(
        name=where, input_shape=input_shape, num_classes=len(class_names),
        preprocessing=preprocessing,
        record=splits.record(where, seed, indices, class_names, image_size=list(image_size),
                             input_shape=list(input_shape),
                             preprocessing="Rescaling 1/255 (raw pixels in [0, 255])"),
        **datasets)
