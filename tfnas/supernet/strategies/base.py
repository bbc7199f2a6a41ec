"""What a one-shot strategy is: its mixing mode, its architecture step, its
callbacks and its search (training plus derivation)."""

from tfnas import strategies as registry


class OneShotStrategy:
    """A weight-sharing strategy, as `OneShotModel` and `OneShotTuner` use it.

    Subclass it, set `mode`, override what differs, and register the class
    with `tfnas.strategies.register(name, one_shot=True)`.

    Attributes:
        mode: How the mixed layers mix their candidates (one of
            `tfnas.supernet.MODES`).
        second_order: DARTS's unrolled architecture gradient.
    """

    mode = "darts"
    second_order = False

    def architecture_step(self, model, x_train, y_train, x_val, y_val):
        """Runs before every weight step of `model` (a `OneShotModel`), inside
        its traced `train_step`. Default: nothing."""

    def architecture_penalty(self, alphas):
        """A regularization term of the architecture loss, a function of the
        alphas only (e.g. beta-DARTS's Beta-Decay), or None (default)."""
        return None

    def callbacks(self, epochs):
        """Keras callbacks of the supernet's training for `epochs` epochs."""
        return []

    def training_plan(self, tuner, epochs):
        """What `search` trains, in words (the command line's first line)."""
        return f"a supernet for {epochs} epochs"

    def search(self, tuner, model, train, validation, epochs):
        """Trains the compiled `model` on `train` (batches), learning the
        architecture on `validation`, and returns the derived decision values.

        Args:
            tuner: The `OneShotTuner` (its options, and `record_*` to keep
                what the search learned in the project).
            model: The compiled `OneShotModel`.
            train, validation: `tf.data` datasets of `(x, y)` batches.
            epochs: Epochs of supernet training.
        """
        raise NotImplementedError


class GradientStrategy(OneShotStrategy):
    """Architecture weights learned by gradient (DARTS, GDAS, ProxylessNAS):
    alternating architecture and weight steps, the alphas' probabilities
    recorded per epoch, the largest alpha per decision derived."""

    def architecture_step(self, model, x_train, y_train, x_val, y_val):
        model.architecture_step(x_train, y_train, x_val, y_val)

    def search(self, tuner, model, train, validation, epochs):
        from tfnas.supernet import oneshot

        log = oneshot.ProbabilityLog()
        model.fit(oneshot.paired(train, validation), epochs=epochs, verbose=0,
                  callbacks=[log, *self.callbacks(epochs)])
        tuner.record_probabilities(log.rows)
        return oneshot.derive(model)


def resolve(strategy):
    """The `OneShotStrategy` for a registered name, or `strategy` itself.

    Raises:
        ValueError: for a name that is not a registered one-shot strategy.
    """
    if isinstance(strategy, OneShotStrategy):
        return strategy
    return registry.get(strategy, one_shot=True).cls()
