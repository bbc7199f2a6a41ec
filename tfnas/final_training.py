"""The final training of a found architecture: `tuner.train_best` and `tfnas train`.

What every NAS paper does after the search: rebuild the best architecture
(optionally scaled up through the space's skeleton arguments, see
`tfnas.scale_up`), train it on train+validation for many epochs with image
augmentation (`tfnas.augmentation`) and a cosine learning-rate schedule with
linear warm-up, then evaluate it on the test split and export it.

It trains through the tuner's own fit path (`NASTuner.train_best`): built
under the search's `tf.distribute` strategy and dtype policy (mixed
precision), trained by the space's `fit` with the tuner's callbacks. Under
`<project>/final/` (by default) it keeps:

- `final_training.json`: the record (architecture, space, settings, per-epoch
  history, test metrics, exports), written atomically after every epoch;
- `checkpoints/epoch_NNNN.weights.h5`: the weights and the optimizer's state
  (its step, hence the schedule's position) after the last finished epoch,
  written atomically. An interrupted training (Ctrl-C, a kill) resumes from
  it when run again with the same settings;
- `logs/`: TensorBoard's training curves and learning rate;
- `export/`: the SavedModel, `.keras`, TFLite and `architecture.json`, as
  `tfnas export` writes them.
"""

import glob
import math
import os
import shutil
import time
import warnings

import keras
import keras_tuner as kt
import numpy as np
import tensorflow as tf

from tfnas import atomic, augmentation, checkpoints, errors, estimation, export, project
from tfnas import scale_up, trials
from tfnas.architecture import Architecture

FINAL_DIR = "final"
RECORD_FILE = "final_training.json"
CHECKPOINT_DIR = "checkpoints"
EXPORT_DIR = "export"
LOG_DIR = "logs"
DEFAULT_FORMATS = ("saved_model", "keras", "tflite")
RUNNING, INTERRUPTED, COMPLETED = "running", "interrupted", "completed"
#: The settings that define a final training: resuming with others is refused.
SETTINGS = ("trial_id", "hash", "space", "epochs", "batch_size", "learning_rate",
            "warmup_epochs", "augment", "seed")


def record_path(project_dir):
    """Where the record of `project_dir`'s final training is."""
    return os.path.join(project_dir, FINAL_DIR, RECORD_FILE)


def read_record(project_dir_or_file):
    """The final training's record of a project directory (or its file), or None."""
    path = os.fspath(project_dir_or_file)
    if os.path.isdir(path):
        path = record_path(path)
    if not os.path.exists(path):
        return None
    return errors.read_json(path, (
        "Delete the final/ folder (or pass --overwrite to `tfnas train`) to train again."))


def _as_dataset(data, batch_size, name):
    if data is None or isinstance(data, tf.data.Dataset):
        return data
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return tf.data.Dataset.from_tensor_slices(tuple(data)).batch(batch_size)
    raise ValueError(
        f"Received an invalid value for `{name}`, expected a tf.data.Dataset of "
        f"(inputs, labels) batches or an (inputs, labels) pair of arrays. "
        f"Received: {type(data).__name__}")


def _count(dataset):
    cardinality = int(dataset.cardinality())
    if cardinality >= 0:
        return cardinality
    return int(dataset.reduce(np.int64(0), lambda count, _: count + 1))


def training_data(train, validation, batch_size, seed):
    """Train and validation examples together, reshuffled every epoch.

    Returns:
        `(dataset, steps_per_epoch)`.
    """
    examples = train.unbatch()
    if validation is not None:
        examples = examples.concatenate(validation.unbatch())
    count = _count(examples)
    if count == 0:
        raise ValueError("Received no training examples for the final training.")
    steps = math.ceil(count / batch_size)
    dataset = (examples.shuffle(min(count, 50_000), seed=seed, reshuffle_each_iteration=True)
               .batch(batch_size)
               .apply(tf.data.experimental.assert_cardinality(steps))  # a full progress bar
               .prefetch(tf.data.AUTOTUNE))
    return dataset, steps


def learning_rate_schedule(peak, steps_per_epoch, epochs, warmup_epochs):
    """Linear warm-up from 0 to `peak` over `warmup_epochs`, then cosine decay to 0."""
    warmup_steps = steps_per_epoch * warmup_epochs
    decay_steps = max(1, steps_per_epoch * epochs - warmup_steps)
    if warmup_steps == 0:
        return keras.optimizers.schedules.CosineDecay(peak, decay_steps)
    return keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps, warmup_target=peak, warmup_steps=warmup_steps)


def default_warmup_epochs(epochs):
    """5 % of the epochs (at least one when there are two or more)."""
    return 0 if epochs < 2 else min(epochs - 1, max(1, round(0.05 * epochs)))


