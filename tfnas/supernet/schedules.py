"""Learning-rate schedules of supernet training, as callbacks (the weights'
optimizer is the user's, compiled before the strategy knows the steps)."""

import keras


class LinearDecay(keras.callbacks.Callback):
    """Decays the optimizer's learning rate linearly, batch by batch, from its
    value at the training's start to zero at its end; restores it after.

    SPOS (Guo et al., 2020) trains its supernet this way: with a constant
    rate, the last steps' paths decide the final weights, and the inherited
    accuracies rank the paths by what was trained last rather than by what
    they are worth.

    Args:
        epochs: The epochs of the training (the decay reaches zero after
            `epochs * steps` batches, `steps` read from the training's
            parameters).
    """

    def __init__(self, epochs):
        super().__init__()
        if not (isinstance(epochs, int) and epochs >= 1):
            raise ValueError("Received an invalid value for `epochs`, expected a positive "
                             f"integer. Received: epochs={epochs!r}")
        self.epochs = epochs
        self.initial = None
        self.total = None
        self.step = 0

    def on_train_begin(self, logs=None):
        self.initial = float(self.model.optimizer.learning_rate)
        try:
            self.model.optimizer.learning_rate = self.initial
        except TypeError as error:  # a schedule: Keras refuses to set its rate
            raise ValueError(
                "Received an optimizer whose learning rate is a schedule; linear decay "
                "sets the rate itself. Pass an optimizer with a constant learning rate, "
                "or turn the decay off (SPOS(learning_rate_decay=None)).") from error
        steps = self.params.get("steps")
        if not steps:
            raise ValueError(
                "Linear decay needs the number of steps per epoch, expected training data "
                f"of known size. Received: steps={steps!r} (e.g. a `tf.data` dataset of "
                "unknown cardinality). Pass a finite dataset of known size (e.g. "
                "`dataset.apply(tf.data.experimental.assert_cardinality(n))`), or turn the "
                "decay off (SPOS(learning_rate_decay=None)).")
        self.total = self.epochs * int(steps)
        self.step = 0

    def on_train_batch_begin(self, batch, logs=None):
        fraction = min(self.step, self.total) / self.total
        self.model.optimizer.learning_rate = self.initial * (1.0 - fraction)
        self.step += 1

    def on_train_end(self, logs=None):
        self.model.optimizer.learning_rate = self.initial
