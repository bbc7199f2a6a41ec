"""Early stopping of trials from their learning curves.

`NASTuner` reports every epoch's logs to the oracle with
`oracle.update_trial(trial_id, report, step=epoch)`, in process or over the
chief's gRPC channel (`epoch_report` builds the report). A tfnas oracle
(`tfnas.oracles.hardening.HardenedOracle`) records them in the trial's
metrics as learning curves (`epoch/<name>` at step `epoch`, so the trial's
named metrics keep meaning "at the best epoch"), asks its rule (`judge`),
and answers STOPPED when the rule says the trial cannot catch up; the tuner
then stops `model.fit`. A stopped trial ends COMPLETED with the epochs it
trained, its best score so far (a partial score) and the metric
`stopped_at_epoch` (see `tfnas.trials.is_stopped_early`).

Two rules, both composable with any tfnas strategy and with successive
halving:

- `MedianStoppingRule` (Golovin et al. 2017, Google Vizier): stop trial t at
  step s when its best objective so far is worse than the median of the
  completed trials' running averages of the objective up to step s.
- `CurveExtrapolationRule` (after Domhan et al. 2015): fit an ensemble of
  parametric learning-curve families to the epochs seen, and stop when the
  probability that the curve beats the best completed trial at its final
  epoch falls below a threshold.
"""

import collections
import inspect
import math
import zlib

import numpy as np

from tfnas import curve_fits
from tfnas import trials
from tfnas.validation import check_int

#: `CurveExtrapolationRule`'s `final_noise` settings.
FINAL_NOISE = ("learned", "constant")
#: Learning curves are recorded in a trial's metrics under this prefix.
CURVE_PREFIX = "epoch/"
#: A per-epoch report carries the epoch at which its `fit` ends under this
#: key (the oracle takes it out); it also marks the report as per-epoch.
PLANNED_EPOCHS = "tfnas/planned_epochs"


def curve_name(metric):
    """The name of `metric`'s learning curve in a trial's metrics."""
    return CURVE_PREFIX + metric


def epoch_report(logs, planned_epochs, objective=None):
    """The metrics a tuner sends to the oracle at the end of an epoch.

    Args:
        logs: The epoch's Keras logs.
        planned_epochs: The epoch (1-based) at which this `fit` ends.
        objective: The oracle's objective; its value is added when the logs
            do not hold it under its name (e.g. a weighted sum of metrics).

    Returns:
        `{"epoch/<metric>": value, ..., PLANNED_EPOCHS: planned_epochs}`,
        finite floats only (gRPC carries doubles).
    """
    values = {}
    for name, value in (logs or {}).items():
        try:
            value = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(value):
            values[name] = value
    if objective is not None and objective.name not in values:
        try:
            if objective.has_value(values):
                values[objective.name] = float(objective.get_value(values))
        except (KeyError, TypeError, ValueError):
            pass
    report = {curve_name(name): value for name, value in values.items()}
    report[PLANNED_EPOCHS] = float(planned_epochs)
    return report


def take_planned_epochs(metrics):
    """`(metrics without the marker, planned epochs)`; planned is None when
    `metrics` is not a per-epoch report."""
    metrics = dict(metrics)
    planned = metrics.pop(PLANNED_EPOCHS, None)
    return metrics, (None if planned is None else int(planned))


#: Metrics whose values lie in [0, 1], by the end of their name (Keras's
#: names, with or without "val_").
UNIT_INTERVAL_METRICS = ("accuracy", "auc", "precision", "recall")
#: Metrics that are never negative (Keras's errors, crossentropies, hinge
#: losses and divergences; not a compiled `loss`, which a cosine-similarity
#: or Gaussian log-likelihood loss makes negative).
NONNEGATIVE_METRICS = ("error", "crossentropy", "hinge", "divergence")


def metric_range(metric):
    """`(low, high)`: the values `metric` can take, read from its name
    (`(-inf, inf)` when the name says nothing, e.g. `loss`)."""
    name = str(metric).lower()
    if name.endswith(UNIT_INTERVAL_METRICS):
        return 0.0, 1.0
    if name.endswith(NONNEGATIVE_METRICS):
        return 0.0, math.inf
    return -math.inf, math.inf


