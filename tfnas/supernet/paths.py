"""Single paths through a trained supernet (SPOS, ENAS): set one, score one
by the compiled metric of the objective, search over them with a
multi-trial strategy."""

import contextlib
import math
import tempfile

import keras
import keras_tuner as kt
import tensorflow as tf

from tfnas.architecture import Architecture
from tfnas.supernet.oneshot import paired  # noqa: F401  (for the path strategies)

CALIBRATION_EXAMPLES = 512


def set_path(model, values):
    """Points every single-path mixed layer of `model` (a `OneShotModel`) at
    the candidate in `values` (the first one for a decision `values` leaves
    inactive)."""
    for name, layer in model.decisions.items():
        options = model.builder.values[name]
        layer.set_index(options.index(values[name]) if values.get(name) in options else 0)


def calibration_batch(train):
    """Inputs of one large batch of `train`, for batch-norm recalibration."""
    return next(iter(train.unbatch().batch(CALIBRATION_EXAMPLES)))[0]


def batch_normalizations(model):
    """The `BatchNormalization` layers of `model`, nested ones included."""
    return [layer for layer in model._flatten_layers()
            if isinstance(layer, keras.layers.BatchNormalization)]


@contextlib.contextmanager
def statistics_momentum(layers, momentum):
    """Within it, `layers`' batch-norm momentum is `momentum` (0: a
    training-mode call sets their statistics to its batch's own; 1: it
    leaves them as they are); their momenta are restored after. Keras reads
    the momentum when a call is traced: trace and call inside."""
    momenta = [layer.momentum for layer in layers]
    for layer in layers:
        layer.momentum = float(momentum)
    try:
        yield
    finally:
        for layer, previous in zip(layers, momenta):
            layer.momentum = previous


def exact_statistics(layers):
    """Within it, a training-mode call sets `layers`' batch-norm statistics
    to its batch's own (momentum 0); their momenta are restored after."""
    return statistics_momentum(layers, 0.0)


def one_batch(dataset):
    """`(inputs, labels)` of every `(x, y)` batch of `dataset`, concatenated."""
    inputs, labels = zip(*dataset)
    return tf.concat(inputs, 0), tf.concat(labels, 0)


def recalibrate(model, inputs):
    """Batch-norm statistics of the current path, from one large batch."""
    with exact_statistics(batch_normalizations(model)):
        model(inputs, training=True)


class PathAccuracy:
    """Inherited-weight accuracy of many single paths of a trained
    single-path `OneShotModel`, batch norm recalibrated for each, by one
    traced function: a path lives in the mixed layers' index variables, so
    scoring another path runs the same graph (no retracing).

    Each call recalibrates as `recalibrate` does (momentum 0 on the
    `calibration` inputs: the path's exact statistics on them), then
    predicts all of `validation` in one batch and counts the labels
    (integer classes, or one-hot) whose class scores highest.

    Args:
        model: The `OneShotModel` (single-path mode).
        calibration: Inputs for batch-norm recalibration
            (`calibration_batch(train)`).
        validation: A `tf.data` dataset of `(x, y)` batches.
    """

    def __init__(self, model, calibration, validation):
        self.model = model
        self.calibration = calibration
        self.inputs, self.labels = one_batch(validation)
        self.normalizations = batch_normalizations(model.supernet)
        self.traces = 0
        self._accuracy = tf.function(self._recalibrated_accuracy, autograph=False)

    def _recalibrated_accuracy(self):
        self.traces += 1  # runs when traced only
        self.model.supernet(self.calibration, training=True)
        predictions = self.model.supernet(self.inputs, training=False)
        labels = self.labels
        if labels.shape.rank == predictions.shape.rank:  # one-hot
            labels = tf.argmax(labels, -1)
        labels = tf.cast(tf.reshape(labels, [-1]), tf.int64)
        hits = tf.equal(tf.argmax(predictions, -1), labels)
        return tf.reduce_mean(tf.cast(hits, tf.float32))

    def __call__(self, architectures):
        """The accuracy of each architecture (decision values) in turn."""
        with exact_statistics(self.normalizations):  # momentum read when traced
            accuracies = []
            for values in architectures:
                set_path(self.model, values)
                accuracies.append(float(self._accuracy()))
        return accuracies


def objective_metric(objective):
    """`(compiled metric name, direction)` of a validation objective:
    "val_accuracy" scores paths by the compiled "accuracy"."""
    name = objective.name
    return (name[len("val_"):] if name.startswith("val_") else name), objective.direction