def compile_like(model, config, schedule):
    """Compiles `model` as a compile config says (a model's
    `get_compile_config()`: loss, metrics, the optimizer's class and settings),
    the learning rate replaced by `schedule`."""
    config = config or {}
    optimizer = keras.optimizers.get(config.get("optimizer") or "adam")
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        optimizer = optimizer.inner_optimizer  # compile wraps it again under mixed_float16
    settings = {k: v for k, v in optimizer.get_config().items() if k != "name"}
    settings["learning_rate"] = schedule
    model.compile(optimizer=type(optimizer)(**settings),
                  loss=config.get("loss"),
                  metrics=config.get("metrics"))
    return model


class EpochCheckpoint(keras.callbacks.Callback):
    """After each finished epoch: the weights and optimizer state, then the record.

    The weights go to a new file named by the epoch; the record, written
    after them, names it; older checkpoints are then removed. A kill at any
    moment leaves a record that names a complete checkpoint of its epoch.

    Args:
        folder: The checkpoints' folder.
        on_epoch_saved: `(epoch, logs, checkpoint_path)`, called after the
            weights are written.
    """

    def __init__(self, folder, on_epoch_saved):
        super().__init__()
        self.folder = folder
        self.on_epoch_saved = on_epoch_saved

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        if not all(math.isfinite(float(v)) for v in logs.values()):
            return  # a diverged epoch is not worth resuming from
        path = os.path.join(self.folder, f"epoch_{epoch + 1:04d}.weights.h5")
        checkpoints.save_weights_atomically(self.model, path)
        self.on_epoch_saved(epoch + 1, logs, path)
        for old in glob.glob(os.path.join(glob.escape(self.folder), "epoch_*.weights.h5")):
            if old != path:
                os.remove(old)


