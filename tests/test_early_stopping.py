"""Early stopping: per-epoch reports, the median and curve rules, stopped trials.

The rules are judged through a real oracle fed with learning curves the
tests write; the searches train real models on digits; the distributed test
runs a chief and a worker as real processes on 127.0.0.1.
"""

import contextlib
import glob
import io
import os

import keras_tuner as kt
import numpy as np
import pytest
import tensorflow as tf

import tfnas
from tfnas import (cli, curve_families, curve_fits, early_stopping, oracles, project, report,
                   spaces, trials)
from tfnas.bench import LookupTuner
from tfnas.early_stopping import CurveExtrapolationRule, MedianStoppingRule
from tfnas.oracles.halving import EPOCHS, INITIAL_EPOCH, PARENT, RUNG, SuccessiveHalving

OBJECTIVE = kt.Objective("val_accuracy", "max")
EPOCHS_PLANNED = 10
RISING = [0.5, 0.65, 0.74, 0.8, 0.84, 0.87, 0.89, 0.9, 0.905, 0.91]  # completed trials


def _oracle(tmp_path, rule, name="random", **kwargs):
    oracle = oracles.get(name, OBJECTIVE, 50, seed=0, **kwargs)
    LookupTuner(oracle, spaces.ChainSpace((4, 4, 1), 2, max_layers=3), lambda values: 0.0,
                signal_name="val_accuracy", directory=tmp_path, project_name="p")
    early_stopping.attach(oracle, rule)
    return oracle


def _train(oracle, curve, planned=EPOCHS_PLANNED, first_epoch=0):
    """Reports `curve` epoch by epoch as NASTuner does, until the oracle
    answers STOPPED; ends the trial. Returns (the trial, epochs trained)."""
    trial = oracle.create_trial("tuner0")
    trained = 0
    for offset, value in enumerate(curve):
        epoch = first_epoch + offset
        report_ = early_stopping.epoch_report({"val_accuracy": value, "loss": 1 - value},
                                              planned)
        answer = oracle.update_trial(trial.trial_id, report_, step=epoch)
        trained += 1
        if answer.status == trials.STOPPED:
            break
    seen = list(curve[:trained])
    oracle.update_trial(trial.trial_id, {"val_accuracy": max(seen)},
                        step=first_epoch + int(np.argmax(seen)))
    trial.status = trials.COMPLETED
    oracle.end_trial(trial)
    return oracle.trials[trial.trial_id], trained


def _noisy(curve, seed):
    return list(np.asarray(curve) + np.random.default_rng(seed).normal(0, 0.005, len(curve)))


# The rules, through a real oracle.

def test_median_rule_stops_a_curve_below_the_median_and_lets_a_promising_one_run(tmp_path):
    oracle = _oracle(tmp_path, MedianStoppingRule(min_epochs=3, min_completed=3))
    hopeless = [0.2, 0.25, 0.3, 0.32, 0.33, 0.34, 0.35, 0.35, 0.36, 0.36]
    # Before three trials completed, even a hopeless curve trains fully.
    first, trained = _train(oracle, hopeless)
    assert trained == EPOCHS_PLANNED and not trials.is_stopped_early(first)
    for seed in range(3):
        _, trained = _train(oracle, _noisy(RISING, seed))
        assert trained == EPOCHS_PLANNED
    stopped, trained = _train(oracle, hopeless)
    assert trained == 3  # stopped at min_epochs, not before
    assert trials.is_stopped_early(stopped) and trials.stopped_at(stopped) == 3
    assert stopped.status == trials.COMPLETED and stopped.score == pytest.approx(0.3)
    promising = [0.6, 0.72, 0.8, 0.85, 0.88, 0.9, 0.92, 0.93, 0.935, 0.94]
    kept, trained = _train(oracle, promising)
    assert trained == EPOCHS_PLANNED and not trials.is_stopped_early(kept)
    assert kept.score == pytest.approx(0.94)
    # The learning curve is in the trial's metrics; the named metric keeps
    # its best epoch only.
    epochs, values = early_stopping.learning_curve(kept, "val_accuracy")
    assert list(epochs) == list(range(1, 11)) and list(values) == pytest.approx(promising)
    assert kept.metrics.get_last_value("val_accuracy") == pytest.approx(0.94)


