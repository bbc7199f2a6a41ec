"""Ground-truth tables: every architecture of a small space, trained stand-alone.

`build_table` (and `tfnas table`) enumerates every architecture of a space,
trains each one with several seeds through `NASTuner` (the one place that
trains), and writes a CSV table that `tfnas bench` reads:

- `arch`: the architecture key (`tfnas.bench.encode_key`), `description`;
- `val_acc[i]`, `test_acc[i]`: validation and test accuracy of the run with
  the i-th seed, at its best validation epoch; `val_acc_mean`, `val_acc_std`,
  `test_acc_mean`, `test_acc_std`;
- `params`, `flops`, `latency_ms` (median over the seeds) and `train_time_s`
  (mean).

Next to `T.csv`: `T.meta.json` (the space, its arguments, the dataset and the
training settings: what `tfnas bench` rebuilds the space from) and
`T.runs.jsonl`, the journal of finished runs (`tfnas.bench.journal`). A
re-run resumes: finished (architecture, seed) runs are skipped.
"""

import copy
import csv
import gc
import io
import multiprocessing
import os
import queue as queue_module
import random
import signal
import statistics
import tempfile
import time
import traceback

from tfnas import atomic, errors
from tfnas.bench import journal
from tfnas.bench.tables import (FINAL, KEY_COLUMN, SIGNAL, encode_key, meta_path,
                                read_meta)

DEFAULT_LIMIT = 1000
FORMAT = "tfnas-ground-truth/1"
#: Meta entries a resumed table must share with the first run.
IDENTITY = ("space", "space_args", "dataset", "data_seed", "epochs", "batch_size",
            "seeds")


class SpaceTooLargeError(errors.TfnasError, ValueError):
    """The space has more architectures than a table is allowed to train."""


def discover_hyperparameters(space):
    """Every decision of `space`, conditional ones included, as KerasTuner
    discovers them when a search starts (it activates every conditional
    scope in turn)."""
    import keras_tuner as kt

    from tfnas import oracles
    from tfnas.lookup import SIGNAL as LOOKUP_SIGNAL, LookupTuner

    oracle = oracles.get("random", kt.Objective(LOOKUP_SIGNAL, "max"), max_trials=1)
    with tempfile.TemporaryDirectory() as directory:
        LookupTuner(oracle, space, score=lambda values: 0.0, directory=directory)
        return oracle.get_space()


def enumerate_space(space, limit=DEFAULT_LIMIT):
    """Every architecture of `space`: the values of its active decisions.

    Args:
        space: A `tfnas.spaces` space (anything with `size()` and `build(hp)`).
        limit: The largest number of architectures accepted.

    Returns:
        A list of decision-value dicts, one per architecture, each with
        exactly the decisions that are active for it.

    Raises:
        SpaceTooLargeError: when the space has more than `limit` architectures.
        ValueError: when the enumeration disagrees with `space.size()`.
    """
    from tfnas import moves

    size = _size(space)
    if size is not None and size > limit:
        raise SpaceTooLargeError(
            f"the space {_name(space)} has {size:,} architectures, more than the limit "
            f"of {limit:,} a table trains. Restrict it with --space-arg (e.g. fewer "
            "operations, filters or layers) or raise --limit.")
    architectures = moves.enumerate_architectures(discover_hyperparameters(space).space,
                                                  limit)
    if architectures is None:
        raise SpaceTooLargeError(
            f"the space {_name(space)} has more than {limit:,} architectures (or a "
            "decision with too many values to enumerate). Restrict it with "
            "--space-arg or raise --limit.")
    keys = {encode_key(_name(space), values) for values in architectures}
    if len(keys) != len(architectures) or (size is not None and len(keys) != size):
        raise ValueError(
            f"enumerating the space {_name(space)} gave {len(keys)} distinct architectures "
            f"({len(architectures)} in all), but its size() is {size}.")
    return architectures


