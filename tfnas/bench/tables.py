"""Tabular benchmarks: an architecture's metrics by lookup instead of training."""

import csv
import json
import math
import os
import re

from tfnas import spaces
from tfnas.architecture import Architecture
from tfnas.spaces import nb201, nbmacro

DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
NAS_BENCH_MACRO = os.path.join(DATA_DIR, "nas-bench-macro_cifar10.json")
_COLUMN = re.compile(r"^(?P<name>[^\[\]]+)(\[(?P<index>\d+)\])?$")

#: How a built-in space writes an architecture as a table key.
KEY_ENCODERS = {"macro": nbmacro.to_code, "nb201": nb201.to_string}
#: The input shape each benchmark space is built for (CIFAR-10).
BENCHMARK_INPUT = ((32, 32, 3), 10)
#: Ground-truth tables made by `tfnas table` and packaged with tfnas, by short name.
PACKAGED_TABLES = {"digits": os.path.join(DATA_DIR, "digits.csv"),
                   "mnist1d": os.path.join(DATA_DIR, "mnist1d.csv")}
#: The key column of `tfnas table`'s tables, and the columns a strategy sees
#: (one run's validation accuracy) and is judged by (the mean test accuracy).
KEY_COLUMN = "arch"
SIGNAL = "val_acc[0]"
FINAL = "test_acc_mean"


def encode_key(space_name, values):
    """The table key of an architecture: the space's own string, or JSON."""
    encoder = KEY_ENCODERS.get(space_name)
    return encoder(values) if encoder else Architecture(values).to_json()


def column_value(row, column):
    """The value of `column` ("mean_acc", or "test_acc[0]" for a list) in a row.

    A CSV table's column may be named "test_acc[0]" itself."""
    if column in row:
        return float(row[column])
    match = _COLUMN.match(column)
    if not match or match["name"] not in row:
        raise KeyError(f"column {column!r} is not in the table (columns: {sorted(row)})")
    value = row[match["name"]]
    if match["index"] is not None:
        value = value[int(match["index"])]
    return float(value)


class Table:
    """A tabular benchmark over a search space.

    Args:
        rows: A mapping from architecture key (a string) to a dict of metrics.
        space: The `tfnas.spaces` space (an instance) whose architectures the
            keys encode.
        signal: The column a strategy sees (e.g. a validation accuracy).
        final: The column reported for the picked architecture.
        direction: "max" or "min", for both columns.
        source: Where the rows come from (a file), named in errors.

    Raises:
        KeyError: when a row lacks the signal or final column.
        ValueError: when a row's signal or final value is not a finite
            number; the error names the row and the column.
    """

    def __init__(self, rows, space, signal, final, direction="max", source=None):
        self.source = source
        if not rows:
            raise ValueError(f"{self._where()}Received an empty benchmark table.")
        if direction not in ("max", "min"):
            raise ValueError(
                "Received an invalid value for `direction`, expected 'max' or "
                f"'min'. Received: direction={direction!r}")
        self.rows = rows
        self.space = space
        self.space_name = spaces.name_of(space)
        self.signal = signal
        self.final = final
        self.direction = direction
        self.validate()

    def _where(self):
        return f"{self.source}: " if self.source else ""

    def validate(self):
        """Checks, for every row, that the signal and final columns are finite
        numbers, so a strategy never meets a bad row halfway through a run."""
        for key, row in self.rows.items():
            if not isinstance(key, str) or not isinstance(row, dict):
                raise ValueError(
                    f"{self._where()}expected rows keyed by architecture strings with "
                    f"a dict of metrics each. Received: {key!r}: {type(row).__name__}")
            for column in (self.signal, self.final):
                try:
                    value = column_value(row, column)
                except KeyError as error:
                    raise KeyError(f"{self._where()}row {key!r}: {error.args[0]}") from None
                except (TypeError, ValueError, IndexError):
                    value = None
                if value is None or not math.isfinite(value):
                    raise ValueError(
                        f"{self._where()}row {key!r}, column {column!r}: expected a "
                        f"finite number. Received: {_raw(row, column)!r}")

    def key(self, values):
        return encode_key(self.space_name, values)

    def lookup(self, values, column):
        """`column` of the architecture with these decision values."""
        key = self.key(values)
        if key not in self.rows:
            raise KeyError(f"architecture {key!r} is not in the table")
        return column_value(self.rows[key], column)

    def optimum(self):
        """The best value of the final column over the whole table."""
        values = [column_value(row, self.final) for row in self.rows.values()]
        return max(values) if self.direction == "max" else min(values)


def load_nas_bench_macro(path=NAS_BENCH_MACRO):
    """NAS-Bench-Macro (packaged with tfnas): the strategy sees one training
    run (`test_acc[0]`), the pick is judged by the mean of three (`mean_acc`)."""
    with open(path) as file:
        rows = json.load(file)
    space = spaces.NASBenchMacroSpace(*BENCHMARK_INPUT)
    return Table(rows, space, signal="test_acc[0]", final="mean_acc")


