"""Learning rates set step by step by a callback, for the `fit` it is given to.

A strategy or the tuner sometimes needs a learning-rate schedule on a model
the user compiled with a constant rate, whose length is known only when
`fit` starts (SPOS's linear decay, a child's warm-up and cosine decay).
`StepSchedule` is the one mechanism: it reads the compiled rate, sets the
rate of each training step, and puts the compiled rate back when training
ends (the model is saved or exported later with it).
"""

import keras


class StepSchedule(keras.callbacks.Callback):
    """Sets the optimizer's learning rate before each training step to
    `rate(step, steps, base)`, `base` the compiled constant rate and `steps`
    the training's steps: `epochs` epochs if given, else the epochs this
    `fit` trains (from its `initial_epoch`). Restores `base` at the end.

    When the schedule cannot run (the compiled rate is itself a schedule,
    or the data's size is unknown, so its steps are), `unusable` decides:
    it raises, or returns and the training keeps the compiled rate.

    Args:
        epochs: The epochs the schedule spans, or None (the `fit`'s).
    """

    def __init__(self, epochs=None):
        super().__init__()
        if epochs is not None and not (isinstance(epochs, int) and epochs >= 1):
            raise ValueError("Received an invalid value for `epochs`, expected a positive "
                             f"integer or None. Received: epochs={epochs!r}")
        self.epochs = epochs
        self._variable = None

    def rate(self, step, steps, base):
        """The learning rate of `step` (0-based) of `steps`."""
        raise NotImplementedError

    def unusable(self, reason, steps):
        """Called with reason "schedule" or "steps" (and the `fit`'s steps per
        epoch) when the schedule cannot run; returns to keep the compiled
        rate, or raises."""

    def on_train_begin(self, logs=None):
        self._variable = None
        rate = self.model.optimizer.learning_rate
        steps = self.params.get("steps")
        if not hasattr(rate, "assign"):  # a LearningRateSchedule
            return self.unusable("schedule", steps)
        if not steps:
            return self.unusable("steps", steps)
        self._variable = rate
        self._base = float(keras.ops.convert_to_numpy(rate))
        self._steps = None  # set at the first epoch: `fit` may start at `initial_epoch`
        self._step = 0

    def on_epoch_begin(self, epoch, logs=None):
        if self._variable is not None and self._steps is None:
            epochs = self.epochs or self.params.get("epochs", 1) - epoch
            self._steps = max(1, self.params["steps"] * epochs)

    def on_train_batch_begin(self, batch, logs=None):
        if self._variable is not None:
            self._variable.assign(self.rate(self._step, self._steps, self._base))
            self._step += 1

    def on_train_end(self, logs=None):
        if self._variable is not None:
            self._variable.assign(self._base)