def _size(space):
    try:
        return int(space.size())
    except (AttributeError, NotImplementedError):
        return None


def _name(space):
    from tfnas import spaces

    return spaces.name_of(space) or type(space).__name__


# Training (inside a worker).


def _test_accuracy_callback(test_data):
    import keras

    class TestAccuracy(keras.callbacks.Callback):
        """Adds `test_accuracy` to each epoch's logs, so that the tuner reads
        it at the best validation epoch along with the other metrics."""

        def on_epoch_end(self, epoch, logs=None):
            if logs is not None:
                result = self.model.evaluate(test_data, verbose=0, return_dict=True)
                logs["test_accuracy"] = float(result["accuracy"])

        def __deepcopy__(self, memo):  # KerasTuner copies callbacks per trial
            return TestAccuracy()

    return TestAccuracy()


def _table_tuner(space, jobs, on_finished, directory):
    """A `NASTuner` whose trials are the given runs, each seeded, reporting
    each finished run to `on_finished(job, trial)`."""
    import keras

    from tfnas.oracles.base import NASOracle
    from tfnas.trials import RUNNING, STOPPED
    from tfnas.tuner import NASTuner

    class RunsOracle(NASOracle):
        """Proposes the runs of `jobs` (an iterator of job dicts) in order."""

        def __init__(self):
            super().__init__(objective="val_accuracy", max_trials=None,
                             max_consecutive_failed_trials=None)
            self.jobs = {}

        def propose(self, rng):
            job = next(jobs, None)
            if job is None:
                return {"status": STOPPED, "values": None}
            self._pending = job
            return {"status": RUNNING, "values": dict(job["values"])}

        def populate_space(self, trial_id):
            response = super().populate_space(trial_id)
            if response["status"] == RUNNING:
                self.jobs[trial_id] = self._pending
            return response

    class TableTuner(NASTuner):
        def seed_candidate(self, trial):
            # The run's own seed: a table's column s trains under seed s.
            keras.utils.set_random_seed(self.oracle.jobs[trial.trial_id]["seed"])

        def on_trial_end(self, trial):
            super().on_trial_end(trial)
            on_finished(self.oracle.jobs[trial.trial_id], self.oracle.get_trial(trial.trial_id))

    return TableTuner(space, oracle=RunsOracle(), directory=directory, project_name="runs",
                      log_dir=None, progress=False)


def _record(job, trial):
    from tfnas.trials import COMPLETED

    record = {"arch": job["arch"], "seed": job["seed"], "finished_at": time.time(),
              "pid": os.getpid()}
    if trial.status != COMPLETED:
        return {**record, "status": journal.FAILED, "message": errors.root_cause(
            trial.message or "")}
    metrics = {}
    for name, column in (("val_accuracy", "val_acc"), ("test_accuracy", "test_acc"),
                         ("params", "params"), ("flops", "flops"),
                         ("latency_ms", "latency_ms"), ("train_time_s", "train_time_s"),
                         ("epochs", "epochs")):
        if trial.metrics.exists(name):
            metrics[column] = float(trial.metrics.get_last_value(name))
    return {**record, "status": journal.COMPLETED, **metrics}


def train_runs(config, jobs, on_finished):
    """Trains the runs `jobs` yields (dicts with `arch`, `values`, `seed`),
    appending each finished run to the journal, then calling
    `on_finished(record)`."""
    import warnings

    import keras

    from tfnas import data as data_module
    from tfnas import spaces

    warnings.filterwarnings("ignore", message="Gradients do not exist")
    keras.utils.set_random_seed(config["data_seed"])
    data = data_module.load_data(config["dataset"], batch_size=config["batch_size"],
                                 seed=config["data_seed"], data_dir=config["data_dir"])
    space = spaces.get(config["space"], data.input_shape, data.num_classes,
                       **config["space_args"])

    def finished(job, trial):
        record = _record(job, trial)
        journal.append(config["journal"], record)
        on_finished(record)

    with tempfile.TemporaryDirectory(prefix="tfnas-table-") as directory:
        tuner = _table_tuner(space, jobs, finished, directory)
        tuner.search(data.train, validation_data=data.validation, epochs=config["epochs"],
                     verbose=0, shuffle=False,
                     callbacks=[_test_accuracy_callback(data.test)])