def test_median_rule_is_vizier_s_running_average_median(tmp_path):
    """A best so far of 0.62 at epoch 3 is below the median of the completed
    trials' running averages up to epoch 3 (0.633): stopped; 0.64 runs on.
    (The median of their values at epoch 3 alone, 0.72, would stop both.)"""
    for best, stops in ((0.62, True), (0.64, False)):
        oracle = _oracle(tmp_path / str(best), MedianStoppingRule(min_epochs=3,
                                                                  min_completed=3))
        for curve in ([0.5, 0.6, 0.8, 0.9], [0.55, 0.62, 0.72, 0.9], [0.6, 0.65, 0.7, 0.9]):
            _train(oracle, curve, planned=4)
        _, trained = _train(oracle, [0.4, 0.5, best, 0.99], planned=4)
        assert (trained == 3) is stops


def test_curve_rule_stops_a_plateau_below_the_best_and_lets_a_rising_curve_run(tmp_path):
    oracle = _oracle(tmp_path, CurveExtrapolationRule(min_epochs=4, min_completed=3, seed=0))
    for seed in range(3):
        _train(oracle, _noisy(RISING, seed))
    x = np.arange(1, EPOCHS_PLANNED + 1)
    plateau = _noisy(0.6 - 0.3 * np.exp(-0.9 * x), 7)  # levels off near 0.6 < 0.91
    stopped, trained = _train(oracle, plateau)
    assert trained == 4 and trials.stopped_at(stopped) == 4
    rising = _noisy(1.0 - 0.5 / x, 8)  # 0.875 at epoch 4, heading to 0.95 > 0.91
    kept, trained = _train(oracle, rising)
    assert trained == EPOCHS_PLANNED and not trials.is_stopped_early(kept)
    rule = oracle.early_stopping
    assert rule.probability_to_beat(x[:4], np.asarray(rising[:4]), 10, 0.91) > 0.5
    assert rule.probability_to_beat(x[:4], np.asarray(plateau[:4]), 10, 0.91) < 0.01


def test_curve_rule_fits_domhan_s_eleven_rising_families():
    x = np.arange(1, 21, dtype=float)
    curve = np.asarray(_noisy(0.9 - 0.4 * x ** -0.7, 2))
    families = curve_families.families(curve[:6])
    assert set(families) == {"vapor_pressure", "pow3", "loglog_linear", "hill3", "log_power",
                             "pow4", "mmf", "exp4", "janoschek", "weibull", "ilog2"}
    for name, (function, start, low, high) in families.items():
        assert len(start) == len(low) == len(high)
        assert np.all(np.isfinite(function(x, *start))), name
    # Domhan et al.'s monotonicity prior: only curves that do not fall count.
    rising = curve_fits.rising(curve_families.pow3, np.array([[0.9, 0.4, 0.7],
                                                              [0.9, -0.4, 0.7]]), 20)
    assert list(rising) == [True, False]


