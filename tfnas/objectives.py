"""Objectives computed from a trial's metrics: the MnasNet reward.

A KerasTuner objective names one metric. An objective here is also
computed from other metrics (e.g. accuracy and latency): `NASTuner` and the
tabular runner call `add_derived_metrics`, so any oracle can optimize it.
"""

import math

import keras_tuner as kt


def mnasnet_reward(accuracy, cost, target, alpha=-0.07, beta=-0.07):
    """MnasNet's reward `accuracy * (cost / target) ** w` (Tan et al., 2019).

    `w = alpha` when `cost <= target`, else `beta`. The soft constraint is
    `alpha = beta = -0.07`; the hard constraint `alpha = 0, beta = -1`.
    """
    for name, value in (("cost", cost), ("target", target)):
        if not value > 0:
            raise ValueError(f"Expected a positive `{name}`. Received: {name}={value!r}")
    exponent = alpha if cost <= target else beta
    return accuracy * (cost / target) ** exponent


class MnasNetReward(kt.Objective):
    """The MnasNet reward as a (maximized) objective.

    Args:
        target: The target cost T (e.g. 5.0 milliseconds).
        accuracy: The accuracy metric; the best epoch is chosen by it.
        cost: The cost metric: "latency_ms" (measured by `NASTuner`),
            "params", "flops", or a predicted latency (see
            `tfnas.latency.LatencyTable`).
        alpha, beta: The exponents below and above the target.
        hard_constraint: Use `alpha=0, beta=-1` (MnasNet's hard constraint).
        name: The metric name of the reward.
    """

    def __init__(self, target, accuracy="val_accuracy", cost="latency_ms", alpha=-0.07,
                 beta=-0.07, hard_constraint=False, name="mnasnet_reward"):
        if isinstance(target, bool) or not isinstance(target, (int, float)) or not (
                target > 0 and math.isfinite(target)):
            raise ValueError(
                "Received an invalid value for `target`, expected a positive number. "
                f"Received: target={target!r}")
        super().__init__(name, "max")
        self.target = float(target)
        self.accuracy = accuracy
        self.cost = cost
        self.alpha, self.beta = (0.0, -1.0) if hard_constraint else (alpha, beta)

    @property
    def epoch_metric(self):
        """The training metric whose best epoch the trial reports."""
        return self.accuracy

    # Per epoch, only the accuracy is known (the cost is measured after
    # training): KerasTuner's best-epoch checkpoint follows the accuracy.
    def has_value(self, logs):
        return self.accuracy in logs

    def get_value(self, logs):
        return logs[self.accuracy]

    def compute(self, metrics):
        missing = [m for m in (self.accuracy, self.cost) if m not in metrics]
        if missing:
            raise kt.errors.FatalValueError(
                f"The objective `{self.name}` needs the metrics {missing}, which the "
                f"trial did not report. Reported: {sorted(metrics)}")
        return mnasnet_reward(metrics[self.accuracy], metrics[self.cost], self.target,
                              self.alpha, self.beta)

    def __repr__(self):
        return (f"MnasNetReward(target={self.target}, accuracy={self.accuracy!r}, "
                f"cost={self.cost!r}, alpha={self.alpha}, beta={self.beta})")


def objectives_of(objective):
    """The objectives inside `objective` (several for a MultiObjective)."""
    return getattr(objective, "objectives", None) or [objective]


def add_derived_metrics(objective, metrics):
    """Adds the value of every computed objective to `metrics` (in place)."""
    for single in objectives_of(objective):
        if hasattr(single, "compute"):
            metrics[single.name] = float(single.compute(metrics))
    return metrics


def epoch_metric(objective):
    """The metric by which the best epoch is chosen for `objective`."""
    return getattr(objective, "epoch_metric", objective.name)


def _metric_name(metric):
    """The name a compiled metric logs under; None when the config hides it."""
    if isinstance(metric, str):
        return metric
    if isinstance(metric, dict):
        config = metric.get("config")
        if isinstance(config, str):  # a plain function: its name
            return config
        if isinstance(config, dict) and isinstance(config.get("name"), str):
            return config["name"]
    return None


def compiled_metric_names(model, validation):
    """The metrics `model.fit` will log, read from the compiled model.

    Args:
        model: A compiled, single-output Keras model.
        validation: Whether `fit` is given validation data (adds `val_` names).

    Returns:
        A set of names, or None when the compiled model cannot tell (not
        compiled, several outputs, or metrics given per output).
    """
    config = model.get_compile_config() if getattr(model, "compiled", False) else None
    if not config or len(getattr(model, "outputs", None) or [None]) != 1:
        return None
    names = {"loss"}
    for key in ("metrics", "weighted_metrics"):
        metrics = config.get(key) or []
        if not isinstance(metrics, (list, tuple)):
            return None  # per-output metrics: named after the outputs
        for metric in metrics:
            name = _metric_name(metric)
            if name is None:
                return None
            names.add(name)
    return names | {f"val_{name}" for name in names} if validation else names


def check_logged(objective, model, validation):
    """Refuses, before training, an objective the compiled model never logs.

    Args:
        objective: The oracle's objective.
        model: The first candidate, built and compiled.
        validation: Whether `fit` is given validation data.

    Raises:
        keras_tuner.errors.FatalValueError: when the model's compiled
            metrics show that the objective's metric is never logged.
    """
    logged = compiled_metric_names(model, validation)
    if logged is None:
        return
    missing = [epoch_metric(single) for single in objectives_of(objective)
               if epoch_metric(single) not in logged]
    if missing:
        raise kt.errors.FatalValueError(
            f"Received an objective that training never logs: {missing[0]!r}. The "
            f"compiled model logs {sorted(logged)}: choose one of these as the "
            "objective (`--objective`), or compile the model with that metric.")