def learning_curve(trial, metric, up_to=None):
    """`(epochs, values)` of `trial`'s learning curve of `metric`.

    Epochs are 1-based (step + 1), ascending; `up_to` keeps the epochs <= it.
    Empty arrays when the trial reported no curve.
    """
    name = curve_name(metric)
    if not trial.metrics.exists(name):
        return np.zeros(0), np.zeros(0)
    history = trial.metrics.get_history(name)
    epochs = np.array([obs.step + 1 for obs in history], dtype=float)
    values = np.array([obs.mean() for obs in history], dtype=float)
    keep = np.isfinite(values) if up_to is None else np.isfinite(values) & (epochs <= up_to)
    return epochs[keep], values[keep]


class StoppingRule:
    """Base class of early stopping rules.

    A rule sees curves oriented so that higher is better (the objective's
    values, negated for a "min" objective).

    Args:
        min_epochs: Epochs a trial trains before the rule may stop it.
        min_completed: Completed trials (with curves reaching the epoch
            the rule compares at) needed before the rule acts.
    """

    name = None

    def __init__(self, min_epochs=3, min_completed=3):
        check_int(min_epochs, "min_epochs", 1)
        check_int(min_completed, "min_completed", 1)
        self.min_epochs = min_epochs
        self.min_completed = min_completed

    def should_stop(self, epochs, values, completed, final_epoch, key,
                    value_range=(-math.inf, math.inf)):
        """Whether to stop a trial now.

        Args:
            epochs, values: The trial's curve so far (1-based epochs,
                oriented values).
            completed: `[(epochs, values)]` of the completed trials.
            final_epoch: The epoch at which the trial's `fit` ends.
            key: A reproducible integer for this decision (seeds any
                randomness together with the rule's seed).
            value_range: `(low, high)`, the values the oriented curve can
                take (see `metric_range`).
        """
        raise NotImplementedError

    def get_config(self):
        return {"min_epochs": self.min_epochs, "min_completed": self.min_completed}

    def __repr__(self):
        arguments = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({arguments})"


class MedianStoppingRule(StoppingRule):
    """The median stopping rule of Google Vizier (Golovin et al. 2017).

    Stops a trial at epoch s when its best value so far is worse than the
    median, over the completed trials that trained at least s epochs, of
    their running averages up to epoch s. Deterministic (no randomness).

    Args:
        min_epochs: Epochs before the rule may stop a trial. Defaults to 3.
        min_completed: Completed trials that reached epoch s needed before
            the rule acts. Defaults to 3.
    """

    name = "median"

    def should_stop(self, epochs, values, completed, final_epoch, key,
                    value_range=(-math.inf, math.inf)):
        if len(values) < self.min_epochs:
            return False
        step = epochs[-1]
        averages = [np.mean(v[e <= step]) for e, v in completed
                    if len(e) and e[-1] >= step and np.any(e <= step)]
        if len(averages) < self.min_completed:
            return False
        return bool(np.max(values) < np.median(averages))


class NoisePrior(collections.namedtuple("NoisePrior", "variance dof final_share",
                                        defaults=(1.0,))):
    """What the completed curves say of the noise (see
    `CurveExtrapolationRule.noise_prior`): the residual variance of their
    best fits, the degrees of freedom of one such fit, and `final_share`,
    the noise's variance over the curves' last quarter of epochs as a
    share of its variance over the whole curve (1, no decay, when not
    given)."""


