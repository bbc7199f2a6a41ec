"""DARTS (Liu et al., 2019): a softmax-weighted sum of every candidate;
bi-level training, an architecture step on the validation batch (Adam on the
alphas), then a weight step on the training batch. "darts2" uses the
unrolled architecture gradient with the paper's finite-difference
Hessian-vector product (`OneShotModel.unrolled_gradients`)."""

import contextlib

import keras

from tfnas import strategies
from tfnas.supernet.strategies.base import GradientStrategy


@strategies.register("darts", one_shot=True)
class DARTS(GradientStrategy):
    """First-order DARTS."""

    mode = "darts"


@strategies.register("darts2", one_shot=True)
class SecondOrderDARTS(DARTS):
    """Second-order (unrolled) DARTS."""

    second_order = True


@strategies.register("beta-darts", one_shot=True)
class BetaDARTS(DARTS):
    """First-order DARTS with beta-DARTS's Beta-Decay regularization (Ye et
    al., 2022) against the collapse onto parameter-free operations: the
    architecture loss adds `lambda * L_beta`, with
    `L_beta = mean over decisions of log(sum_k exp(alpha_k))`, minimized with
    the validation loss by the alphas' optimizer (Adam: the regularization's
    gradient `lambda * softmax(alpha) / decisions` goes through its moments,
    as in the official code, which adds it to the loss before Adam's step).
    `lambda` rises linearly over the search, `weight * epoch / epochs` at
    epoch `epoch` (0 first; the official code's `50 * epoch / 100` over
    its 100 NAS-Bench-201 epochs).

    Args:
        weight: The regularization's final weight (lambda's maximum; the
            paper's 50).
    """

    def __init__(self, weight=50.0):
        import tensorflow as tf

        if not weight >= 0:
            raise ValueError("Received an invalid value for `weight`, expected a "
                             f"non-negative number. Received: weight={weight!r}")
        self.weight = float(weight)
        # Read inside the traced train step: a variable, set per epoch.
        self.current_weight = tf.Variable(0.0, trainable=False, name="beta_weight")

    def architecture_penalty(self, alphas):
        return self.current_weight * beta_decay(alphas)

    def callbacks(self, epochs):
        return [BetaSchedule(self, epochs)]


class BetaSchedule(keras.callbacks.Callback):
    """Sets beta-DARTS's regularization weight at each epoch's start:
    `strategy.weight * epoch / epochs`."""

    def __init__(self, strategy, epochs):
        super().__init__()
        self.strategy, self.epochs = strategy, max(1, int(epochs))

    def on_epoch_begin(self, epoch, logs=None):
        self.strategy.current_weight.assign(
            self.strategy.weight * min(epoch, self.epochs) / self.epochs)


def beta_decay(alphas):
    """beta-DARTS's L_beta: the mean over decisions of logsumexp(alpha)."""
    import tensorflow as tf

    return tf.add_n([tf.reduce_logsumexp(alpha) for alpha in alphas]) / len(alphas)


@strategies.register("darts-pt", one_shot=True)
class DARTSPT(DARTS):
    """First-order DARTS training, then DARTS-PT's perturbation-based
    selection (Wang et al., 2021; `tfnas.supernet.perturbation`): decision
    by decision in a random order, the candidate whose removal lowers the
    supernet's validation accuracy most, with `tune_epochs` of DARTS
    training between two decisions at `learning_rate_factor` times the
    weights' learning rate (the paper: 5 epochs, a tenth).

    The selection's steps (each candidate's removal scores) are kept in
    `steps` after a search.

    Args:
        tune_epochs: Epochs of fine-tuning between two decisions.
        criterion: "accuracy" (the paper's) or "loss" (the highest loss
            after removal wins).
        learning_rate_factor: The weights' learning rate while fine-tuning,
            relative to the search's.
    """

    def __init__(self, tune_epochs=5, criterion="accuracy", learning_rate_factor=0.1):
        from tfnas.supernet import perturbation

        if not (isinstance(tune_epochs, int) and tune_epochs >= 0):
            raise ValueError("Received an invalid value for `tune_epochs`, expected a "
                             f"non-negative integer. Received: tune_epochs={tune_epochs!r}")
        perturbation.check_criterion(criterion)
        self.tune_epochs = tune_epochs
        self.criterion = criterion
        self.learning_rate_factor = float(learning_rate_factor)
        self.steps = []

    def search(self, tuner, model, train, validation, epochs):
        from tfnas.supernet import oneshot, perturbation

        super().search(tuner, model, train, validation, epochs)

        def tune():
            if self.tune_epochs:
                model.fit(oneshot.paired(train, validation), epochs=self.tune_epochs,
                          verbose=0, callbacks=self.callbacks(self.tune_epochs))

        with _scaled_learning_rate(model.optimizer, self.learning_rate_factor):
            values, self.steps = perturbation.select(model, validation, tune, self.criterion,
                                                     seed=tuner.seed)
        return values


@contextlib.contextmanager
def _scaled_learning_rate(optimizer, factor):
    """Within it, `optimizer`'s constant learning rate times `factor` (a
    schedule is left as it is)."""
    learning_rate = float(optimizer.learning_rate)
    try:
        optimizer.learning_rate = learning_rate * factor
    except TypeError:  # Keras refuses to set a schedule's rate
        yield
        return
    try:
        yield
    finally:
        optimizer.learning_rate = learning_rate
