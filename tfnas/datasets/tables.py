"""`csv:PATH`: a table with a label column, numeric, categorical and text columns.

Column kinds: a column named by `text_columns` is text; any other column is
numeric when most of its values are numbers (then every value must be one),
else categorical. The preprocessing model takes one raw input per column
(named after the column, made a valid identifier): numeric columns go
through `Normalization`, categorical ones through `StringLookup` (one-hot,
plus one slot for values unseen in training), text through
`TextVectorization` (TF-IDF, multi-hot or token ids), all adapted on the
training split only.
"""

import csv
import re

import keras
import numpy as np
import tensorflow as tf

from tfnas.datasets import common, splits
from tfnas.datasets.splits import DataError

NUMERIC, CATEGORICAL, TEXT = "numeric", "categorical", "text"
TEXT_ENCODINGS = ("tf_idf", "multi_hot", "count", "int")
DEFAULT_MAX_TOKENS = 10_000
DEFAULT_SEQUENCE_LENGTH = 64


def _is_number(text):
    try:
        return np.isfinite(float(text))
    except ValueError:
        return False


def read_rows(path):
    """The header and rows of a CSV file, every row as long as the header."""
    try:
        with open(path, newline="", encoding="utf-8") as file:
            rows = list(csv.reader(file))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DataError(f"csv:{path}: cannot read the file ({error}); expected a UTF-8 "
                        "CSV file with a header row.") from error
    rows = [row for row in rows if row]
    if len(rows) < 2:
        raise DataError(f"csv:{path}: expected a header row and at least one data row. "
                        f"Received {len(rows)} row(s).")
    header = [name.strip() for name in rows[0]]
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise DataError(f"csv:{path}: line {number} has {len(row)} fields; expected "
                            f"{len(header)}, one per header column.")
    return header, rows[1:]


def input_names(columns):
    """A valid, unique input name (identifier) per column name."""
    names = {}
    for column in columns:
        name = re.sub(r"[^A-Za-z0-9_]", "_", column) or "column"
        if not name[0].isalpha():
            name = "c_" + name
        base, suffix = name, 2
        while name in names.values():
            name, suffix = f"{base}_{suffix}", suffix + 1
        names[column] = name
    return names


def column_kinds(path, header, rows, feature_columns, text_columns):
    """The kind of each feature column; numeric columns hold only numbers."""
    kinds = {}
    for column in feature_columns:
        if column in text_columns:
            kinds[column] = TEXT
            continue
        position = header.index(column)
        values = [row[position].strip() for row in rows]
        numbers = sum(_is_number(value) for value in values)
        if numbers * 2 <= len(values):
            kinds[column] = CATEGORICAL
            continue
        kinds[column] = NUMERIC
        for number, value in enumerate(values, start=2):
            if not _is_number(value):
                raise DataError(
                    f"csv:{path}: column `{column}` is numeric ({numbers} of {len(values)} "
                    f"values are numbers) but line {number} holds {value!r}; expected a "
                    "finite number. Fix the value, or make every value of the column text "
                    "to treat it as categorical.")
    return kinds


def _check_columns(path, header, label_column, text_columns):
    if label_column is None:
        raise DataError(f"csv:{path}: expected `label_column` (--label-column), the column "
                        f"of class labels. Columns: {header}")
    for name, argument in [(label_column, "label_column")] + [
            (column, "text_column") for column in text_columns]:
        if name not in header:
            raise DataError(f"csv:{path}: no column `{name}` (`{argument}`); expected one "
                            f"of the header's columns: {header}")
    if label_column in text_columns:
        raise DataError(f"csv:{path}: column `{label_column}` is both the label column and "
                        "a text column.")
    if len(set(header)) != len(header):
        raise DataError(f"csv:{path}: the header names a column twice: {header}")