def test_curve_rule_lets_a_slow_starting_winner_run():
    """After 4 epochs of a slow, S-shaped start (a Hill curve) heading above
    the best, the trial is not judged hopeless: S-shaped families (Hill3, log
    power) are among the fits, and the noise's variance is drawn from its
    posterior rather than fixed at its estimate from 4 points. (Five concave
    families with a fixed noise gave it probability 0.)"""
    x = np.arange(1, 21, dtype=float)
    curve = curve_families.hill3(x, 0.9, 3.0, 6.0) + np.random.default_rng(1).normal(0, 0.005, 20)
    best = curve_families.hill3(20.0, 0.9, 3.0, 6.0) - 0.03
    completed = [(x, np.asarray(_noisy(best - 0.3 / x + 0.3 / 20, seed))) for seed in range(3)]
    rule = CurveExtrapolationRule()
    prior = rule.noise_prior(completed, 20)
    assert rule.probability_to_beat(x[:4], curve[:4], 20, best) > 0.5
    assert rule.probability_to_beat(x[:4], curve[:4], 20, best, value_range=(0.0, 1.0),
                                    noise_prior=prior) > 0.1
    assert not rule.should_stop(x[:4], curve[:4], completed, 20, key=0, value_range=(0.0, 1.0))
    # A curve levelling off far below the best is still stopped.
    plateau = 0.6 - 0.3 * np.exp(-0.9 * x) + np.random.default_rng(2).normal(0, 0.005, 20)
    assert rule.should_stop(x[:5], plateau[:5], completed, 20, key=0, value_range=(0.0, 1.0))


def test_metric_range_reads_the_metric_s_name():
    assert early_stopping.metric_range("val_accuracy") == (0.0, 1.0)
    assert early_stopping.metric_range("val_sparse_categorical_accuracy") == (0.0, 1.0)
    assert early_stopping.metric_range("auc") == (0.0, 1.0)
    assert early_stopping.metric_range("val_mean_absolute_error") == (0.0, np.inf)
    assert early_stopping.metric_range("sparse_categorical_crossentropy") == (0.0, np.inf)
    # A compiled loss can be negative (cosine similarity, Gaussian likelihood).
    assert early_stopping.metric_range("val_loss") == (-np.inf, np.inf)
    assert early_stopping.metric_range("mnasnet_reward") == (-np.inf, np.inf)
    # Oriented for a "min" objective, and dropped when a value falls outside.
    assert early_stopping._value_range("val_mean_absolute_error", "min",
                                       [np.array([-0.5, -0.3])]) == (-np.inf, 0.0)
    assert early_stopping._value_range("val_accuracy", "max",
                                       [np.array([0.5, 0.7]), np.array([0.9, 1.2])]) == (
        -np.inf, np.inf)


def test_curve_rule_keeps_an_accuracy_s_extrapolation_inside_0_1():
    """Domhan et al.'s sanity prior: a curve rising by 0.1 an epoch, judged
    against 0.99, is stopped only when the rule knows that an accuracy ends
    below 1 (families such as log-log linear extrapolate it to 1.5)."""
    x = np.arange(1, 21, dtype=float)
    steep = np.array([0.55, 0.65, 0.75, 0.85])
    rule = CurveExtrapolationRule()
    assert rule.probability_to_beat(x[:4], steep, 20, 0.99) > 0.9
    assert rule.probability_to_beat(x[:4], steep, 20, 0.99, value_range=(0.0, 1.0)) < 0.01
    completed = [(x, np.asarray(_noisy(0.99 - 0.5 * np.exp(-0.3 * x), seed))) for seed in range(3)]
    assert rule.should_stop(x[:4], steep, completed, 20, key=0, value_range=(0.0, 1.0))
    assert not rule.should_stop(x[:4], steep, completed, 20, key=0)
    # Through an oracle: judge reads the range from the objective's name.
    assert early_stopping.metric_range(OBJECTIVE.name) == (0.0, 1.0)


