"""Learning-rate schedules of supernet training, as callbacks (the weights'
optimizer is the user's, compiled before the strategy knows the steps)."""

from tfnas.step_schedules import StepSchedule


class LinearDecay(StepSchedule):
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
        if epochs is None:
            raise ValueError("Received an invalid value for `epochs`, expected a positive "
                             "integer. Received: epochs=None")
        super().__init__(epochs)

    def rate(self, step, steps, base):
        return base * (1.0 - min(step, steps) / steps)

    def unusable(self, reason, steps):
        if reason == "schedule":
            raise ValueError(
                "Received an optimizer whose learning rate is a schedule; linear decay "
                "sets the rate itself. Pass an optimizer with a constant learning rate, "
                "or turn the decay off (SPOS(learning_rate_decay=None)).")
        raise ValueError(
            "Linear decay needs the number of steps per epoch, expected training data "
            f"of known size. Received: steps={steps!r} (e.g. a `tf.data` dataset of "
            "unknown cardinality). Pass a finite dataset of known size (e.g. "
            "`dataset.apply(tf.data.experimental.assert_cardinality(n))`), or turn the "
            "decay off (SPOS(learning_rate_decay=None)).")