class CurveExtrapolationRule(StoppingRule):
    """Learning-curve extrapolation, after Domhan et al. (2015).

    Fits each of Domhan et al.'s eleven parametric families
    (`tfnas.curve_families`) to the trial's curve by least squares
    (`tfnas.curve_fits`: Levenberg-Marquardt; when that leaves the
    family's bounds, a bounded fit for the families of 2-3 parameters, by
    variable projection where the family is linear in some parameters),
    keeps the fits that rise (or stay level) from epoch 2 to the final
    epoch (Domhan et al.'s monotonicity prior), weights them by their fit
    (BIC weights), samples each family's parameters from the Gaussian
    approximation of their posterior (the fit's covariance), keeps the
    draws that rise and end inside the metric's range (Domhan et al.'s
    sanity prior: an accuracy ends in [0, 1]; see `metric_range`), and adds
    the noise of the final epoch. It stops the trial when the probability that its value at
    its final epoch beats the best completed trial (one that trained as
    long) is below `threshold` (Domhan et al.'s 0.05). Families with at
    least as many parameters as points are not fitted; when none fits, the
    trial goes on. Deterministic under `seed`.

    The noise's variance is drawn from its posterior, a scaled inverse
    chi-squared whose prior comes from the completed trials' curves (the
    residual variance of their best fits, worth as many degrees of freedom
    as one such fit has): a few points alone say little about the noise
    (with 4 points and a 3-parameter family, one degree of freedom: a
    Cauchy predictive), while the curves of one search share it (the same
    validation data, the same training recipe).

    The noise is not the same at every epoch: a validation metric
    fluctuates less as training settles. The curves recorded by
    `benchmarks/early_stopping.py` fluctuate about their best fits, over
    their last quarter of epochs, with 0.44-0.74 times the variance they
    show over the whole curve (`NoisePrior.final_share` of all of a
    dataset's recorded curves). With Domhan et al.'s constant noise, the
    final value gets too much noise and the rule is under-confident on
    the ground-truth tables' curves: decisions it gave 0.05-0.2 of beating
    the best beat it 1-3 % of the time
    (`benchmarks/results/curve_calibration_fits.md`). So the noise added
    to the final value is the drawn variance times the completed curves'
    final share, while the fit of the trial's first epochs keeps the whole
    variance. That variance is mostly of early epochs (the trial's own and
    the completed curves' whole-curve residuals), so the final noise errs
    on the large side. With few completed curves the share is uncertain
    (each curve's ratio has a few degrees of freedom): the mean of 3 of
    the digits table's recorded curves ranges from 0.20 to 1.31 (5-95 %;
    0.62 over all 214), of 10 from 0.36 to 0.95.

    Departures from Domhan et al., and why: their posterior is sampled by
    MCMC over a weighted sum of the families (emcee, 100 walkers, 2,500
    steps: seconds to minutes of CPU per decision, more than an epoch of a
    small candidate costs); here each family's least-squares fit and its
    Laplace approximation, mixed by BIC weights, cost milliseconds. Their
    noise prior is flat; here it is learned from the completed trials.

    Args:
        min_epochs: Epochs before the rule may stop a trial, at least 3.
            Defaults to 4: the fewest at which the 3-parameter families fit
            with a degree of freedom left for the noise.
        min_completed: Completed trials that trained to the trial's final
            epoch needed before the rule acts. Defaults to 3.
        threshold: Stop when P(final value > best) is below it, in (0, 1).
            Defaults to 0.05 (Domhan et al.).
        samples: Posterior samples per family. Defaults to 500.
        seed: Seed of the sampling.
        variable_projection: Whether the bounded refits of the families
            linear in some parameters are made by variable projection (see
            `tfnas.curve_fits`). Defaults to True; False makes them over all
            the parameters at once, as stop 27's rule did (three to four
            times slower per decision), for comparison.
        final_noise: "learned" (the default): the final value's noise is
            the share of the noise's variance that the completed curves
            show over their last quarter of epochs (see above); "constant":
            the same as at every epoch, as Domhan et al. and stop 28's
            rule, for comparison.
    """

    name = "curve"

    def __init__(self, min_epochs=4, min_completed=3, threshold=0.05, samples=500, seed=0,
                 variable_projection=True, final_noise="learned"):
        super().__init__(min_epochs, min_completed)
        check_int(min_epochs, "min_epochs", 3)
        if (not isinstance(threshold, (int, float)) or isinstance(threshold, bool)
                or not 0 < threshold < 1):
            raise ValueError("Received an invalid value for `threshold`, expected a "
                             f"probability in (0, 1). Received: threshold={threshold!r}")
        check_int(samples, "samples", 10)
        check_int(seed, "seed", 0)
        if not isinstance(variable_projection, bool):
            raise ValueError(
                "Received an invalid value for `variable_projection`, expected True or "
                f"False. Received: variable_projection={variable_projection!r}")
        if final_noise not in FINAL_NOISE:
            raise ValueError(
                f"Received an invalid value for `final_noise`, expected one of {FINAL_NOISE}. "
                f"Received: final_noise={final_noise!r}")
        self.final_noise = final_noise
        self.threshold = float(threshold)
        self.variable_projection = variable_projection
        self.samples = samples
        self.seed = seed
        # (curve bytes, final epoch, variable projection) -> _noise_of's answer
        self._noise_fits = {}

    def get_config(self):
        return {**super().get_config(), "threshold": self.threshold,
                "samples": self.samples, "seed": self.seed,
                "variable_projection": self.variable_projection,
                "final_noise": self.final_noise}

    def should_stop(self, epochs, values, completed, final_epoch, key,
                    value_range=(-math.inf, math.inf)):
        if len(values) < self.min_epochs or epochs[-1] >= final_epoch:
            return False
        full = [(e, v) for e, v in completed if len(e) and e[-1] >= final_epoch]
        if len(full) < self.min_completed:
            return False
        best = float(max(np.max(v) for _, v in full))
        if np.max(values) >= best:
            return False
        probability = self.probability_to_beat(
            epochs, values, final_epoch, best, key, value_range=value_range,
            noise_prior=self.noise_prior(full, final_epoch))
        return probability is not None and probability < self.threshold

    def noise_prior(self, completed, final_epoch):
        """The `NoisePrior` learned from completed curves `[(epochs,
        values)]` up to `final_epoch`, or None when no curve tells.

        Its variance is the median residual variance of each curve's best
        fit (lowest BIC among its rising fits), its degrees of freedom the
        median of those fits'. Its final share is the mean over the curves
        of the noise's variance over their last quarter of epochs (the
        residuals' squares, corrected for the fit's leverage there: see
        `_noise_of`) divided by their residual variance; 1 (no decay) when
        the rule's `final_noise` is "constant". The mean, not the median:
        with a few points per curve, a median of these ratios falls below
        the ratio, and a smaller share stops more trials. A curve that a fit
        matches exactly (e.g. a candidate stuck at chance, the same value at
        every epoch) says nothing of the noise and is left out: it would
        make the rule certain of every extrapolation."""
        variances, dofs, shares = [], [], []
        for epochs, values in completed:
            epochs, values = np.asarray(epochs, dtype=float), np.asarray(values, dtype=float)
            keep = epochs <= final_epoch
            epochs, values = epochs[keep], values[keep]
            cache_key = (epochs.tobytes(), values.tobytes(), float(final_epoch),
                         self.variable_projection)
            if cache_key not in self._noise_fits:
                self._noise_fits[cache_key] = _noise_of(epochs, values, final_epoch,
                                                        self.variable_projection)
            if self._noise_fits[cache_key] is not None:
                variance, dof, share = self._noise_fits[cache_key]
                variances.append(variance)
                dofs.append(dof)
                if share is not None:
                    shares.append(share)
        if not variances:
            return None
        final_share = 1.0
        if self.final_noise == "learned" and shares:
            final_share = float(np.mean(shares))
        return NoisePrior(float(np.median(variances)), float(np.median(dofs)), final_share)

    def probability_to_beat(self, epochs, values, final_epoch, best, key=0,
                            value_range=(-math.inf, math.inf), noise_prior=None):
        """P(the curve's value at `final_epoch` > `best`), or None when no
        family fits the curve.

        Args:
            epochs, values: The curve so far.
            final_epoch: The epoch whose value is predicted.
            best: The value to beat.
            key: Seeds the sampling, with the rule's seed.
            value_range: `(low, high)`: draws that end outside are outside
                the prior's support.
            noise_prior: The noise's prior (a `NoisePrior`, see
                `noise_prior`; a `(variance, degrees of freedom)` pair
                has a final share of 1), or None for none (a flat prior;
                the final value's noise is then the same as every
                epoch's). Its final share is used as given: the rule's
                `final_noise` acts where `noise_prior` learns it.
        """
        rng = np.random.default_rng([self.seed, int(key) & 0xFFFFFFFF])
        fits = curve_fits.fit_families(epochs, values, final_epoch,
                                       self.variable_projection)
        if not fits:
            return None
        prior_variance, prior_dof, final_share = (
            NoisePrior(*noise_prior) if noise_prior is not None else NoisePrior(0.0, 0.0))
        low_value, high_value = value_range
        bics = np.array([fit.bic for fit in fits])
        weights = np.exp(-0.5 * (bics - bics.min()))
        weights /= weights.sum()
        mixed = []  # (BIC weight, P(beat)) of the families with draws in the prior's support
        for weight, fit in zip(weights, fits):
            # The noise's variance is drawn from its posterior (scaled inverse
            # chi-squared), which scales the parameters' covariance (the fit's
            # (J^T J)^-1) and the added noise (its final epoch's share): the
            # predictive is Student's t, not a normal fixed at the estimate.
            dof = prior_dof + fit.dof
            scale2 = (prior_dof * prior_variance + fit.residual) / dof
            variance = dof * max(scale2, 1e-10) / rng.chisquare(dof, size=self.samples)
            draws = fit.params + np.sqrt(variance)[:, None] * rng.multivariate_normal(
                np.zeros(len(fit.params)), fit.covariance, size=self.samples,
                check_valid="ignore", method="eigh")
            draws = np.clip(draws, fit.low, fit.high)
            with np.errstate(all="ignore"):
                mean = fit.function(float(final_epoch), *draws.T)
            final = mean + rng.normal(0.0, 1.0, size=self.samples) * np.sqrt(
                final_share * variance)
            beats = np.nan_to_num(final, nan=-np.inf) > best
            support = (curve_fits.rising(fit.function, draws, final_epoch)
                       & (mean >= low_value) & (mean <= high_value))
            if support.any():
                mixed.append((weight, float(np.mean(beats[support]))))
        if not mixed:
            return None
        total = sum(weight for weight, _ in mixed)
        return sum(weight * beat for weight, beat in mixed) / total