def test_curve_rule_learns_the_noise_from_the_completed_curves():
    """The noise prior: the completed curves' residual variance (of their
    best fits) with the degrees of freedom of one such fit. The same five
    epochs are hopeless after smooth completed curves and not after noisy
    ones, where the noise alone could carry the final value over the best."""
    x = np.arange(1, 21, dtype=float)

    def completed(noise):
        rng = np.random.default_rng(1)
        return [(x, 0.9 - 0.4 * x ** -0.8 + rng.normal(0, noise, 20)) for _ in range(3)]

    rule = CurveExtrapolationRule()
    for noise in (0.002, 0.02, 0.05):
        variance, dof, _ = rule.noise_prior(completed(noise), 20)
        assert noise ** 2 / 3 < variance < 3 * noise ** 2 and 14 <= dof <= 18
    assert rule.noise_prior([(x[:2], np.array([0.2, 0.3]))], 20) is None  # nothing fits
    best = max(float(np.max(v)) for _, v in completed(0.01))
    curve = 0.82 - 0.4 * x[:5] ** -0.8 + np.random.default_rng(10).normal(0, 0.005, 5)
    smooth, noisy = completed(0.002), completed(0.05)
    assert rule.probability_to_beat(
        x[:5], curve, 20, best, noise_prior=rule.noise_prior(smooth, 20)) < 0.01
    assert rule.probability_to_beat(
        x[:5], curve, 20, best, noise_prior=rule.noise_prior(noisy, 20)) > 0.1
    # A candidate stuck at chance (the same value at every epoch) says nothing
    # of the noise: left out, it does not make the rule certain.
    stuck = [(x, np.full(20, 0.1))] * 3
    assert rule.noise_prior(stuck, 20) is None
    assert rule.noise_prior(stuck + completed(0.02)[:2], 20) == rule.noise_prior(
        completed(0.02)[:2], 20)


def test_curve_rule_learns_that_the_final_epoch_s_noise_is_smaller():
    """The final share: completed curves whose noise falls from 0.04 to 0.01
    over training (variance 16 times smaller; 0.245 of the whole curve's
    over the last quarter) give a share far below 1 (0.28-0.48 over seeds
    0-5), and curves with one noise throughout give about 1 (0.68-1.40: a
    mean over 8 curves of ratios with a few degrees of freedom each). A curve halfway between
    its plateau and the best is then less likely to beat the best than the
    constant noise says, and a stop 28 rule (`final_noise="constant"`)
    gives it exactly the probability of a prior whose share is 1."""
    x = np.arange(1, 21, dtype=float)
    rng = np.random.default_rng(4)
    shape = 0.85 - 0.4 * x ** -0.9

    def completed(noise):
        return [(x, shape + rng.normal(0, 1, 20) * noise) for _ in range(8)]

    learned, constant = CurveExtrapolationRule(), CurveExtrapolationRule(final_noise="constant")
    decaying = completed(0.04 * (0.25 ** ((x - 1) / 19)))
    even = completed(np.full(20, 0.02))
    assert learned.noise_prior(decaying, 20).final_share < 0.6  # 0.245 by the noise
    assert 0.6 < learned.noise_prior(even, 20).final_share < 1.6
    assert constant.noise_prior(decaying, 20).final_share == 1.0
    assert constant.get_config()["final_noise"] == "constant"
    assert learned.get_config()["final_noise"] == "learned"
    prior = learned.noise_prior(decaying, 20)
    curve = shape[:10] - 0.02 + np.random.default_rng(5).normal(0, 0.01, 10)
    best = 0.85
    with_decay = learned.probability_to_beat(x[:10], curve, 20, best, value_range=(0.0, 1.0),
                                             noise_prior=prior)
    without = constant.probability_to_beat(x[:10], curve, 20, best, value_range=(0.0, 1.0),
                                           noise_prior=prior[:2])
    assert with_decay < 0.75 * without  # 0.040 and 0.058 (Domhan et al.'s threshold: 0.05)
    assert constant.probability_to_beat(
        x[:10], curve, 20, best, value_range=(0.0, 1.0),
        noise_prior=early_stopping.NoisePrior(*prior[:2], 1.0)) == without


def test_curve_rule_without_priors_is_stop_25_s():
    """Without a noise prior or a range, the probability is the rule's of
    stop 25 (commit 47e713c), draw for draw."""
    x = np.arange(1, 6, dtype=float)
    curve = np.asarray(_noisy(0.9 - 0.4 * x ** -0.7, 3))
    probability = CurveExtrapolationRule(seed=1).probability_to_beat(x, curve, 20, 0.86, key=5)
    assert probability == pytest.approx(0.08393669352890189, abs=1e-6)