def preprocessing_model(kinds, names, train_columns, text_encoding, max_tokens,
                        sequence_length):
    """The Keras model from raw columns to features, adapted on `train_columns`."""
    inputs, parts = {}, []
    for column, kind in kinds.items():
        name = names[column]
        dtype = "float32" if kind == NUMERIC else "string"
        inputs[name] = keras.Input(shape=(), name=name, dtype=dtype)
        values = train_columns[name]
        if kind == NUMERIC:
            layer = keras.layers.Normalization(name=f"{name}_normalization")
            layer.adapt(values[:, np.newaxis])
            parts.append(layer(keras.layers.Reshape((1,), name=f"{name}_column")(inputs[name])))
        elif kind == CATEGORICAL:
            vocabulary = sorted(set(values.tolist()))
            layer = keras.layers.StringLookup(vocabulary=vocabulary, output_mode="one_hot",
                                              name=f"{name}_lookup")
            parts.append(layer(inputs[name]))
        else:
            layer = keras.layers.TextVectorization(
                max_tokens=max_tokens, output_mode=text_encoding, name=f"{name}_vectorization",
                output_sequence_length=sequence_length if text_encoding == "int" else None)
            layer.adapt(tf.constant(values))
            parts.append(layer(inputs[name]))
    outputs = parts[0] if len(parts) == 1 else keras.layers.Concatenate(name="features")(parts)
    return keras.Model(inputs, outputs, name="preprocessing")


def load_csv(path, label_column=None, text_columns=(), batch_size=32, seed=0,
             text_encoding="tf_idf", max_tokens=DEFAULT_MAX_TOKENS,
             sequence_length=DEFAULT_SEQUENCE_LENGTH):
    """`csv:PATH` as the parts of a `SearchData` (see `tfnas.datasets.load`)."""
    where = f"csv:{path}"
    if text_encoding not in TEXT_ENCODINGS:
        raise ValueError(f"Received an invalid value for `text_encoding`, expected one of "
                         f"{TEXT_ENCODINGS}. Received: text_encoding={text_encoding!r}")
    text_columns = [text_columns] if isinstance(text_columns, str) else list(text_columns or ())
    header, rows = read_rows(path)
    _check_columns(path, header, label_column, text_columns)
    feature_columns = [column for column in header if column != label_column]
    if not feature_columns:
        raise DataError(f"{where}: no feature column besides the label `{label_column}`.")
    kinds = column_kinds(path, header, rows, feature_columns, text_columns)
    if text_encoding == "int" and list(kinds.values()) != [TEXT]:
        raise DataError(f"{where}: text_encoding='int' (token ids for a sequence space) "
                        "needs a single text column as the only feature; received "
                        f"features {kinds}. Use 'tf_idf' or 'multi_hot' to mix columns.")
    labels_at = header.index(label_column)
    empty = [number for number, row in enumerate(rows, start=2) if not row[labels_at].strip()]
    if empty:
        raise DataError(f"{where}: column `{label_column}` (the label) is empty on line "
                        f"{empty[0]}; expected a class label on every line.")
    labels, class_names = common.encode_labels(
        [row[labels_at].strip() for row in rows], f"{where} (column `{label_column}`)")
    indices = splits.stratified_indices(labels, class_names, seed,
                                        f"{where} (column `{label_column}`)")
    names = input_names(feature_columns)
    columns = {}
    for column, kind in kinds.items():
        values = [row[header.index(column)] for row in rows]
        columns[names[column]] = (np.array([float(v) for v in values], dtype="float32")
                                  if kind == NUMERIC
                                  else np.array([v.strip() if kind == CATEGORICAL else v
                                                 for v in values], dtype=object))
    train_columns = {name: values[indices["train"]] for name, values in columns.items()}
    preprocessing = preprocessing_model(kinds, names, train_columns, text_encoding,
                                        max_tokens, sequence_length)
    features = {}
    for split, index in indices.items():
        raw = tf.data.Dataset.from_tensor_slices(
            {name: values[index] for name, values in columns.items()}).batch(1024)
        features[split] = preprocessing.predict(raw, verbose=0)
    vocabulary_size = None
    if text_encoding == "int":
        layer = next(layer for layer in preprocessing.layers
                     if isinstance(layer, keras.layers.TextVectorization))
        vocabulary_size = int(layer.vocabulary_size())
        features = {split: f.astype("int32") for split, f in features.items()}
    record = splits.record(
        where, seed, indices, class_names, label_column=label_column,
        features=[{"name": column, "input": names[column], "kind": kind}
                  for column, kind in kinds.items()],
        text_encoding=text_encoding if TEXT in kinds.values() else None,
        input_shape=list(features["train"].shape[1:]), vocabulary_size=vocabulary_size)
    return dict(
        name=where, input_shape=tuple(features["train"].shape[1:]),
        num_classes=len(class_names), preprocessing=preprocessing, record=record,
        vocabulary_size=vocabulary_size,
        **common.from_features(features, {s: labels[i] for s, i in indices.items()},
                               batch_size, seed))
