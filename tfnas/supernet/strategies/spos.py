"""SPOS (Guo et al., 2020): weight steps on a uniformly sampled single path;
then regularized evolution over paths, each scored by the supernet's
compiled metric after batch-norm recalibration."""

from tfnas import strategies
from tfnas.supernet import paths
from tfnas.supernet.strategies.base import OneShotStrategy


@strategies.register("spos", one_shot=True)
class SPOS(OneShotStrategy):
    """Single path one-shot; `OneShotTuner(spos_trials=...)` paths evolved."""

    mode = "single_path"

    def architecture_step(self, model, x_train, y_train, x_val, y_val):
        model.sample_paths()

    def search(self, tuner, model, train, validation, epochs):
        model.fit(paths.paired(train, validation), epochs=epochs, verbose=0,
                  callbacks=self.callbacks(epochs))
        calibration = paths.calibration_batch(train)
        return paths.search_paths(
            tuner, "evolution", tuner.spos_trials,
            lambda values: paths.score_path(tuner, model, values, validation, calibration))