def test_curve_rule_on_a_min_objective_extrapolates_inside_its_range(tmp_path):
    """Through the oracle, the curve rule on a "min" objective whose range is
    known (a mean absolute error: oriented, (-inf, 0]; the orientation is
    checked in test_metric_range_reads_the_metric_s_name): a curve that
    levels off at 0.6 while the others reach 0.03 is stopped."""
    objective = kt.Objective("val_mean_absolute_error", "min")
    oracle = oracles.get("random", objective, 50, seed=0)
    LookupTuner(oracle, spaces.ChainSpace((4, 4, 1), 2, max_layers=3), lambda values: 0.0,
                signal_name=objective.name, directory=tmp_path, project_name="p")
    early_stopping.attach(oracle, CurveExtrapolationRule())
    x = np.arange(1, EPOCHS_PLANNED + 1)

    def train(curve):
        trial = oracle.create_trial("tuner0")
        for epoch, value in enumerate(curve):
            answer = oracle.update_trial(trial.trial_id, early_stopping.epoch_report(
                {objective.name: value}, EPOCHS_PLANNED), step=epoch)
            if answer.status == trials.STOPPED:
                break
        oracle.update_trial(trial.trial_id, {objective.name: min(curve[:epoch + 1])}, step=0)
        trial.status = trials.COMPLETED
        oracle.end_trial(trial)
        return epoch + 1

    for seed in range(3):
        assert train(_noisy(0.03 + 0.5 * np.exp(-0.5 * x), seed)) == EPOCHS_PLANNED
    assert train(_noisy(0.6 + 0.3 * np.exp(-0.9 * x), 7)) < EPOCHS_PLANNED


def test_a_rule_written_before_value_range_still_judges(tmp_path):
    class EveryThirdEpoch(early_stopping.StoppingRule):
        def should_stop(self, epochs, values, completed, final_epoch, key):
            return len(values) >= 3

    oracle = _oracle(tmp_path, EveryThirdEpoch())
    stopped, trained = _train(oracle, RISING)
    assert trained == 3 and trials.stopped_at(stopped) == 3


def test_rules_on_a_min_objective_stop_the_curve_that_stays_high(tmp_path):
    oracle = oracles.get("random", kt.Objective("val_loss", "min"), 50, seed=0)
    LookupTuner(oracle, spaces.ChainSpace((4, 4, 1), 2, max_layers=3), lambda values: 0.0,
                signal_name="val_loss", directory=tmp_path, project_name="p")
    early_stopping.attach(oracle, "median")

    def train(curve):
        trial = oracle.create_trial("tuner0")
        for epoch, value in enumerate(curve):
            answer = oracle.update_trial(
                trial.trial_id, early_stopping.epoch_report({"val_loss": value}, 6), step=epoch)
            if answer.status == trials.STOPPED:
                break
        oracle.update_trial(trial.trial_id, {"val_loss": min(curve[:epoch + 1])}, step=0)
        trial.status = trials.COMPLETED
        oracle.end_trial(trial)
        return epoch + 1

    for _ in range(3):
        assert train([2.0, 1.0, 0.6, 0.5, 0.45, 0.4]) == 6
    assert train([2.0, 1.9, 1.8, 1.8, 1.8, 1.8]) == 3
    assert train([1.5, 0.8, 0.5, 0.4, 0.35, 0.3]) == 6