def _raw(row, column):
    if column in row:
        return row[column]
    match = _COLUMN.match(column)
    value = row.get(match["name"]) if match else None
    if match and match["index"] is not None and isinstance(value, (list, tuple)):
        index = int(match["index"])
        value = value[index] if index < len(value) else None
    return value


def _number(text):
    try:
        value = float(text)
    except (TypeError, ValueError):
        return text
    return value if math.isfinite(value) else text


def _unique_keys(pairs):
    """A JSON object's dict, refusing a key written twice."""
    result = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def load_table(path, space, key_column="arch", signal="signal", final="final",
               direction="max"):
    """A user's table from CSV (one row per architecture) or JSON (an object
    keyed by architecture, or a list of records with `key_column`).

    Keys stay strings (`10202202` is not a number); every row is checked up
    front (see `Table`) and a key that appears twice is an error.

    Args:
        path: A .csv or .json file.
        space: A `tfnas.spaces` name or instance; keys are its encoding
            (`nb201` strings, `macro` codes, else canonical Architecture JSON).
        key_column: The column holding the architecture key.
        signal, final, direction: see `Table`.
    """
    if isinstance(space, str):
        space = spaces.get(space, *BENCHMARK_INPUT)
    if path.endswith(".csv"):
        with open(path, newline="") as file:
            records = [{k: v if k == key_column else _number(v) for k, v in row.items()}
                       for row in csv.DictReader(file)]
    elif path.endswith(".json"):
        with open(path) as file:
            try:
                records = json.load(file, object_pairs_hook=_unique_keys)
            except ValueError as error:
                raise ValueError(f"{path}: not a valid table ({error}).") from error
        if isinstance(records, dict):
            return Table(records, space, signal, final, direction, source=path)
    else:
        raise ValueError(f"Expected a .csv or .json table. Received: {path!r}")
    missing = [i for i, record in enumerate(records)
               if not isinstance(record, dict) or record.get(key_column) is None]
    if missing:
        raise ValueError(
            f"{path}: rows {missing[:5]} have no key column `{key_column}`")
    rows = {}
    for number, record in enumerate(records):
        key = str(record[key_column])
        if key in rows:
            raise ValueError(
                f"{path}: the key {key!r} appears twice (rows {list(rows).index(key)} "
                f"and {number}); expected one row per architecture.")
        rows[key] = record
    return Table(rows, space, signal, final, direction, source=path)


def meta_path(table_path):
    """The meta file of a `tfnas table` table: `T.meta.json` for `T.csv`."""
    return os.path.splitext(table_path)[0] + ".meta.json"


def read_meta(path):
    """The meta record of a `tfnas table` table (space, arguments, dataset)."""
    try:
        with open(path) as file:
            meta = json.load(file)
    except ValueError as error:
        raise ValueError(f"{path}: not a valid table meta file ({error}). Restore it or "
                         "make the table again.") from error
    missing = [k for k in ("space", "space_args", "input_shape", "num_classes")
               if k not in meta]
    if not isinstance(meta, dict) or missing:
        raise ValueError(f"{path}: expected a table meta file with {missing}.")
    return meta


def is_ground_truth(path):
    """Whether `path` names a packaged `tfnas table` table or a table with a meta file."""
    return path in PACKAGED_TABLES or (
        isinstance(path, str) and path.endswith(".csv") and os.path.exists(meta_path(path)))


def load_ground_truth(path, signal=None, final=None):
    """A table made by `tfnas table` (or a packaged one: "digits", "mnist1d").

    The space is rebuilt from the table's meta file, with the arguments and
    input shape the table was made with, so that the strategies' keys match.

    Args:
        path: A packaged table's short name, or the path of a table's CSV.
        signal: The column strategies see; defaults to one run's validation
            accuracy, `val_acc[0]`.
        final: The column the pick is judged by; defaults to `test_acc_mean`.
    """
    if path in PACKAGED_TABLES:
        if not os.path.exists(PACKAGED_TABLES[path]):
            raise ValueError(f"The table {path!r} is not packaged with this version of "
                             f"tfnas (expected {PACKAGED_TABLES[path]}); make it with "
                             "`tfnas table`.")
        path = PACKAGED_TABLES[path]
    if not os.path.exists(meta_path(path)):
        raise ValueError(f"{path}: expected a table made by `tfnas table`, with its meta "
                         f"file {meta_path(path)}. Pass --space (and the key, signal and "
                         "final columns) for another table.")
    meta = read_meta(meta_path(path))
    space = spaces.get(meta["space"], meta["input_shape"], meta["num_classes"],
                       **meta["space_args"])
    return load_table(path, space, key_column=meta.get("key_column", KEY_COLUMN),
                      signal=signal or meta.get("signal", SIGNAL),
                      final=final or meta.get("final", FINAL))
