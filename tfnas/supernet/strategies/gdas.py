"""GDAS (Dong & Yang, 2019): DARTS's alternation with Gumbel-softmax sampling
of one candidate per decision, the temperature annealed per epoch."""

import keras

from tfnas import strategies
from tfnas.supernet.strategies.base import GradientStrategy


class TemperatureSchedule(keras.callbacks.Callback):
    """Anneals GDAS's Gumbel-softmax temperature linearly per epoch.

    Args:
        epochs: The number of epochs of the schedule.
        start, end: Temperatures of the first and the last epoch (GDAS: 10
            and 0.1).
    """

    def __init__(self, epochs, start=10.0, end=0.1):
        super().__init__()
        self.epochs, self.start, self.end = int(epochs), float(start), float(end)

    def on_epoch_begin(self, epoch, logs=None):
        fraction = epoch / max(1, self.epochs - 1)
        temperature = self.start + (self.end - self.start) * min(1.0, fraction)
        for layer in self.model.decisions.values():
            layer.set_temperature(temperature)


@strategies.register("gdas", one_shot=True)
class GDAS(GradientStrategy):
    """Gumbel-softmax sampling, annealed from 10 to 0.1."""

    mode = "gdas"

    def callbacks(self, epochs):
        return [TemperatureSchedule(epochs)]