def score_path(tuner, model, values, validation, calibration=None):
    """The supernet's score of the path `values` on `validation`: the
    compiled metric that the tuner's objective names (batch norm
    recalibrated on `calibration` inputs first, when given)."""
    set_path(model, values)
    if calibration is not None:
        recalibrate(model.supernet, calibration)
    results = model.evaluate(validation, verbose=0, return_dict=True)
    metric, _ = objective_metric(tuner.oracle.objective)
    if metric not in results:
        raise ValueError(
            f"Received an objective the supernet does not compute: "
            f"objective={tuner.oracle.objective.name!r} names the metric {metric!r}, "
            f"expected one of the space's compiled metrics {sorted(results)} "
            "(with or without the 'val_' prefix). Pass another `objective`.")
    return float(results[metric])


def path_space(tuner, hyperparameters):
    """The space's hyperparameters with the plain ones (not mixed in the
    supernet) fixed to the values the supernet was built with, so that a
    path search varies only what the supernet can evaluate."""
    decisions = set(tuner.supernet_decisions)
    fixed = kt.HyperParameters()
    for hp in hyperparameters.space:
        if hp.name not in decisions:
            hp = kt.engine.hyperparameters.Fixed(
                hp.name, tuner.fixed_values.get(hp.name, hp.default), conditions=hp.conditions)
        fixed.merge([hp])
    return fixed


def search_paths(tuner, strategy, trials, score):
    """Runs the multi-trial `strategy` over the supernet's paths, each scored
    by `score(values)`, in the objective's direction; records every
    evaluated path (`tuner.record_paths`) and returns the best one's values."""
    from tfnas import oracles
    from tfnas.bench.runner import LookupTuner

    _, direction = objective_metric(tuner.oracle.objective)
    oracle = oracles.get(strategy, kt.Objective("score", direction), trials, seed=tuner.seed)
    with tempfile.TemporaryDirectory() as directory:
        lookup = LookupTuner(oracle, tuner.hypermodel, score, signal_name="score",
                             directory=directory)
        oracle.hyperparameters = path_space(tuner, oracle.hyperparameters)
        lookup.search()
        best = oracle.get_best_trials(1)[0]
        history = [{"trial": t.trial_id, "score": t.score,
                    "architecture": Architecture.from_trial(t).values}
                   for t in oracle.trials.values()]
    tuner.record_paths(history)
    return Architecture.from_trial(best).values


def all_paths(tuner, limit):
    """Every path of the supernet's space (its plain hyperparameters fixed as
    in `path_space`), as decision values; None if there are more than
    `limit`."""
    from tfnas import moves
    from tfnas.bench.ground_truth import discover_hyperparameters

    space = path_space(tuner, discover_hyperparameters(tuner.hypermodel))
    return moves.enumerate_architectures(space.space, limit)


def path_scorer(tuner, model, train, validation):
    """A function from a list of paths to their scores: `PathAccuracy` (one
    trace for every path) when the objective is the accuracy of class
    scores, else `score_path` path by path. Both recalibrate batch norm on
    `calibration_batch(train)` and score the whole `validation`."""
    calibration = calibration_batch(train)
    metric, _ = objective_metric(tuner.oracle.objective)
    outputs = model.supernet.outputs[0].shape[-1] if model.supernet.outputs else None
    if metric == "accuracy" and outputs is not None and outputs > 1:
        return PathAccuracy(model, calibration, validation)
    return lambda architectures: [score_path(tuner, model, values, validation, calibration)
                                  for values in architectures]


def search_all_paths(tuner, architectures, score_many):
    """Scores every path of `architectures` with `score_many(list)`, records
    them (`tuner.record_paths`) and returns the best one's values (the
    first of equals), in the objective's direction."""
    _, direction = objective_metric(tuner.oracle.objective)
    scores = score_many(architectures)
    history = [{"trial": str(number), "score": float(score), "architecture": values}
               for number, (values, score) in enumerate(zip(architectures, scores))]
    tuner.record_paths(history)
    sign = 1.0 if direction == "max" else -1.0

    def rank(number):  # a NaN score (a diverged path's loss) ranks last
        value = sign * float(scores[number])
        return (-math.inf if math.isnan(value) else value, -number)
    return architectures[max(range(len(scores)), key=rank)]
