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

from tfnas.step_schedules import StepSchedule

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


class ChildSchedule(StepSchedule):
    """Sets the optimizer's learning rate before each training step to
    `child_learning_rate` of the step, from the rate the model was compiled
    with, over all the steps of the `fit` call; puts the compiled rate back
    when training ends (the model is the trial's, saved or exported later).
    A model compiled with a `LearningRateSchedule` keeps its own schedule,
    and training data of unknown size (no steps per epoch in the `fit`
    parameters: the schedule's length is unknown) the compiled rate: a
    schedule of a guessed length would reach zero too early and stop the
    training.

    Args:
        warmup_fraction: The fraction of the steps spent warming up.
    """

    def __init__(self, warmup_fraction=WARMUP_FRACTION):
        super().__init__()
        self.warmup_fraction = warmup_fraction

    def rate(self, step, steps, base):
        return child_learning_rate(step, steps, base, self.warmup_fraction)
