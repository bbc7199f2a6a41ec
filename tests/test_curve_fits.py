"""The curve rule's least-squares fits (tfnas.curve_fits)."""

import numpy as np
import pytest
from scipy.optimize import lsq_linear

from tfnas import curve_families, curve_fits
from tfnas.early_stopping import CurveExtrapolationRule

X = np.arange(1, 21, dtype=float)


@pytest.mark.parametrize("name", sorted(curve_families.SEPARABLE))
def test_a_separable_family_is_its_columns_times_its_linear_parameters(name):
    rng = np.random.default_rng(0)
    function, start, low, high = curve_families.families(np.linspace(0.2, 0.8, 6))[name]
    linear = list(curve_families.SEPARABLE[name][0])
    nonlinear = [i for i in range(len(start)) if i not in linear]
    for _ in range(5):
        params = np.asarray(start, dtype=float) + rng.uniform(-0.3, 0.3, len(start))
        params = np.clip(params, low, high)
        basis = curve_families.separable_basis(name, X, params[nonlinear])
        np.testing.assert_allclose(basis @ params[linear], function(X, *params),
                                   rtol=1e-12, atol=1e-12)
    # The active set of bounded_linear_least_squares is exact for one bound.
    bounded = [i for i in linear if np.isfinite(low[i]) or np.isfinite(high[i])]
    assert len(bounded) <= 1


def test_bounded_linear_least_squares_is_exact_with_one_bounded_coefficient():
    rng = np.random.default_rng(1)
    low, high = np.array([-np.inf, 0.0]), np.array([np.inf, np.inf])
    active = 0
    for _ in range(50):
        basis = rng.normal(size=(8, 2))
        values = rng.normal(size=8)
        ours = curve_fits.bounded_linear_least_squares(basis, values, low, high)
        scipy_s = lsq_linear(basis, values, bounds=(low, high), method="bvls").x
        np.testing.assert_allclose(ours, scipy_s, atol=1e-10)
        active += ours[1] == 0.0
    assert 10 < active < 40  # both cases were met


def _profiled_residual(name, values, theta):
    """The residual of the best linear parameters (within their bounds) for
    nonlinear parameters `theta`: the quantity variable projection minimizes."""
    _, _, low, high = curve_families.families(values)[name]
    linear = curve_families.SEPARABLE[name][0]
    basis = curve_families.separable_basis(name, X[:len(values)], theta)
    coefficients = curve_fits.bounded_linear_least_squares(
        basis, values, np.asarray(low)[list(linear)], np.asarray(high)[list(linear)])
    return float(np.sum((basis @ coefficients - values) ** 2))


def test_variable_projection_finds_the_bounded_optimum():
    """A curve that jumps at epoch 3 (recorded on digits): Levenberg-Marquardt
    leaves Hill3's range (an exponent above its bound of 10); the bounded
    fit puts the exponent on its bound, and no point of a fine grid of the
    nonlinear parameters does better. The trust region over all three
    parameters reaches the same fit."""
    values = np.array([0.103, 0.175, 0.656, 0.611])
    epochs = X[:4]
    function, start, low, high = curve_families.families(values)["hill3"]
    low, high = np.asarray(low, dtype=float), np.asarray(high, dtype=float)
    assert curve_fits._levenberg_marquardt(function, epochs, values, start, low, high) is None
    params, covariance = curve_fits._variable_projection("hill3", function, epochs, values, start,
                                                         low, high)
    residual = float(np.sum((function(epochs, *params) - values) ** 2))
    assert params[1] == pytest.approx(10.0)
    grid = min(_profiled_residual("hill3", values, (eta, kappa))
               for eta in np.linspace(0.1, 10, 60) for kappa in np.geomspace(0.1, 100, 120))
    assert residual <= grid + 1e-12
    assert np.all(np.linalg.eigvalsh(covariance) > 0)
    trust_region = curve_fits._trust_region(function, epochs, values, start, low, high)
    np.testing.assert_allclose(params, trust_region[0], rtol=1e-3)


def test_a_fit_whose_asymptote_runs_off_to_infinity_is_left_out():
    """A curve rising at a steady pace, recorded on digits: pow3's,
    Hill3's and log power's bounded fits end where their asymptote runs off
    to infinity (pow3's c and a growing together as its exponent goes to 0).
    Their parameters are not determined there (on this machine the trust
    region over all the parameters ran out of evaluations on two of them
    and returned pow3 with a variance of 1e13 on c); they are left out."""
    values = np.array([0.103, 0.222, 0.283, 0.458])
    names = {fit.function.__name__ for fit in curve_fits.fit_families(X[:4], values, 20)}
    assert names.isdisjoint({"pow3", "hill3", "log_power"}) and "vapor_pressure" in names
    for name in ("pow3", "hill3", "log_power"):
        function, start, low, high = curve_families.families(values)[name]
        low, high = np.asarray(low, dtype=float), np.asarray(high, dtype=float)
        assert curve_fits._variable_projection(name, function, X[:4], values, start, low,
                                               high) is None, name


@pytest.mark.parametrize("curve", [[0.1] * 4, [0.1] * 6, [0.12, 0.11, 0.1, 0.11, 0.1],
                                   [0.3, 0.28, 0.27, 0.26, 0.25]])
def test_flat_and_falling_curves_below_the_best_are_stopped(curve):
    curve = np.asarray(curve)
    completed = [(X, 0.9 - 0.4 * X ** -0.7 + np.random.default_rng(seed).normal(0, 0.01, 20))
                 for seed in range(3)]
    rule = CurveExtrapolationRule()
    assert rule.should_stop(X[:len(curve)], curve, completed, 20, key=0, value_range=(0.0, 1.0))
    assert curve_fits.fit_families(X[:len(curve)], curve, 20)  # some family fits


