"""The eleven learning-curve families of Domhan et al. (2015, Table 1).

Each family is a parametric curve y = f(x) of the epoch x >= 1 that can
describe a rising learning curve: vapor pressure, pow3, log-log linear,
Hill3 (Hill's curve without background), log power, pow4, MMF, exp4,
Janoschek, Weibull and ilog2 (the list of Domhan et al.'s termination
criterion). `families(values)` gives each with starting parameters read from
the curve and bounds that keep it defined (the increasing ones are chosen by
the caller: Domhan et al.'s prior is a monotonicity constraint, not
bounds). `SEPARABLE` names the families that are linear in some of their
parameters, and the columns those parameters multiply.
"""

import numpy as np

INF = np.inf


def vapor_pressure(x, a, b, c):
    return np.exp(a + b / x + c * np.log(x))


def pow3(x, c, a, alpha):
    return c - a * x ** (-alpha)


def loglog_linear(x, a, b):
    return np.log(a * np.log(x) + b)


def hill3(x, theta, eta, kappa):
    return theta * x ** eta / (kappa ** eta + x ** eta)


def log_power(x, a, b, c):
    return a / (1.0 + (x / np.exp(b)) ** c)


def pow4(x, c, a, b, alpha):
    return c - (a * x + b) ** (-alpha)


def mmf(x, alpha, beta, kappa, delta):
    return alpha - (alpha - beta) / (1.0 + (kappa * x) ** delta)


def exp4(x, c, a, b, alpha):
    return c - np.exp(-a * x ** alpha + b)


def janoschek(x, alpha, beta, kappa, delta):
    return alpha - (alpha - beta) * np.exp(-kappa * x ** delta)


def weibull(x, alpha, beta, kappa, delta):
    return alpha - (alpha - beta) * np.exp(-(kappa * x) ** delta)


def ilog2(x, c, a):
    return c - a / np.log(x + 1.0)


def families(values):
    """name -> (function, starting parameters, lower bounds, upper bounds)
    for a curve `values` at epochs 1..n (n = len(values))."""
    n = len(values)
    last, first = float(values[-1]), float(values[0])
    rise = max(last - first, 1e-3)
    top = last + rise / 2  # an asymptote a little above the last value
    log_n = np.log(max(n, 2))
    positive = first > 0 and last > 0
    return {
        "vapor_pressure": (
            vapor_pressure,
            [np.log(last), np.log(first / last), 0.0] if positive else [0.0, -0.5, 0.0],
            [-INF, -INF, -INF], [INF, INF, INF]),
        "pow3": (pow3, [top, rise, 0.5], [-INF, 0, 0], [INF, INF, 5]),
        "loglog_linear": (
            loglog_linear,
            [max((np.exp(last) - np.exp(first)) / log_n, 1e-3), np.exp(first)],
            [0, 0], [INF, INF]),
        "hill3": (hill3, [top, 1.0, max(top / first - 1.0, 1e-3) if first > 0 else 1.0],
                  [0, 0, 0], [INF, 10, INF]),
        "log_power": (
            log_power,
            [top, np.log(top / first - 1.0) if first > 0 and top > first else 1.0, -1.0],
            [-INF, -INF, -INF], [INF, INF, 0]),
        "pow4": (pow4, [top, 1.0 / (1.5 * rise), 0.0, 1.0], [-INF, 0, 0, 0],
                 [INF, INF, INF, 5]),
        "mmf": (mmf, [top, first - rise, 0.5, 1.0], [-INF, -INF, 0, 0], [INF, INF, 10, 5]),
        "exp4": (exp4, [top, 0.5, 0.5 + np.log(1.5 * rise), 1.0], [-INF, 0, -INF, 0],
                 [INF, INF, INF, 5]),
        "janoschek": (janoschek, [top, first - rise, 0.5, 1.0],
                      [-INF, -INF, 0, 0], [INF, INF, 10, 5]),
        "weibull": (weibull, [top, first - rise, 0.5, 1.0],
                    [-INF, -INF, 0, 0], [INF, INF, 10, 5]),
        "ilog2": (ilog2, [last + rise, rise], [-INF, 0], [INF, INF]),
    }


def pow3_columns(x, alpha):
    """pow3 = c * 1 + a * (-x^-alpha)."""
    return np.ones_like(x), -x ** (-alpha)


def hill3_columns(x, eta, kappa):
    """hill3 = theta * x^eta / (kappa^eta + x^eta)."""
    power = x ** eta
    return (power / (kappa ** eta + power),)


def log_power_columns(x, b, c):
    """log_power = a * 1 / (1 + (x / e^b)^c)."""
    return (1.0 / (1.0 + (x / np.exp(b)) ** c),)


def ilog2_columns(x):
    """ilog2 = c * 1 + a * (-1 / log(x + 1))."""
    return np.ones_like(x), -1.0 / np.log(x + 1.0)


#: The families that are linear in some of their parameters: name ->
#: (positions of the linear parameters, a function of x and the other
#: parameters, in order, giving the columns the linear ones multiply). At
#: most one linear parameter of each is bounded (see `families`).
SEPARABLE = {
    "pow3": ((0, 1), pow3_columns),
    "hill3": ((0,), hill3_columns),
    "log_power": ((0,), log_power_columns),
    "ilog2": ((0, 1), ilog2_columns),
}


def separable_basis(name, x, nonlinear):
    """The matrix whose columns family `name`'s linear parameters multiply.

    Args:
        name: A family of `SEPARABLE`.
        x: The epochs, shape (n,).
        nonlinear: The family's other parameters, in their order.

    Returns:
        An (n, number of linear parameters) array: the family's values at
        `x` are this matrix times its linear parameters.
    """
    _, columns = SEPARABLE[name]
    return np.column_stack(np.broadcast_arrays(*columns(np.asarray(x, dtype=float), *nonlinear)))
