"""DARTS-PT's perturbation-based architecture selection (Wang et al., 2021,
"Rethinking architecture selection in differentiable NAS").

The largest alpha does not say which candidate a trained DARTS supernet
relies on (the alphas of parameter-free operations grow though removing them
costs little). DARTS-PT asks the supernet instead: for one decision at a
time, in a random order, each candidate is removed in turn (its mixing
weight set to zero, the others left as they are) and the supernet's
validation accuracy measured; the candidate whose removal lowers it most is
chosen, and the decision is projected onto it (its mixing weights become
that candidate's one-hot). Between two decisions the supernet is fine-tuned
for a few epochs (weights and the remaining alphas, as in DARTS training),
so that it adapts to the projections made so far.

The accuracy is that of the supernet in training mode on the whole
validation set, as the paper evaluates it (batch statistics; the moving
statistics are left as they are), by one traced function: a removal or a
projection lives in the mixed layers' `mask` and `projected` variables, so
no candidate retraces it.
"""

import numpy as np
import tensorflow as tf

from tfnas.supernet import paths

CRITERIA = ("accuracy", "loss")


class SupernetScore:
    """`(accuracy, loss)` of a "darts" `OneShotModel` on `validation` under
    its current mixing weights, by one traced function.

    Accuracy counts the labels (integer classes, or one-hot) whose class
    scores highest; the loss is the model's compiled loss.

    Args:
        model: The trained `OneShotModel` ("darts" mode).
        validation: A `tf.data` dataset of `(x, y)` batches, scored as one
            batch.
    """

    def __init__(self, model, validation):
        self.model = model
        self.inputs, self.labels = paths.one_batch(validation)
        self.normalizations = paths.batch_normalizations(model.supernet)
        self.traces = 0
        self._score = tf.function(self._accuracy_and_loss, autograph=False)

    def _accuracy_and_loss(self):
        self.traces += 1  # runs when traced only
        predictions = self.model.supernet(self.inputs, training=True)
        loss = self.model.compute_loss(x=self.inputs, y=self.labels, y_pred=predictions)
        labels = self.labels
        if labels.shape.rank == predictions.shape.rank:  # one-hot
            labels = tf.argmax(labels, -1)
        labels = tf.cast(tf.reshape(labels, [-1]), tf.int64)
        hits = tf.equal(tf.argmax(predictions, -1), labels)
        return tf.reduce_mean(tf.cast(hits, tf.float32)), tf.cast(loss, tf.float32)

    def __call__(self):
        # Momentum 1: the training-mode call leaves the moving statistics.
        with paths.statistics_momentum(self.normalizations, 1.0):
            accuracy, loss = self._score()
        return float(accuracy), float(loss)


def removal_scores(layer, score):
    """`[(accuracy, loss)]` of the supernet with each candidate of the mixed
    `layer` removed in turn (its mask restored after)."""
    count = len(layer.labels)
    results = []
    try:
        for candidate in range(count):
            layer.mask.assign(np.where(np.arange(count) == candidate, 0.0, 1.0))
            results.append(score())
    finally:
        layer.mask.assign(np.ones(count))
    return results


def check_criterion(criterion):
    """Raises ValueError unless `criterion` is one of `CRITERIA`."""
    if criterion not in CRITERIA:
        raise ValueError(f"Received an invalid value for `criterion`, expected one of "
                         f"{CRITERIA}. Received: criterion={criterion!r}")


def most_needed(results, criterion="accuracy"):
    """The index of the candidate whose removal hurts most: the lowest
    accuracy, or the highest loss (ties: the first)."""
    check_criterion(criterion)
    if criterion == "accuracy":
        return int(np.argmin([accuracy for accuracy, _ in results]))
    return int(np.argmax([loss for _, loss in results]))


def select(model, validation, tune, criterion="accuracy", seed=None):
    """DARTS-PT's selection on the trained "darts" `model`: every decision
    in a random order, each projected onto its most needed candidate, with
    `tune()` (fine-tuning) between two decisions.

    Args:
        model: The trained `OneShotModel`.
        validation: Its validation data (`(x, y)` batches).
        tune: Called after each projection but the last.
        criterion: "accuracy" (the paper's default) or "loss".
        seed: Seed of the decisions' order.

    Returns:
        `(values, steps)`: the chosen value per decision, and per decision in
        the order taken `{"decision", "chosen", "accuracy", "loss"}` (the
        supernet's scores with each candidate removed).
    """
    score = SupernetScore(model, validation)
    names = list(model.decisions)
    order = np.random.default_rng(seed).permutation(len(names))
    steps = []
    for position, index in enumerate(order):
        name = names[index]
        layer = model.decisions[name]
        results = removal_scores(layer, score)
        chosen = most_needed(results, criterion)
        layer.projected.assign(chosen)
        steps.append({"decision": name, "chosen": layer.labels[chosen],
                      "accuracy": [a for a, _ in results], "loss": [v for _, v in results]})
        if position < len(order) - 1:
            tune()
    values = {name: model.builder.values[name][int(layer.projected.numpy())]
              for name, layer in model.decisions.items()}
    return values, steps