def test_rules_are_deterministic_under_a_seed(tmp_path):
    x = np.arange(1, 6, dtype=float)
    curve = np.asarray(_noisy(0.9 - 0.4 * x ** -0.7, 3))
    probabilities = [
        CurveExtrapolationRule(seed=seed).probability_to_beat(x, curve, 20, 0.86, key=5)
        for seed in (1, 1, 2)]
    assert probabilities[0] == probabilities[1]
    assert 0.0 < probabilities[0] < 1.0 and probabilities[2] != probabilities[0]
    # A whole sequence of decisions, twice from fresh oracles.
    decisions = []
    for run in range(2):
        oracle = _oracle(tmp_path / str(run), CurveExtrapolationRule(min_completed=2, seed=4))
        runs = [_train(oracle, _noisy(RISING, seed))[1] for seed in range(2)]
        runs += [_train(oracle, _noisy(0.92 - 0.5 * np.arange(1, 11) ** -s, 9 + i))[1]
                 for i, s in enumerate((0.3, 0.6, 0.9, 1.2, 1.5))]
        decisions.append(runs)
    assert decisions[0] == decisions[1]


def test_rules_follow_successive_halving_budgets(tmp_path):
    """A promoted trial's rule compares with trials that trained as long;
    a trial stopped early is never promoted, even when its partial score
    ranks at the top of its rung."""
    halving = SuccessiveHalving(min_epochs=3, max_epochs=9, eta=3)
    oracle = _oracle(tmp_path, MedianStoppingRule(min_epochs=2, min_completed=2), name="sha",
                     halving=halving)
    ran = [_train(oracle, curve, planned=3)
           for curve in ([0.5, 0.6, 0.7], [0.5, 0.62, 0.68], [0.1, 0.15, 0.9])]
    assert [trial.hyperparameters.values[RUNG] for trial, _ in ran] == [0, 0, 0]
    assert [trained for _, trained in ran] == [3, 3, 2]  # not stopped at the last epoch
    stopped = ran[2][0]
    assert trials.stopped_at(stopped) == 2
    # With its partial score rigged to the top of rung 0, it is still not promoted.
    score, stopped.score = stopped.score, 0.99
    promotion = halving.promotion(list(oracle.trials.values()),
                                  trials.completed_in_end_order(oracle),
                                  lambda t: t.trial_id, True)
    assert promotion is None or promotion[PARENT] != stopped.trial_id
    stopped.score = score
    # A rung-1 trial (epochs 4-9) is judged against trials that reached its
    # epochs: none yet, so it runs; its report steps are absolute.
    trial = oracle.create_trial("tuner0")
    values = trial.hyperparameters.values
    assert values[RUNG] == 1 and values[INITIAL_EPOCH] == 3 and values[EPOCHS] == 9
    for epoch in range(3, 9):
        answer = oracle.update_trial(
            trial.trial_id, early_stopping.epoch_report({"val_accuracy": 0.1}, 9), step=epoch)
        assert answer.status == trials.RUNNING


@pytest.mark.parametrize("kwargs, match", [
    ({"early_stopping": "mean"}, "`early_stopping`.*'curve', 'median'.*Received: "
                                 "early_stopping='mean'"),
    ({"early_stopping": 3}, "`early_stopping`"),
    ({"early_stopping": "median", "oracle": "kt-random"}, "does not take per-epoch reports"),
])
def test_nastuner_rejects_bad_early_stopping_arguments(kwargs, match, tmp_path):
    space = spaces.MLPSpace((4,), 2, max_layers=1)
    with pytest.raises(ValueError, match=match):
        tfnas.NASTuner(space, directory=tmp_path, project_name="p", **kwargs)


@pytest.mark.parametrize("make, match", [
    (lambda: MedianStoppingRule(min_epochs=0), "`min_epochs`.*Received: min_epochs=0"),
    (lambda: MedianStoppingRule(min_completed=1.5), "`min_completed`"),
    (lambda: CurveExtrapolationRule(min_epochs=2), "`min_epochs`.*>= 3"),
    (lambda: CurveExtrapolationRule(threshold=1.5), "`threshold`.*Received: threshold=1.5"),
    (lambda: CurveExtrapolationRule(seed=-1), "`seed`"),
    (lambda: CurveExtrapolationRule(final_noise="fixed"),
     "`final_noise`.*'learned', 'constant'.*Received: final_noise='fixed'"),
])
def test_rules_reject_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_cli_takes_a_rule_and_rejects_a_bad_one(capsys):
    parser = cli.build_parser()
    assert parser.parse_args(["search", "--early-stopping", "curve"]).early_stopping == "curve"
    assert parser.parse_args(["search"]).early_stopping is None
    with pytest.raises(SystemExit) as exit_:
        parser.parse_args(["search", "--early-stopping", "mean"])
    assert exit_.value.code == 2
    assert "--early-stopping: invalid choice: 'mean'" in capsys.readouterr().err