def _noise_of(epochs, values, final_epoch, variable_projection):
    """`(residual variance, degrees of freedom, final share)` of the best
    fit (lowest BIC) of a completed curve, or None when none fits or one
    fits it exactly (see `CurveExtrapolationRule.noise_prior`).

    The final share is the noise's variance over the curve's last quarter
    of epochs, divided by the residual variance; None when the fit passes
    through those points (their leverage sums to nearly their number).
    A residual's expected square is the noise's variance times one minus
    its point's leverage, so that variance is the residuals' squares summed
    over one minus the leverages summed."""
    fits = curve_fits.fit_families(epochs, values, final_epoch, variable_projection)
    if not fits:
        return None
    best = min(fits, key=lambda fit: fit.bic)
    variance = best.residual / best.dof
    scale = max(float(np.max(np.abs(values))), 1e-12)
    if variance <= (1e-6 * scale) ** 2:  # exact up to rounding
        return None
    late = epochs > 0.75 * final_epoch
    with np.errstate(all="ignore"):
        residuals = values[late] - best.function(epochs[late], *best.params)
    freedom = float(np.sum(1.0 - curve_fits.leverages(best, epochs)[late]))
    share = None
    if freedom >= 0.5 and np.all(np.isfinite(residuals)):
        share = float(np.sum(residuals ** 2)) / freedom / variance
    return variance, best.dof, share


