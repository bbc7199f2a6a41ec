"""Your own data for a search: `images:DIR`, `csv:PATH` and `npz:PATH`.

Each source is split 60/20/20 into train, validation and test (stratified,
by the seed; the search never reads test), checked before any training (one
`DataError` naming the file, column or folder), and comes with a Keras
preprocessing model adapted on the training split only, which every export
puts in front of the trained model (see `tfnas.datasets.preprocessing`).
"""

from tfnas.datasets.splits import DataError

IMAGES_PREFIX = "images:"
CSV_PREFIX = "csv:"
NPZ_PREFIX = "npz:"
PREFIXES = (IMAGES_PREFIX, CSV_PREFIX, NPZ_PREFIX)

__all__ = ["DataError", "PREFIXES", "is_source", "load", "space_arguments"]


def is_source(dataset):
    """Whether `dataset` names one of these sources."""
    return isinstance(dataset, str) and dataset.startswith(PREFIXES)


def load(dataset, batch_size=32, seed=0, image_size=None, label_column=None,
         text_columns=(), text_encoding="tf_idf"):
    """The parts of a `tfnas.data.SearchData` for `images:`, `csv:` or `npz:` sources.

    Args:
        dataset: "images:DIR", "csv:PATH" or "npz:PATH".
        batch_size, seed: Of the batched splits; `seed` also draws the split.
        image_size: (height, width) images are resized to (images only;
            default (64, 64)).
        label_column: The column of class labels (csv only, required).
        text_columns: Columns of free text (csv only).
        text_encoding: How text columns become features: "tf_idf" (default),
            "multi_hot" or "count" (bags of words, for the MLP space), or
            "int" (token ids for a sequence space; the vocabulary size is
            then `SearchData.vocabulary_size`).

    Returns:
        A dict of `SearchData` fields.
    """
    prefix, _, path = dataset.partition(":")
    if not path:
        raise ValueError(f"Received an empty path: dataset={dataset!r}; expected "
                         f"{prefix}:PATH.")
    others = {"image_size": (image_size, IMAGES_PREFIX),
              "label_column": (label_column, CSV_PREFIX),
              "text_columns": (text_columns or None, CSV_PREFIX)}
    for argument, (value, owner) in others.items():
        if value is not None and prefix + ":" != owner:
            raise ValueError(f"`{argument}` applies to '{owner}' datasets only. "
                             f"Received: {argument}={value!r} with dataset={dataset!r}")
    if prefix + ":" == IMAGES_PREFIX:
        from tfnas.datasets.images import load_images

        return load_images(path, image_size=image_size, batch_size=batch_size, seed=seed)
    if prefix + ":" == CSV_PREFIX:
        from tfnas.datasets.tables import load_csv

        return load_csv(path, label_column=label_column, text_columns=text_columns,
                        batch_size=batch_size, seed=seed, text_encoding=text_encoding)
    from tfnas.datasets.arrays import load_npz

    return load_npz(path, batch_size=batch_size, seed=seed)


def space_arguments(space_class, data, given):
    """What the data tells a space beyond its input shape and classes.

    A space whose constructor takes `vocabulary_size` (one that embeds token
    ids) gets the data's, unless `given` (the user's space arguments) sets it.
    """
    import inspect

    size = getattr(data, "vocabulary_size", None)
    if size is None or "vocabulary_size" in given:
        return {}
    try:
        parameters = inspect.signature(space_class).parameters
    except (TypeError, ValueError):
        return {}
    return {"vocabulary_size": size} if "vocabulary_size" in parameters else {}
