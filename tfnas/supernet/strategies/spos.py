"""SPOS (Guo et al., 2020): weight steps on a uniformly sampled single path,
the weights' learning rate decayed linearly to zero over the training (as
in the paper); then a search over paths, each scored by the supernet's
compiled metric on the whole validation data after batch-norm
recalibration: every path when the space has few enough (the paper's
evolutionary search approximates this argmax), else regularized evolution."""

from tfnas import strategies
from tfnas.supernet import paths
from tfnas.supernet.strategies.base import OneShotStrategy


@strategies.register("spos", one_shot=True)
class SPOS(OneShotStrategy):
    """Single path one-shot.

    Args:
        learning_rate_decay: "linear" (the paper's: the weights' learning
            rate falls linearly to zero over the supernet's training) or
            None (constant).
        exhaustive_limit: Spaces of at most this many paths are searched
            exhaustively (every path scored); larger ones by regularized
            evolution over `OneShotTuner(spos_trials=...)` paths. 0: always
            evolution.
    """

    mode = "single_path"
    DECAYS = ("linear", None)

    def __init__(self, learning_rate_decay="linear", exhaustive_limit=1000):
        if learning_rate_decay not in self.DECAYS:
            raise ValueError(
                f"Received an invalid value for `learning_rate_decay`, expected one of "
                f"{self.DECAYS}. Received: learning_rate_decay={learning_rate_decay!r}")
        if not (isinstance(exhaustive_limit, int) and exhaustive_limit >= 0):
            raise ValueError(
                "Received an invalid value for `exhaustive_limit`, expected a non-negative "
                f"integer. Received: exhaustive_limit={exhaustive_limit!r}")
        self.learning_rate_decay = learning_rate_decay
        self.exhaustive_limit = exhaustive_limit

    def architecture_step(self, model, x_train, y_train, x_val, y_val):
        model.sample_paths()

    def callbacks(self, epochs):
        from tfnas.supernet.schedules import LinearDecay

        return [LinearDecay(int(epochs))] if self.learning_rate_decay == "linear" else []

    def search(self, tuner, model, train, validation, epochs):
        model.fit(paths.paired(train, validation), epochs=epochs, verbose=0,
                  callbacks=self.callbacks(epochs))
        every = paths.all_paths(tuner, self.exhaustive_limit) if self.exhaustive_limit else None
        if every:
            scorer = paths.path_scorer(tuner, model, train, validation)
            return paths.search_all_paths(tuner, every, scorer)
        calibration = paths.calibration_batch(train)
        return paths.search_paths(
            tuner, "evolution", tuner.spos_trials,
            lambda values: paths.score_path(tuner, model, values, validation, calibration))
