"""Least-squares fits of the learning-curve families, for the curve rule.

`fit_families(epochs, values, final_epoch)` fits each family of
`tfnas.curve_families` that has fewer parameters than the curve has points,
and keeps those whose fit rises (or stays level) from epoch 2 to
`final_epoch` (Domhan et al.'s monotonicity prior, `rising`).

A family is fitted by Levenberg-Marquardt first (MINPACK, through
`scipy.optimize.curve_fit`): about a millisecond or less. When that fit
fails or leaves the family's range (a flat or falling curve, or one still
speeding up, which no member of the family matches), a family of 2-3
parameters is refitted inside its bounds. Its best fit then often lies
where another parameter stops mattering (pow3 without a rise leaves its
exponent free; as its exponent goes to 0, its asymptote and rise grow
together toward infinity). A bounded trust-region fit of all the
parameters at once crawls along that ridge until its evaluation budget
runs out, mostly with no fit at the end, and those refits were most of a
decision's time (`benchmarks/results/curve_calibration_fits.md`: 43-71 ms
of CPU per decision, against 10-20 ms with what follows).

So the families that are linear in some of their parameters
(`curve_families.SEPARABLE`: pow3, Hill3, log power, ilog2) are refitted
by variable projection (Golub and Pereyra, 1973): for given nonlinear
parameters, the linear ones have a closed-form least-squares solution
inside their bounds, and the trust region searches the 0-2 nonlinear ones
alone, where such a ridge is flat and ends the search. A refit that ends
on such a ridge is left out, as the trust region's budget left most of
them out: there the curve does not determine its parameters (see
`_covariance`). The other families (vapor pressure, log-log linear) keep
the trust-region refit, and no Levenberg-Marquardt fit is judged that way.
"""

import collections
import math
import warnings

import numpy as np

from tfnas import curve_families

#: Families with more parameters than this get no bounded refit (too slow
#: per epoch for a trust region over all of them).
MAX_BOUNDED_PARAMETERS = 3

#: The evaluation budget of a variable projection's search, per nonlinear
#: parameter plus one (residual evaluations; scipy does not count those of
#: its finite-difference Jacobian). On the recorded curves of
#: `benchmarks/early_stopping.py`, the searches that ended with a fit took
#: at most 11 evaluations for pow3, 25 for log power and 61 for Hill3; one
#: that crawls toward an asymptote at infinity takes hundreds, and would be
#: left out anyway.
PROJECTED_EVALUATIONS = 30


class Fit(collections.namedtuple(
        "Fit", "bic function params covariance residual dof low high")):
    """One family's least-squares fit: its BIC, its parameters' covariance
    per unit noise variance ((J^T J)^-1), the residual sum of squares, its
    degrees of freedom (`dof`, points minus parameters) and the family's
    bounds."""


def fit_families(epochs, values, final_epoch, variable_projection=True):
    """The least-squares fits of the families that rise to `final_epoch`.

    Args:
        epochs, values: The curve (1-based epochs).
        final_epoch: The epoch the fits must rise (or stay level) up to.
        variable_projection: Refit the separable families by variable
            projection (the default); False refits them like the others, by
            a trust region over all their parameters (stop 27's refits:
            slower; kept for comparison).

    Returns:
        A list of `Fit`s, in the families' name order.
    """
    epochs, values = np.asarray(epochs, dtype=float), np.asarray(values, dtype=float)
    n = len(values)
    fits = []
    for name, (function, start, low, high) in sorted(curve_families.families(values).items()):
        k = len(start)
        if n <= k:
            continue
        low, high = np.asarray(low, dtype=float), np.asarray(high, dtype=float)
        fitted = _levenberg_marquardt(function, epochs, values, start, low, high)
        if fitted is None and k <= MAX_BOUNDED_PARAMETERS:
            if variable_projection and name in curve_families.SEPARABLE:
                fitted = _variable_projection(name, function, epochs, values, start, low,
                                              high)
            else:
                fitted = _trust_region(function, epochs, values, start, low, high)
        if fitted is None:
            continue
        params, covariance = fitted
        with np.errstate(all="ignore"):
            residual = float(np.sum((function(epochs, *params) - values) ** 2))
        if not (np.all(np.isfinite(covariance)) and math.isfinite(residual)
                and np.all(rising(function, params[None, :], final_epoch))):
            continue
        bic = n * math.log(max(residual / n, 1e-12)) + k * math.log(n)
        fits.append(Fit(bic, function, params, covariance, residual, n - k, low, high))
    return fits


