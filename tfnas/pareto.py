"""Pareto dominance over several objectives."""

import numpy as np

DIRECTIONS = ("min", "max")


def non_dominated(points, directions):
    """Indices of the points that no other point dominates, in input order.

    A point dominates another when it is at least as good in every objective
    and strictly better in one. Duplicated points do not dominate each other,
    so all copies of a front point are on the front.

    Args:
        points: A sequence of N points, each a sequence of M objective values.
        directions: M strings, "min" or "max", one per objective.

    Returns:
        A list of indices into `points`.
    """
    directions = list(directions)
    invalid = [d for d in directions if d not in DIRECTIONS]
    if invalid:
        raise ValueError(
            f"Expected each of `directions` to be one of {DIRECTIONS}. "
            f"Received: directions={directions}"
        )
    values = np.asarray(points, dtype=float).reshape(-1, len(directions))
    if not np.all(np.isfinite(values)):
        raise ValueError("Expected finite objective values in `points`.")
    # Turn every objective into one to minimize.
    signs = np.array([1.0 if d == "min" else -1.0 for d in directions])
    costs = values * signs
    front = []
    for index, cost in enumerate(costs):
        no_worse = np.all(costs <= cost, axis=1)
        better = np.any(costs < cost, axis=1)
        if not np.any(no_worse & better):
            front.append(index)
    return front