def _worker_main(config, jobs, results, parent_pid, threads):
    """A worker process: trains runs from the `jobs` queue until it is empty
    (or its parent is gone), reporting each finished run on `results`."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)

    def next_jobs():
        while os.getppid() == parent_pid:
            job = jobs.get()
            if job is None:
                return
            yield job

    try:
        train_runs(config, next_jobs(), lambda record: results.put(("run", record)))
    except KeyboardInterrupt:
        pass
    except BaseException:
        results.put(("error", traceback.format_exc()))
        raise
    # The interpreter's final garbage collections over TensorFlow's objects
    # take seconds at exit; nothing left needs them (see tfnas/__main__.py).
    gc.freeze()


# The table.


def _mean(values):
    return statistics.fmean(values) if values else float("nan")


def _std(values):
    return statistics.pstdev(values) if len(values) > 1 else 0.0


def table_rows(records, order, seeds, describe=None):
    """Table rows of the architectures all of whose seeds completed, in `order`.

    Args:
        records: Journal records.
        order: Architecture keys, in the order of the table.
        seeds: The seeds of the table; column `val_acc[i]` is seed `seeds[i]`.
        describe: Optional function from a key to a one-line description.
    """
    runs = {(r["arch"], r["seed"]): r for r in records if r["status"] == journal.COMPLETED}
    rows = []
    for key in order:
        seeded = [runs.get((key, seed)) for seed in seeds]
        if any(run is None for run in seeded):
            continue
        val = [run["val_acc"] for run in seeded]
        test = [run["test_acc"] for run in seeded]
        row = {KEY_COLUMN: key, "description": describe(key) if describe else ""}
        row.update({f"val_acc[{i}]": round(v, 6) for i, v in enumerate(val)})
        row.update({f"test_acc[{i}]": round(v, 6) for i, v in enumerate(test)})
        row.update({"val_acc_mean": round(_mean(val), 6), "val_acc_std": round(_std(val), 6),
                    "test_acc_mean": round(_mean(test), 6),
                    "test_acc_std": round(_std(test), 6)})
        for column, reduce, digits in (("params", statistics.median, 0),
                                       ("flops", statistics.median, 0),
                                       ("latency_ms", statistics.median, 4),
                                       ("train_time_s", _mean, 3)):
            values = [run[column] for run in seeded if run.get(column) is not None]
            row[column] = round(reduce(values), digits) if values else ""
        rows.append(row)
    return rows


def write_csv(path, rows, seeds):
    """Writes `rows` to `path` as CSV, atomically."""
    columns = ([KEY_COLUMN, "description"] + [f"val_acc[{i}]" for i in range(len(seeds))]
               + [f"test_acc[{i}]" for i in range(len(seeds))]
               + ["val_acc_mean", "val_acc_std", "test_acc_mean", "test_acc_std",
                  "params", "flops", "latency_ms", "train_time_s"])
    text = io.StringIO()
    writer = csv.DictWriter(text, columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (int(v) if isinstance(v, float) and v.is_integer()
                             and k in ("params", "flops") else v) for k, v in row.items()})
    atomic.write_bytes_atomically(path, text.getvalue().encode())


def journal_path(table_path):
    """The run journal next to a table: `T.runs.jsonl` for `T.csv`."""
    return os.path.splitext(table_path)[0] + ".runs.jsonl"


def _check_arguments(output, seeds, epochs, batch_size, workers, limit):
    if not isinstance(output, str) or not output.endswith(".csv"):
        raise ValueError(f"Received an invalid value for `output`, expected a path ending "
                         f"in .csv. Received: output={output!r}")
    seeds = list(seeds)
    if not seeds or len(set(seeds)) != len(seeds) or any(
            isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds):
        raise ValueError("Received an invalid value for `seeds`, expected distinct "
                         f"non-negative integers. Received: seeds={seeds!r}")
    for name, value in (("epochs", epochs), ("batch_size", batch_size),
                        ("workers", workers), ("limit", limit)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"Received an invalid value for `{name}`, expected a "
                             f"positive integer. Received: {name}={value!r}")
    return seeds


def _check_resumable(meta_file, meta):
    """Refuses to add runs of other settings to an existing table."""
    if not os.path.exists(meta_file):
        return
    recorded = read_meta(meta_file)
    changed = {k: (recorded.get(k), meta[k]) for k in IDENTITY if recorded.get(k) != meta[k]}
    if changed:
        details = ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in changed.items())
        raise ValueError(
            f"the table {meta_file} was made with other settings ({details}). Pass "
            "another output file, or the same settings to resume it.")


def build_table(output, space="chain", dataset="digits", space_args=None, seeds=(0, 1),
                epochs=3, batch_size=32, workers=1, limit=DEFAULT_LIMIT, data_dir=None,
                data_seed=0, command=None, progress=print):
    """Trains every architecture of a space with several seeds; writes the table.

    Args:
        output: The table's path (`.csv`). Its journal and meta file are
            written next to it. An existing table of the same settings is
            resumed: finished runs are not trained again.
        space: A built-in space name (`tfnas.spaces.SPACES`).
        dataset: A `tfnas.load_data` name ("digits", "mnist1d", "tfds:...").
        space_args: Arguments of the space's constructor.
        seeds: Seeds of the runs (weight initialization); the data split and
            order are those of `data_seed` for every run.
        epochs, batch_size: Training of each run.
        workers: Number of processes training runs in parallel (1: this one).
        limit: The largest number of architectures accepted.
        data_dir: tensorflow-datasets data directory.
        data_seed: Seed of the data split.
        command: The command line that made the table, recorded in its meta.
        progress: A function receiving one progress line per finished run
            (None for silence).

    Returns:
        A dict: `rows` (complete architectures), `architectures`, `runs`
        (finished), `failed` (runs) and `path`.
    """
    from tfnas import data as data_module
    from tfnas import spaces

    seeds = _check_arguments(output, seeds, epochs, batch_size, workers, limit)
    space_args = dict(space_args or {})
    data = data_module.load_data(dataset, batch_size=batch_size, seed=data_seed,
                                 data_dir=data_dir)
    try:
        space_object = spaces.get(space, data.input_shape, data.num_classes, **space_args)
    except TypeError as error:  # an argument the space does not take
        raise ValueError(f"--space-arg for space '{space}': {error}") from error
    architectures = enumerate_space(space_object, limit)
    by_key = {encode_key(space, values): values for values in architectures}
    order = list(by_key)
    random.Random(0).shuffle(order)  # a partial table is a uniform sample
    meta = {"format": FORMAT, "space": space, "space_args": space_args, "dataset": dataset,
            "data_seed": data_seed, "epochs": epochs, "batch_size": batch_size,
            "seeds": seeds, "input_shape": list(data.input_shape),
            "num_classes": data.num_classes, "size": len(order), "key_column": KEY_COLUMN,
            "signal": SIGNAL, "final": FINAL, "command": command}
    meta_file = meta_path(output)
    _check_resumable(meta_file, meta)
    atomic.write_atomically(meta_file, meta)
    runs_file = journal_path(output)
    done = {(r["arch"], r["seed"]) for r in journal.read(runs_file)}
    jobs = [{"arch": key, "values": by_key[key], "seed": seed}
            for key in order for seed in seeds if (key, seed) not in done]
    total = len(order) * len(seeds)

    def describe(key):
        return space_object.describe(by_key[key])

    def refresh():
        records = journal.read(runs_file)
        write_csv(output, table_rows(records, order, seeds, describe), seeds)
        return records

    refresh()
    if progress:
        progress(f"Table of space '{space}' on '{data.name}': {len(order)} architectures x "
                 f"{len(seeds)} seeds = {total} runs of {epochs} epochs; {len(done)} already "
                 f"finished, {len(jobs)} to train with {workers} worker(s) -> {output}")
    started, finished = time.perf_counter(), [0]

    def on_finished(record):
        finished[0] += 1
        refresh()
        if progress:
            elapsed = time.perf_counter() - started
            remaining = len(jobs) - finished[0]
            eta = elapsed / finished[0] * remaining
            result = (f"val {record['val_acc']:.4f} test {record['test_acc']:.4f} "
                      f"({record.get('train_time_s', 0):.1f} s)"
                      if record["status"] == journal.COMPLETED
                      else f"FAILED: {record.get('message', '')}")
            progress(f"[{len(done) + finished[0]}/{total}] seed {record['seed']} "
                     f"{describe(record['arch'])}: {result}; ETA {_duration(eta)}")

    config = {"space": space, "space_args": space_args, "dataset": dataset,
              "data_dir": data_dir, "batch_size": batch_size, "epochs": epochs,
              "data_seed": data_seed, "journal": runs_file}
    if jobs:
        if workers == 1:
            train_runs(config, iter(jobs), on_finished)
        else:
            _run_workers(config, jobs, workers, on_finished)
    records = refresh()
    failed = [r for r in records if r["status"] != journal.COMPLETED]
    rows = len(table_rows(records, order, seeds))
    if progress:
        progress(f"{rows}/{len(order)} architectures complete, {len(failed)} failed runs, "
                 f"{_duration(time.perf_counter() - started)} of training: {output}")
    return {"rows": rows, "architectures": len(order), "runs": len(records),
            "failed": len(failed), "path": output}


def _duration(seconds):
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _run_workers(config, jobs, workers, on_finished):
    """Trains `jobs` in `workers` processes; each appends its own runs to the
    journal. On an interrupt (Ctrl-C, SIGTERM) the workers are stopped: only
    their running runs are lost."""
    context = multiprocessing.get_context("spawn")  # TensorFlow cannot fork safely
    job_queue, results = context.Queue(), context.Queue()
    for job in jobs:
        job_queue.put(copy.deepcopy(job))
    for _ in range(workers):
        job_queue.put(None)
    threads = max(1, (os.cpu_count() or 1) // workers)
    processes = [context.Process(target=_worker_main, daemon=True,
                                 args=(config, job_queue, results, os.getpid(), threads))
                 for _ in range(workers)]
    previous = signal.signal(signal.SIGTERM, _interrupt)
    failures = []
    try:
        for process in processes:
            process.start()
        while True:
            try:
                kind, payload = results.get(timeout=0.5)
            except queue_module.Empty:
                if not any(process.is_alive() for process in processes):
                    break
                continue
            if kind == "run":
                on_finished(payload)
            else:
                failures.append(payload)
    finally:
        signal.signal(signal.SIGTERM, previous)
        # Jobs left in the queue must not block this process's exit.
        job_queue.cancel_join_thread()
        for process in processes:
            if process.is_alive():
                process.terminate()
        for process in processes:
            process.join(timeout=30)
    crashed = [p.exitcode for p in processes if p.exitcode not in (0, None)]
    if failures or crashed:
        cause = failures[0].strip().splitlines()[-1] if failures else (
            f"exit codes {crashed}")
        raise errors.TfnasError(
            f"a worker of the table stopped ({cause}). Finished runs are saved in "
            f"{config['journal']}: fix the cause, then run the same command to resume.")