def rising(function, params, final_epoch, points=50):
    """Which parameter sets make a rising curve (Domhan et al.'s
    monotonicity prior).

    Args:
        function: A family's function.
        params: An (m, number of parameters) array of parameter sets.
        final_epoch: The last epoch checked.
        points: Epochs checked, evenly spaced from epoch 2 to `final_epoch`.

    Returns:
        A boolean array of m: the curve is finite and does not fall there.
    """
    x = np.linspace(min(2.0, float(final_epoch)), float(final_epoch), points)
    with np.errstate(all="ignore"):
        y = function(x[None, :], *(params[:, [i]] for i in range(params.shape[1])))
        y = np.broadcast_to(y, (len(params), points))
        return np.all(np.isfinite(y), axis=1) & np.all(np.diff(y, axis=1) >= -1e-9, axis=1)


def _inside(params, low, high):
    return np.all(params >= low) and np.all(params <= high)


def _strictly_inside(start, low, high):
    """`start` moved inside the bounds, where a bounded search starts."""
    return np.clip(np.asarray(start, dtype=float), low + 1e-9, high - 1e-9)


def _curve_fit(function, epochs, values, start, **options):
    """`(params, covariance)` of `scipy.optimize.curve_fit`, or None when it
    finds none."""
    from scipy.optimize import OptimizeWarning, curve_fit

    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", OptimizeWarning)
            return curve_fit(function, epochs, values, p0=start, maxfev=100 * (len(start) + 1),
                             absolute_sigma=True, **options)
    except (RuntimeError, ValueError):
        return None


def _levenberg_marquardt(function, epochs, values, start, low, high):
    """The unbounded fit, or None when it fails or leaves the bounds."""
    fitted = _curve_fit(function, epochs, values, start, method="lm")
    return fitted if fitted is not None and _inside(fitted[0], low, high) else None


def _trust_region(function, epochs, values, start, low, high):
    """The bounded fit over all the parameters, or None."""
    fitted = _curve_fit(function, epochs, values, _strictly_inside(start, low, high),
                        bounds=(low, high))
    return fitted if fitted is not None and _inside(fitted[0], low, high) else None


def _variable_projection(name, function, epochs, values, start, low, high):
    """The bounded fit of separable family `name` (its `function`), or
    None: the trust region over its nonlinear parameters, the linear ones
    solved for at each step.

    The search runs on the curve divided by its largest magnitude, so its
    tolerances and the test of `_covariance` do not depend on the metric's
    units; the linear parameters are then solved on the curve itself.
    """
    from scipy.optimize import least_squares

    linear = list(curve_families.SEPARABLE[name][0])
    nonlinear = [i for i in range(len(start)) if i not in linear]
    scale = float(np.max(np.abs(values))) or 1.0

    def solve(theta, target):
        """All the parameters for nonlinear ones `theta`, or None."""
        with np.errstate(all="ignore"):
            basis = curve_families.separable_basis(name, epochs, theta)
        if not np.all(np.isfinite(basis)):
            return None
        params = np.empty(len(start))
        params[nonlinear] = theta
        params[linear] = bounded_linear_least_squares(basis, target, low[linear], high[linear])
        return params

    def residuals(theta):
        params = solve(theta, values / scale)
        if params is None:
            return np.full(len(values), np.nan)  # a step there is refused
        with np.errstate(all="ignore"):
            return function(epochs, *params) - values / scale

    theta = np.zeros(0)
    if nonlinear:
        try:
            with np.errstate(all="ignore"):
                result = least_squares(
                    residuals, _strictly_inside(start, low, high)[nonlinear],
                    bounds=(low[nonlinear], high[nonlinear]),
                    max_nfev=PROJECTED_EVALUATIONS * (len(nonlinear) + 1))
        except (ValueError, np.linalg.LinAlgError):  # not finite at the start
            return None
        if not result.success:
            return None
        theta = result.x
    params = solve(theta, values)
    if params is None or not _inside(params, low, high):
        return None
    column_scale = np.ones(len(params))
    column_scale[nonlinear] = 1.0 / scale
    covariance = _covariance(function, epochs, params, column_scale)
    return None if covariance is None else (params, covariance)