# Real searches.

@pytest.mark.slow
@pytest.mark.parametrize("rule", [
    MedianStoppingRule(min_epochs=1, min_completed=2),
    CurveExtrapolationRule(min_epochs=3, min_completed=2),
])
def test_a_search_stops_blind_candidates_early_and_shows_it(rule, tmp_path):
    from tests.distributed_scripts import early_stopping_search

    tf.keras.utils.set_random_seed(0)
    epochs = 2 if rule.name == "median" else 4
    tuner = early_stopping_search(tmp_path, rule, epochs=epochs, progress=False)
    by_sight = {"eyes": [], "blind": []}
    for trial in tuner.oracle.trials.values():
        by_sight[trial.hyperparameters.values["sight"]].append(trial)
    expected_stop = rule.min_epochs
    for trial in by_sight["eyes"]:
        assert trial.status == trials.COMPLETED and not trials.is_stopped_early(trial)
        assert trial.metrics.get_last_value("epochs") == epochs
    for trial in by_sight["blind"]:
        assert trial.status == trials.COMPLETED, trial.message
        assert trials.stopped_at(trial) == expected_stop
        assert trial.metrics.get_last_value("epochs") == expected_stop
        assert trial.score is not None and trial.score < 0.3
    best = tuner.oracle.get_best_trials(1)[0]
    assert best.hyperparameters.values["sight"] == "eyes"
    # Shown by results_summary, the report (from the project directory) and
    # TensorBoard.
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        tuner.results_summary()
    assert output.getvalue().count(f"(stopped early at epoch {expected_stop})") == 2
    markdown = report.render(report.trial_records(tuner.project_dir), "val_accuracy", "max")
    assert "4 completed (2 stopped early: partial scores)" in markdown
    on_disk = {t.trial_id: t for t in project.load_trials(tuner.project_dir)}
    assert {i for i, t in on_disk.items() if trials.is_stopped_early(t)} == {
        t.trial_id for t in by_sight["blind"]}
    for trial in by_sight["blind"]:
        tags = set()
        for path in glob.glob(os.path.join(tuner.log_dir, trial.trial_id, "events.*")):
            for event in tf.compat.v1.train.summary_iterator(path):
                tags.update(value.tag for value in event.summary.value)
        assert trials.STOPPED_AT in tags


@pytest.mark.slow
def test_a_worker_s_trial_is_stopped_by_the_chief_s_rule(tmp_path):
    """The worker reports each epoch over the chief's gRPC channel; the
    chief's median rule stops the blind trials after one epoch."""
    from tests.test_distributed import _start_chief_and_workers

    chief_output, worker_output = _start_chief_and_workers(
        tmp_path, "early_stopping", [{"KERASTUNER_TUNER_ID": "w0"}])
    loaded = project.load_trials(os.path.join(tmp_path, "early_stopping"))
    assert len(loaded) == 4, chief_output + worker_output
    for trial in loaded:
        assert trial.status == trials.COMPLETED, chief_output + worker_output
        blind = trial.hyperparameters.values["sight"] == "blind"
        assert trials.is_stopped_early(trial) is blind
        assert trial.metrics.get_last_value("epochs") == (1 if blind else 3)
        epochs, _ = early_stopping.learning_curve(trial, "val_accuracy")
        assert list(epochs) == ([1] if blind else [1, 2, 3])  # the reports arrived
    assert chief_output.count("(stopped early at epoch 1)") == 2, chief_output
    assert "gave trial" not in worker_output  # stopped by the rule, not a lost lease