def test_without_variable_projection_the_refit_is_the_trust_region_s():
    """`variable_projection=False` refits over all the parameters at once,
    as stop 27's rule did (commit c6f8d3d; on 480 decisions of the recorded
    MNIST-1D curves the two gave identical probabilities), and the default
    by variable projection."""
    values = np.array([0.103, 0.175, 0.656, 0.611])  # Hill3 leaves its range
    function, start, low, high = curve_families.families(values)["hill3"]
    low, high = np.asarray(low, dtype=float), np.asarray(high, dtype=float)
    expected = {
        False: curve_fits._trust_region(function, X[:4], values, start, low, high),
        True: curve_fits._variable_projection("hill3", function, X[:4], values, start,
                                              low, high)}
    for projected, (params, covariance) in expected.items():
        fit = {fit.function.__name__: fit for fit in curve_fits.fit_families(
            X[:4], values, 20, variable_projection=projected)}["hill3"]
        np.testing.assert_array_equal(fit.params, params)
        np.testing.assert_array_equal(fit.covariance, covariance)
    with pytest.raises(ValueError, match="`variable_projection`.*Received: "
                                         "variable_projection='yes'"):
        CurveExtrapolationRule(variable_projection="yes")
    assert CurveExtrapolationRule(variable_projection=False).get_config()[
        "variable_projection"] is False


def test_the_covariance_is_curve_fit_s_at_an_interior_fit():
    x = X[:8]
    values = 0.9 - 0.5 * x ** -0.8 + np.random.default_rng(3).normal(0, 0.01, 8)
    function = curve_families.pow3
    params, expected = curve_fits._levenberg_marquardt(
        function, x, values, [0.9, 0.5, 0.5], np.array([-np.inf, 0, 0]), np.array([np.inf] * 3))
    ours = curve_fits._covariance(function, x, params, np.ones(3))
    np.testing.assert_allclose(ours, expected, rtol=1e-3)


def test_leverages_sum_to_the_number_of_parameters():
    """The leverages are the hat matrix's diagonal: each in [0, 1], summing
    to its trace, the number of parameters; the ends of a curve pull the
    fit harder than its middle."""
    values = 0.9 - 0.5 * X ** -0.8 + np.random.default_rng(3).normal(0, 0.01, len(X))
    fit = {f.function: f for f in curve_fits.fit_families(X, values, 20)}[curve_families.pow3]
    leverages = curve_fits.leverages(fit, X)
    assert np.all((leverages > 0) & (leverages < 1))
    assert leverages.sum() == pytest.approx(3, rel=1e-3)
    assert leverages[0] > leverages[10] and leverages[-1] > leverages[10]


def test_residuals_over_one_minus_their_leverage_estimate_the_noise():
    """The correction `_noise_of` makes: over 300 noisy pow3 curves (noise
    variance 1e-4), the last quarter's squared residuals summed over their
    points' one-minus-leverage give the noise's variance (0.989e-4); their
    plain mean understates it (0.879e-4: the fit bends to a curve's end)."""
    rng = np.random.default_rng(0)
    truth = curve_families.pow3(X, 0.9, 0.5, 0.8)
    late = X > 15
    squares, freedom, count = 0.0, 0.0, 0
    for _ in range(300):
        values = truth + rng.normal(0, 0.01, len(X))
        params, covariance = curve_fits._levenberg_marquardt(
            curve_families.pow3, X, values, [0.9, 0.5, 0.5], np.array([-np.inf, 0, 0]),
            np.array([np.inf] * 3))
        fit = curve_fits.Fit(0.0, curve_families.pow3, params, covariance, 0.0, 17, None, None)
        residuals = values - curve_families.pow3(X, *params)
        squares += np.sum(residuals[late] ** 2)
        freedom += np.sum(1 - curve_fits.leverages(fit, X)[late])
        count += late.sum()
    assert squares / freedom == pytest.approx(1e-4, rel=0.06)
    assert squares / count < 0.93e-4


@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e3])
def test_variable_projection_does_not_depend_on_the_metric_s_units(scale):
    """The same curves in other units (an accuracy in per mille, a loss in
    thousands) get refits of the same families, with the same fitted values,
    scaled. (Not the same parameters: along a ridge, where a search stops
    moves with rounding.)"""
    for values in (np.array([0.103, 0.175, 0.656, 0.611]),
                   np.array([0.103, 0.222, 0.283, 0.458, 0.369]),
                   np.array([0.3, 0.28, 0.27, 0.26, 0.25])):
        x = X[:len(values)]
        families = curve_families.families(values)
        for name in sorted(curve_families.SEPARABLE):
            function, start, low, high = families[name]
            if len(start) >= len(values):
                continue
            low, high = np.asarray(low, dtype=float), np.asarray(high, dtype=float)
            reference = curve_fits._variable_projection(name, function, x, values, start, low,
                                                        high)
            scaled_start = curve_families.families(scale * values)[name][1]
            scaled = curve_fits._variable_projection(name, function, x, scale * values,
                                                     scaled_start, low, high)
            assert (reference is None) == (scaled is None), (name, values)
            if reference is not None:
                np.testing.assert_allclose(function(x, *scaled[0]) / scale,
                                           function(x, *reference[0]), rtol=1e-5, atol=1e-9)