class LearningRateLog(keras.callbacks.Callback):
    """Adds the learning rate at the end of each epoch to the epoch's logs."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            optimizer = self.model.optimizer
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(optimizer.learning_rate))


def _best_trial(tuner, trial_id):
    if trial_id is None:
        best = [t for t in tuner.oracle.get_best_trials(1) if t.status == trials.COMPLETED]
        if not best:
            raise ValueError(f"The project {tuner.project_dir} has no completed trial "
                             "to train.")
        return best[0]
    trial_id = str(trial_id)
    trial = tuner.oracle.trials.get(trial_id)
    completed = sorted(t.trial_id for t in tuner.oracle.trials.values()
                       if t.status == trials.COMPLETED)
    if trial is None or trial.status != trials.COMPLETED:
        raise ValueError(
            f"Received an invalid value for `trial_id`, expected a completed trial of "
            f"{tuner.project_dir} (one of {completed}). Received: trial_id={trial_id!r}")
    return trial


def _strategy_description(strategy):
    if strategy is None:
        return {"strategy": "default", "replicas": 1}
    return {"strategy": type(strategy).__name__,
            "replicas": int(strategy.num_replicas_in_sync)}


def _check_resumable(previous, settings, path):
    changed = {k: (previous.get("settings", {}).get(k), v) for k, v in settings.items()
               if previous.get("settings", {}).get(k) != v}
    if changed:
        details = ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in changed.items())
        raise ValueError(
            f"{path} records a final training with other settings ({details}). Pass "
            "overwrite=True (--overwrite) to start the final training over, or the same "
            "settings to resume it.")


def _clear(final_dir):
    """Deletes what a previous final training wrote in `final_dir`, nothing else."""
    for name in (RECORD_FILE,):
        path = os.path.join(final_dir, name)
        if os.path.isfile(path):
            os.remove(path)
    for name in (CHECKPOINT_DIR, LOG_DIR, EXPORT_DIR):
        path = os.path.join(final_dir, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)


def train_best(tuner, x, validation_data=None, test_data=None, *, trial_id=None,
               space_args=None, epochs=30, batch_size=32, learning_rate=None,
               warmup_epochs=None, augment=None, seed=0, output_dir=None,
               formats=DEFAULT_FORMATS, overwrite=False, verbose=1, callbacks=None):
    """Trains a found architecture fully, evaluates it and exports it.

    See `NASTuner.train_best`, which calls this with the tuner.

    Returns:
        The final training's record (a dict; see the module docstring).
    """
    epochs = _positive(epochs, "epochs")
    batch_size = _positive(batch_size, "batch_size")
    augment = list(augmentation.parse(augment))
    formats = list(formats or ())
    trial = _best_trial(tuner, trial_id)
    values = Architecture.from_trial(trial).values
    final_dir = os.fspath(output_dir or os.path.join(tuner.project_dir, FINAL_DIR))
    path = os.path.join(final_dir, RECORD_FILE)
    train = _as_dataset(x, batch_size, "x")
    validation = _as_dataset(validation_data, batch_size, "validation_data")
    test = _as_dataset(test_data, batch_size, "test_data")
    if train is None:
        raise ValueError("Received no training data: pass `x`.")

    keras.backend.clear_session()  # outside the scope: it resets the dtype policy
    keras.utils.set_random_seed(seed)
    with tuner.training_scope():
        space, candidate = scale_up.scaled_space(tuner.hypermodel, values, space_args,
                                                 argument="space_args")
        params = estimation.count_params(candidate)
        dataset, steps = training_data(train, validation, batch_size, seed)
        peak = float(learning_rate if learning_rate is not None
                     else getattr(space, "learning_rate", 1e-3))
        warmup = default_warmup_epochs(epochs) if warmup_epochs is None else int(warmup_epochs)
        if not 0 <= warmup < epochs:
            raise ValueError(f"Received an invalid value for `warmup_epochs`, expected an "
                             f"integer from 0 to epochs - 1 = {epochs - 1}. Received: "
                             f"warmup_epochs={warmup_epochs!r}")
        compile_config = candidate.get_compile_config()
        model = augmentation.with_augmentation(candidate, augment, seed=seed)
        compile_like(model, compile_config,
                     learning_rate_schedule(peak, steps, epochs, warmup))
        checkpoints.build_optimizer(model)  # to receive a resumed checkpoint's state
    search_test = _search_model_metrics(tuner, trial, test)

    space_record = project.space_record(space)
    settings = {"trial_id": trial.trial_id, "hash": Architecture(values).hash,
                "space": space_record, "epochs": epochs, "batch_size": batch_size,
                "learning_rate": peak, "warmup_epochs": warmup, "augment": augment,
                "seed": seed}
    previous = None
    if overwrite:
        _clear(final_dir)
    else:
        previous = read_record(path)
    if previous is not None:
        _check_resumable(previous, settings, path)
    record = previous or {
        "settings": settings, "architecture": values, "space_args": dict(space_args or {}),
        "objective": {"name": tuner.oracle.objective.name,
                      "direction": tuner.oracle.objective.direction},
        "search_score": trial.score, "history": [], "epochs_done": 0, "checkpoint": None,
        "started_at": time.time(), "train_time_s": 0.0}
    record.update({
        "status": RUNNING, "params": params, "steps_per_epoch": steps,
        "distribution": _strategy_description(tuner.distribution_strategy),
        "dtype_policy": tuner.dtype_policy.name, "search_test": search_test})
    if record["checkpoint"]:
        checkpoint = os.path.join(final_dir, record["checkpoint"])
        with tuner.training_scope():
            model.load_weights(checkpoint)

    started = time.perf_counter()
    time_before = record["train_time_s"]

    def on_epoch_saved(epoch, logs, checkpoint):
        record["history"] = [row for row in record["history"] if row["epoch"] < epoch]
        record["history"].append({"epoch": epoch, **{k: float(v) for k, v in logs.items()}})
        record["epochs_done"] = epoch
        record["checkpoint"] = os.path.relpath(checkpoint, final_dir)
        record["train_time_s"] = time_before + time.perf_counter() - started
        atomic.write_atomically(path, record)

    atomic.write_atomically(path, record)
    fit_callbacks = list(callbacks or []) + [
        LearningRateLog(),
        keras.callbacks.TensorBoard(log_dir=os.path.join(final_dir, LOG_DIR)),
        EpochCheckpoint(os.path.join(final_dir, CHECKPOINT_DIR), on_epoch_saved)]
    hp = Architecture(values).to_hyperparameters()
    try:
        with atomic.fatal_when_disk_full(final_dir), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Gradients do not exist")
            if record["epochs_done"] < epochs:
                # The space's fit, as in the search (`HyperModel.fit` is `model.fit`).
                space.fit(hp, model, dataset, epochs=epochs,
                          initial_epoch=record["epochs_done"],
                          callbacks=tuner._callbacks(fit_callbacks), verbose=verbose,
                          shuffle=False)  # the dataset reshuffles itself every epoch
    except KeyboardInterrupt:
        record["status"] = INTERRUPTED
        atomic.write_atomically(path, record)
        raise
    if record["epochs_done"] < epochs:
        record["status"] = INTERRUPTED
        atomic.write_atomically(path, record)
        last = record["history"][-1] if record["history"] else {}
        raise errors.TfnasError(
            f"the final training stopped after epoch {record['epochs_done']} of {epochs}: "
            f"the loss became non-finite (last finished epoch: {last}). Lower the "
            "learning rate (--learning-rate) or lengthen the warm-up, with --overwrite.")

    record["test"] = _evaluate(model, test) if test is not None else None
    if formats:
        export_record = {**export.architecture_record(space_record,
                                                      tuner.oracle.objective.name, trial),
                         "final_training": {"epochs": epochs, "augment": augment,
                                            "space_args": record["space_args"],
                                            "test": record["test"]}}
        with atomic.fatal_when_disk_full(final_dir):
            written = export.export_model(  # with the project's preprocessing, if any
                model, export_record, os.path.join(final_dir, EXPORT_DIR), formats,
                preprocessing=export.project_preprocessing(tuner.project_dir))
        record["exported"] = {k: os.path.relpath(v, final_dir) for k, v in written.items()}
    record["status"] = COMPLETED
    record["finished_at"] = time.time()
    atomic.write_atomically(path, record)
    return record


def _search_model_metrics(tuner, trial, test):
    """The test metrics of the search's own model of `trial` (None without a
    test split or its checkpoint), for comparison with the final model."""
    checkpoint = tuner._get_checkpoint_fname(trial.trial_id)
    if test is None or not os.path.exists(checkpoint):
        return None
    with tuner.training_scope(), warnings.catch_warnings():
        # Only the weights matter here, not the optimizer's slots.
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        model = tuner.hypermodel.build(trial.hyperparameters.copy())
        model.load_weights(checkpoint)
    return _evaluate(model, test)


def _evaluate(model, test):
    metrics = model.evaluate(test, verbose=0, return_dict=True)
    return {name: float(value) for name, value in metrics.items()}


def _positive(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"Received an invalid value for `{name}`, expected a positive "
                         f"integer. Received: {name}={value!r}")
    return int(value)


def open_tuner(project_dir, distribution_strategy="auto"):
    """A `NASTuner` on an existing project, to train its architectures.

    Its strategy is a random oracle reloading the project's trials read-only
    (the final training proposes nothing); its space and objective come from
    the project record, its dtype policy from the search's options there.
    """
    from tfnas.tuner import NASTuner

    record = project.read(project_dir)
    space = project.build_space(record, source=os.path.join(project_dir, project.PROJECT_FILE))
    objective = kt.Objective(record["objective"]["name"], record["objective"]["direction"])
    options = record.get("training") or {}
    tuner = NASTuner(space, oracle="random", objective=objective, max_trials=1,
                     directory=os.path.dirname(os.path.abspath(project_dir)),
                     project_name=os.path.basename(os.path.abspath(project_dir)),
                     distribution_strategy=distribution_strategy,
                     dtype_policy=options.get("dtype_policy"), progress=False, log_dir=None)
    searched_under = options.get("distribution")
    now = _strategy_description(tuner.distribution_strategy)["strategy"]
    if searched_under not in (None, now):
        why = (" ('auto' is MirroredStrategy on two GPUs or more)"
               if distribution_strategy == "auto" else "")
        errors.warn(f"the search of {project_dir} trained under {searched_under}; this "
                    f"training runs under {now}{why}. Each replica sees a share of every "
                    "batch, so scores may differ from the search's; pass the search's "
                    "strategy as `distribution_strategy` to train as it did.")
    return tuner


def find_project(directory):
    """`directory` if it is a project, else the one project inside it
    (`tfnas.project.resolve_project_dir`, as `tfnas report` and `export` do).

    Raises:
        FileNotFoundError: when `directory` holds no project.
        ValueError: when it holds several (the error lists them).
    """
    return project.resolve_project_dir(directory, None)


def summary_lines(record):
    """The final training as markdown lines for `tfnas report`."""
    settings = record.get("settings", {})
    lines = ["", f"## Final training ({record.get('status')}): trial "
                 f"{settings.get('trial_id')}", ""]
    args = record.get("space_args") or {}
    lines.append(f"- space arguments: {args if args else 'as searched'}; parameters: "
                 f"{record.get('params', 0):,}")
    augment = ", ".join(settings.get("augment") or []) or "none"
    lines.append(f"- epochs: {record.get('epochs_done')} of {settings.get('epochs')}, batch "
                 f"size {settings.get('batch_size')}, peak learning rate "
                 f"{settings.get('learning_rate')} (cosine, {settings.get('warmup_epochs')} "
                 f"warm-up epochs), augmentation: {augment}")
    distribution = record.get("distribution") or {}
    lines.append(f"- distribution: {distribution.get('strategy')} "
                 f"({distribution.get('replicas')} replicas), dtype policy "
                 f"{record.get('dtype_policy')}; training time "
                 f"{record.get('train_time_s', 0.0):.1f}s")
    for label, key in (("test (final model)", "test"), ("test (search's model)", "search_test")):
        metrics = record.get(key)
        if metrics:
            lines.append(f"- {label}: " + ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()))
    if record.get("exported"):
        lines.append("- exported: " + ", ".join(f"{k}: {v}"
                                                for k, v in record["exported"].items()))
    return lines