def bounded_linear_least_squares(basis, values, low, high):
    """argmin ||basis @ c - values|| subject to low <= c <= high.

    An active set: the unbounded solution, then each coefficient outside
    its bounds fixed at the bound it crossed and the others solved again.
    Exact when at most one coefficient has a bound, as in
    `curve_families.SEPARABLE` (the objective is convex, so a single
    violated bound is active at the optimum); with more, not always
    (`scipy.optimize.lsq_linear` is exact, and too slow to call at every
    step of a search).

    Args:
        basis: An (n, m) array.
        values: An (n,) array.
        low, high: (m,) arrays of bounds (infinite for none).

    Returns:
        The (m,) coefficients.
    """
    coefficients = np.zeros(basis.shape[1])
    free = np.ones(basis.shape[1], dtype=bool)
    while free.any():
        target = values - basis[:, ~free] @ coefficients[~free]
        coefficients[free] = np.linalg.lstsq(basis[:, free], target, rcond=None)[0]
        outside = free & ((coefficients < low) | (coefficients > high))
        if not outside.any():
            break
        coefficients[outside] = np.clip(coefficients[outside], low[outside], high[outside])
        free &= ~outside
    return coefficients


def _covariance(function, epochs, params, column_scale):
    """(J^T J)^-1 at `params`, or None when the curve does not determine
    the parameters there.

    J is computed by forward differences, so each column is accurate to
    about sqrt(machine epsilon) relative to its size; when J's condition
    number exceeds 1/sqrt(machine epsilon), its smallest singular value is
    rounding noise and so is the variance it gives. The condition number is
    taken with J's columns times `column_scale` (J of the curve divided by
    its largest magnitude), so that it does not depend on the metric's
    units. Along a ridge the cut falls where the search stopped: on the
    curve 0.103, 0.222, 0.283, 0.458, 0.369, pow3 with its exponent at 0.01
    is kept (condition number 5e6) and at 0.003 left out (2e8), with
    residuals 1e-6 apart.
    """
    jacobian = _jacobian(function, epochs, params)
    if not np.all(np.isfinite(jacobian)):
        return None
    scaled = np.linalg.svd(jacobian * column_scale, compute_uv=False)
    if not scaled[-1] > scaled[0] * np.sqrt(np.finfo(float).eps):
        return None
    _, singular, vt = np.linalg.svd(jacobian, full_matrices=False)
    return (vt.T / singular ** 2) @ vt


def _jacobian(function, epochs, params):
    """The curve's Jacobian in its parameters at `params`, by forward
    differences."""
    steps = np.sqrt(np.finfo(float).eps) * np.maximum(1.0, np.abs(params))
    with np.errstate(all="ignore"):
        base = function(epochs, *params)
        return np.column_stack([
            (function(epochs, *(params + step * np.eye(len(params))[i])) - base) / step
            for i, step in enumerate(steps)])


def leverages(fit, epochs):
    """Each point's leverage in a fit: how much its own value pulls the fit.

    A residual's variance is the noise's times one minus its point's
    leverage, so the residuals where the fit bends to the points (a curve's
    ends) understate the noise there.

    Args:
        fit: A `Fit` (its function, parameters and (J^T J)^-1).
        epochs: The epochs the fit was made on.

    Returns:
        The diagonal of J (J^T J)^-1 J^T at the fit's parameters, one value
        per epoch, each in [0, 1], summing to the number of parameters.
    """
    jacobian = _jacobian(fit.function, np.asarray(epochs, dtype=float), fit.params)
    return np.einsum("ij,jk,ik->i", jacobian, fit.covariance, jacobian)
