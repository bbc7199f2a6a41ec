"""SPOS (Guo et al., 2020): weight steps on a uniformly sampled single path,
the weights' learning rate decayed linearly to zero over the training (as
in the paper); then regularized evolution over paths, each scored by the
supernet's compiled metric after batch-norm recalibration."""

from tfnas import strategies
from tfnas.supernet import paths
from tfnas.supernet.strategies.base import OneShotStrategy


@strategies.register("spos", one_shot=True)
class SPOS(OneShotStrategy):
    """Single path one-shot; `OneShotTuner(spos_trials=...)` paths evolved.

    Args:
        learning_rate_decay: "linear" (the paper's: the weights' learning
            rate falls linearly to zero over the supernet's training) or
            None (constant).
    """

    mode = "single_path"
    DECAYS = ("linear", None)

    def __init__(self, learning_rate_decay="linear"):
        if learning_rate_decay not in self.DECAYS:
            raise ValueError(
                f"Received an invalid value for `learning_rate_decay`, expected one of "
                f"{self.DECAYS}. Received: learning_rate_decay={learning_rate_decay!r}")
        self.learning_rate_decay = learning_rate_decay

    def architecture_step(self, model, x_train, y_train, x_val, y_val):
        model.sample_paths()

    def callbacks(self, epochs):
        from tfnas.supernet.schedules import LinearDecay

        return [LinearDecay(int(epochs))] if self.learning_rate_decay == "linear" else []

    def search(self, tuner, model, train, validation, epochs):
        model.fit(paths.paired(train, validation), epochs=epochs, verbose=0,
                  callbacks=self.callbacks(epochs))
        calibration = paths.calibration_batch(train)
        return paths.search_paths(
            tuner, "evolution", tuner.spos_trials,
            lambda values: paths.score_path(tuner, model, values, validation, calibration))