RULES = {rule.name: rule for rule in (MedianStoppingRule, CurveExtrapolationRule)}


def get(rule):
    """A `StoppingRule` from a name ("median", "curve"), an instance, or None."""
    if rule is None or isinstance(rule, StoppingRule):
        return rule
    if isinstance(rule, str) and rule in RULES:
        return RULES[rule]()
    raise ValueError(
        "Received an invalid value for `early_stopping`, expected one of "
        f"{sorted(RULES)}, a tfnas.early_stopping.StoppingRule or None. "
        f"Received: early_stopping={rule!r}")


def attach(oracle, rule):
    """Makes `oracle` stop trials by `rule` (a name, a rule or None).

    Raises:
        ValueError: when `rule` is not a rule, or `oracle` cannot take
            per-epoch reports (KerasTuner's own oracles).
    """
    rule = get(rule)
    if rule is None:
        return
    if not getattr(oracle, "takes_epoch_reports", False):
        raise ValueError(
            f"Received `early_stopping={rule.name!r}` with the oracle "
            f"{type(oracle).__name__}, which does not take per-epoch reports. Early "
            "stopping needs a tfnas strategy (tfnas.oracles.ORACLES, not KerasTuner's "
            "hyperband, kt-random or kt-bayesian); use successive halving there.")
    oracle.early_stopping = rule


