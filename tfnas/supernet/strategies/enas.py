"""ENAS (Pham et al., 2018): the controller (the `controller` oracle) samples
a path per trial; the shared weights train on it for `enas_steps` batches
(they persist across trials); its score on the validation data (the compiled
metric of the objective, batch norm recalibrated for the path, as the shared
statistics mix every path) is the controller's reward."""

from tfnas import strategies
from tfnas.supernet import paths
from tfnas.supernet.strategies.base import OneShotStrategy


@strategies.register("enas", one_shot=True)
class ENAS(OneShotStrategy):
    """Weight steps on the path the controller sets (no architecture step)."""

    mode = "single_path"

    def training_plan(self, tuner, epochs):
        return (f"{tuner.enas_trials} paths sampled by its controller, each trained for "
                f"{tuner.enas_steps} batches on the shared weights")

    def search(self, tuner, model, train, validation, epochs):
        paired = paths.paired(train.repeat(), validation)
        calibration = paths.calibration_batch(train)

        def score(values):
            paths.set_path(model, values)
            model.fit(paired, steps_per_epoch=tuner.enas_steps, epochs=1, verbose=0,
                      callbacks=self.callbacks(1))
            return paths.score_path(tuner, model, values, validation, calibration)

        return paths.search_paths(tuner, "controller", tuner.enas_trials, score)
