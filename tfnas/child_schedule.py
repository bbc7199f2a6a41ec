"""The learning rate of a child that inherits its parent's weights.

A child resumes from trained weights with a fresh optimizer: Adam's moment
estimates start at zero, so its first steps move every weight by about the
full learning rate whatever its gradient's size (the bias-corrected ratio
m / sqrt(v) is near +-1), which shakes the inherited weights off the point
the parent reached. The published methods that train children briefly from
inherited weights anneal the learning rate over that short training: Elsken
et al. 2017 (NASH) and 2019 (LEMONADE) train each child with cosine
annealing to zero (SGDR, Loshchilov & Hutter 2017). `ChildSchedule` does the
same, after a short linear warm-up that lets Adam's second-moment estimates
form before the steps reach the full rate (the reason for warm-up given by
Liu et al. 2020, RAdam).
"""

import math

import keras

#: The fraction of a child's steps spent warming up.
WARMUP_FRACTION = 0.1


def child_learning_rate(step, steps, base, warmup_fraction=WARMUP_FRACTION):
    """The learning rate at `step` (0-based) of `steps`: a linear warm-up to
    `base` over the first `warmup_fraction` of the steps, then a cosine
    decay to zero at the last step."""
    warmup = max(1, int(round(warmup_fraction * steps))) if warmup_fraction else 0
    if step < warmup:
        return base * (step + 1) / warmup
    remaining = max(1, steps - warmup)
    progress = min(1.0, (step - warmup + 1) / remaining)
    return base * 0.5 * (1.0 + math.cos(math.pi * progress))


class ChildSchedule(keras.callbacks.Callback):
    """Sets the optimizer's learning rate before each training step to
    `child_learning_rate` of the step, from the rate the model was compiled
    with, over all the steps of the `fit` call; puts the compiled rate back
    when training ends (the model is the trial's, saved or exported later).
    A model compiled with a `LearningRateSchedule` keeps its own schedule,
    and training data of unknown size (no steps per epoch in the `fit`
    parameters: the schedule's length is unknown) the compiled rate.

    Args:
        warmup_fraction: The fraction of the steps spent warming up.
    """

    def __init__(self, warmup_fraction=WARMUP_FRACTION):
        super().__init__()
        self.warmup_fraction = warmup_fraction

    def on_train_begin(self, logs=None):
        rate = self.model.optimizer.learning_rate
        # A model compiled with its own schedule (a user's hypermodel) keeps it.
        self._variable = rate if hasattr(rate, "assign") else None
        # Unknown steps (a dataset of unknown cardinality): a schedule of a
        # guessed length would reach zero too early and stop the training.
        steps_per_epoch = self.params.get("steps")
        if self._variable is None or not steps_per_epoch:
            self._variable = None
            return
        self._base = float(keras.ops.convert_to_numpy(rate))
        self._steps = None  # set at the first epoch: `fit` may start at `initial_epoch`
        self._step = 0

    def on_epoch_begin(self, epoch, logs=None):
        if self._variable is not None and self._steps is None:
            remaining = self.params.get("epochs", 1) - epoch
            self._steps = max(1, self.params["steps"] * remaining)

    def on_train_batch_begin(self, batch, logs=None):
        if self._variable is None:
            return
        self._variable.assign(child_learning_rate(
            self._step, self._steps, self._base, self.warmup_fraction))
        self._step += 1

    def on_train_end(self, logs=None):
        if self._variable is not None:
            self._variable.assign(self._base)
