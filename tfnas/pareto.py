"""Pareto dominance over several objectives, and Pareto fronts of trials."""

import keras_tuner as kt
import numpy as np

from tfnas import trials as trials_module

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


def _costs(points, directions):
    values = np.asarray(points, dtype=float).reshape(-1, len(directions))
    signs = np.array([1.0 if d == "min" else -1.0 for d in directions])
    return values * signs


def ranks(points, directions):
    """Non-dominated sorting (NSGA-II): the front index of every point.

    Rank 0 is the non-dominated front; rank 1 the front once rank 0 is
    removed; and so on.
    """
    ranks_, remaining, rank = [None] * len(points), list(range(len(points))), 0
    while remaining:
        front = non_dominated([points[i] for i in remaining], directions)
        for position in front:
            ranks_[remaining[position]] = rank
        chosen = {remaining[position] for position in front}
        remaining = [i for i in remaining if i not in chosen]
        rank += 1
    return ranks_


def crowding_distances(points, directions):
    """NSGA-II crowding distance of each point within its set (larger = more
    isolated; the extremes of each objective get infinity)."""
    costs = _costs(points, directions)
    count = len(costs)
    distances = np.zeros(count)
    if count <= 2:
        return [float("inf")] * count
    for column in costs.T:
        order = np.argsort(column, kind="stable")
        span = column[order[-1]] - column[order[0]]
        distances[order[0]] = distances[order[-1]] = np.inf
        if span > 0:
            distances[order[1:-1]] += (column[order[2:]] - column[order[:-2]]) / span
    return distances.tolist()


def hypervolume_2d(points, directions, reference):
    """The area dominated by `points` and bounded by `reference` (2 objectives).

    Args:
        points: (a, b) pairs.
        directions: Two of "min"/"max".
        reference: The (a, b) point worse than every point of interest in both
            objectives; points not better than it count for nothing.
    """
    if len(directions) != 2:
        raise ValueError(f"Expected two objectives. Received: directions={directions}")
    costs = _costs(points, directions)
    ref = _costs([reference], directions)[0]
    costs = costs[np.all(costs < ref, axis=1)]
    if not len(costs):
        return 0.0
    front = costs[non_dominated(costs.tolist(), ["min", "min"])]
    front = front[np.argsort(front[:, 0])]
    area, previous_b = 0.0, ref[1]
    for a, b in front:
        if b < previous_b:
            area += (ref[0] - a) * (previous_b - b)
            previous_b = b
    return float(area)


def as_objectives(objectives):
    """`keras_tuner.Objective`s from Objectives or `(name, direction)` pairs.

    Raises:
        ValueError: unless there are at least two, with distinct names.
    """
    result = []
    for objective in objectives or ():
        if isinstance(objective, (tuple, list)) and len(objective) == 2:
            objective = kt.Objective(*objective)
        if not isinstance(objective, kt.Objective) or objective.direction not in DIRECTIONS:
            raise ValueError(
                "Expected each objective to be a keras_tuner.Objective or a (name, "
                f"'min'|'max') pair. Received: {objective!r}")
        result.append(objective)
    names = [o.name for o in result]
    if len(result) < 2 or len(set(names)) != len(names):
        raise ValueError(
            "Expected at least two objectives with distinct names for a Pareto "
            f"front. Received: {names}")
    return result


def trial_points(trials, objectives):
    """The trials that report every objective's metric, and their points."""
    kept, points = [], []
    for trial in trials:
        if all(trial.metrics.exists(o.name) for o in objectives):
            kept.append(trial)
            points.append([trial.metrics.get_last_value(o.name) for o in objectives])
    return kept, points


def pareto_front(trials, objectives):
    """The completed trials that no other completed trial dominates.

    Args:
        trials: KerasTuner trials.
        objectives: `keras_tuner.Objective`s or `(name, direction)` pairs.
    """
    objectives = as_objectives(objectives)
    completed = [t for t in trials if t.status == trials_module.COMPLETED]
    kept, points = trial_points(completed, objectives)
    if not kept:
        return []
    return [kept[i] for i in non_dominated(points, [o.direction for o in objectives])]