def _oriented(values, direction):
    return values if direction == "max" else -values


def judge(oracle, trial, step, planned_epochs):
    """Asks `oracle.early_stopping` about `trial` after its report at `step`.

    Records the stop in the trial's metrics (`stopped_at_epoch`) and returns
    a copy of the trial with status STOPPED when the rule stops it (or has
    stopped it already), else `trial`.
    """
    if trials.is_stopped_early(trial):
        return _stopped_copy(trial)
    rule = getattr(oracle, "early_stopping", None)
    if rule is None:
        return trial
    if step + 1 >= planned_epochs:
        return trial  # the last epoch: the trial ends anyway, with its full score
    metric, direction = oracle.objective.name, oracle.objective.direction
    epochs, values = learning_curve(trial, metric, up_to=step + 1)
    if not len(values) or epochs[-1] != step + 1:
        return trial
    completed = []
    for other in trials.completed_in_end_order(oracle):
        if other.trial_id != trial.trial_id:
            other_epochs, other_values = learning_curve(other, metric)
            completed.append((other_epochs, _oriented(other_values, direction)))
    key = zlib.crc32(f"{trial.trial_id}/{step}".encode())
    values = _oriented(values, direction)
    extra = {}
    if _takes_value_range(rule):  # a rule written before it existed does not
        extra["value_range"] = _value_range(metric, direction, [values] + [
            other_values for _, other_values in completed])
    if not rule.should_stop(epochs, values, completed, planned_epochs, key, **extra):
        return trial
    trial.metrics.update(trials.STOPPED_AT, float(step + 1), step=step)
    return _stopped_copy(trial)


def _value_range(metric, direction, curves):
    """The oriented range of `metric` (see `metric_range`), or none when an
    observed value lies outside it (the name misled)."""
    low, high = metric_range(metric)
    if direction != "max":
        low, high = -high, -low
    if any(len(curve) and (np.min(curve) < low or np.max(curve) > high) for curve in curves):
        return -math.inf, math.inf
    return low, high


def _takes_value_range(rule):
    parameters = inspect.signature(rule.should_stop).parameters
    return "value_range" in parameters or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())


def _stopped_copy(trial):
    import keras_tuner as kt

    return kt.engine.trial.Trial(trial.hyperparameters, trial_id=trial.trial_id,
                                 status=trials.STOPPED)


def report_epoch(oracle, trial_id, epoch, logs, planned_epochs):
    """Reports an epoch's logs to `oracle` (a tuner's oracle or a worker's
    client); returns whether the oracle answers that the trial must stop.

    Nothing is reported to an oracle that does not take per-epoch reports
    (KerasTuner's own), nor by the workers of a multi-worker cluster (only
    its reporting worker talks to the chief, and all its workers must stop
    together: early stopping does not apply there).
    """
    if (not getattr(oracle, "takes_epoch_reports", False)
            or getattr(oracle, "multi_worker", False)
            or not getattr(oracle, "should_report", True)):
        return False
    report = epoch_report(logs, planned_epochs or epoch + 1, oracle.objective)
    answer = oracle.update_trial(trial_id, report, step=int(epoch))
    return answer is not None and answer.status == trials.STOPPED
