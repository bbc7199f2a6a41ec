"""A latency lookup table: per-operation latencies, summed per architecture.

As in FBNet and ProxylessNAS, the latency of a candidate is predicted
without running it: each operation chosen by `choose_op` is timed once, in
isolation, at the input shape it receives, on the machine that will serve
the model; an architecture's predicted latency is the sum of its operations'
entries plus a base (the stem, head and merges, measured as the median gap
between whole models and the sum of their operations).

`tfnas latency-table` measures a table for a space and writes it as JSON;
`NASTuner(latency_predictor=table)` records `predicted_latency_ms` for every
trial, usable as the cost of `tfnas.objectives.MnasNetReward`.
"""

import statistics

import keras

from tfnas import decisions, estimation
from tfnas.architecture import Architecture
from tfnas.atomic import write_atomically

PREDICTED_LATENCY = "predicted_latency_ms"
TABLE_KEYS = ("space", "base_ms", "batch_size", "repeats", "entries")


class _RecordingBuilder(decisions.CandidateBuilder):
    """Builds the selected candidates, remembering which layer each op is."""

    def __init__(self):
        self.ops = []  # (decision name, chosen label, layer)

    def op(self, hp, name, candidates, default):
        layer = super().op(hp, name, candidates, default)
        self.ops.append((name, hp.get(name), layer))
        return layer


def _build_recording(space, values):
    hp = Architecture(values).to_hyperparameters()
    builder = _RecordingBuilder()
    hp.tfnas_builder = builder
    model = space.build(hp)
    ops = []
    for name, label, layer in builder.ops:
        shape = tuple(layer.input.shape)  # each op layer is called once
        ops.append((f"{name}={label}@{'x'.join(str(d) for d in shape[1:])}", layer, shape))
    return model, ops


class LatencyTable:
    """Per-operation latencies of a space on one machine.

    Args:
        space: The search space (a `tfnas.spaces.SearchSpace`).
        entries: `{key: milliseconds}`, a key per (decision, chosen
            operation, input shape).
        base_ms: Latency of everything outside the chosen operations.
        batch_size: The inference batch size measured.
        repeats: Timed repetitions per measurement (the median is kept).
        measure_missing: Whether `predict` times an operation it meets for
            the first time (and adds it) instead of raising KeyError.
    """

    def __init__(self, space, entries=None, base_ms=0.0, batch_size=1, repeats=20,
                 measure_missing=True):
        self.space = space
        self.entries = dict(entries or {})
        self.base_ms = float(base_ms)
        self.batch_size = batch_size
        self.repeats = repeats
        self.measure_missing = measure_missing

    def time_layer(self, layer, shape):
        """Median milliseconds of `layer` alone on inputs of `shape`."""
        inputs = keras.Input(shape[1:])
        return estimation.measure_latency(keras.Model(inputs, layer(inputs)),
                                          batch_size=self.batch_size, repeats=self.repeats)

    def _entry(self, key, layer, shape):
        if key not in self.entries:
            if not self.measure_missing:
                raise KeyError(f"No latency for {key} in the table.")
            self.entries[key] = self.time_layer(layer, shape)
        return self.entries[key]

    def operations(self, values):
        """`{key: milliseconds}` of an architecture's chosen operations."""
        _, ops = _build_recording(self.space, values)
        return {key: self._entry(key, layer, shape) for key, layer, shape in ops}

    def predict(self, values):
        """Predicted latency in milliseconds of the architecture `values`."""
        return self.base_ms + sum(self.operations(values).values())

    __call__ = predict

    @classmethod
    def measure(cls, space, architectures, batch_size=1, repeats=20, progress=None):
        """Measures a table from sample architectures of `space`.

        Every operation met in `architectures` is timed once per input
        shape; the base is the median, over the architectures, of the whole
        model's latency minus the sum of its operations.

        Args:
            space: The search space.
            architectures: Decision-value dicts (e.g. random samples).
            batch_size, repeats: As for `LatencyTable`.
            progress: Optional callable `(index, count)` after each one.
        """
        table = cls(space, batch_size=batch_size, repeats=repeats)
        gaps = []
        for index, values in enumerate(architectures):
            model, ops = _build_recording(space, values)
            total = sum(table._entry(key, layer, shape) for key, layer, shape in ops)
            whole = estimation.measure_latency(model, batch_size=batch_size, repeats=repeats)
            gaps.append(whole - total)
            if progress is not None:
                progress(index + 1, len(architectures))
        table.base_ms = max(0.0, statistics.median(gaps)) if gaps else 0.0
        return table

    def to_json(self):
        from tfnas import project

        return {"space": project.space_record(self.space), "base_ms": self.base_ms,
                "batch_size": self.batch_size, "repeats": self.repeats,
                "entries": dict(sorted(self.entries.items()))}

    def save(self, path):
        write_atomically(path, self.to_json())

    @classmethod
    def load(cls, path, space=None, measure_missing=True):
        """Loads a table; `space` defaults to the built-in space it names.

        Raises:
            tfnas.errors.CorruptFileError: when the file is not a latency
                table (invalid JSON, or keys missing); the error names them.
        """
        from tfnas import errors, project

        way_out = "Measure the table again with `tfnas latency-table --output PATH`."
        record = errors.read_json(path, way_out)
        missing = [key for key in TABLE_KEYS
                   if key not in record and (key != "space" or space is None)]
        if missing or not isinstance(record["entries"], dict):
            raise errors.CorruptFileError(
                path, f"a latency table needs the keys {list(TABLE_KEYS)}, with "
                f"\"entries\" an object; missing: {missing}", way_out)
        if space is None:
            space = project.build_space(record, source=path)
        return cls(space, record["entries"], record["base_ms"], record["batch_size"],
                   record["repeats"], measure_missing=measure_missing)
