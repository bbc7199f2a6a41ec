"""Progressive NAS (PNAS, Liu et al., 2018) and its device-aware Pareto form
(DPP-Net, Dong et al., 2018).

PNAS searches from simple to complex: it trains architectures at the
smallest depth, fits a surrogate that predicts accuracy from an
architecture's decisions, expands the best K by one more block, lets the
surrogate pick which K expansions to train, and repeats up to the largest
depth. DPP-Net keeps, at each step, the Pareto front of (accuracy, device
cost) instead of the top K by accuracy.

Here a "block" is one more repetition of a depth-like decision of the space:
a `tfnas.decisions.repeat` whose repetitions declare decisions of their own
(the chain and MLP spaces' `num_layers`), recognized as an integer choice
that other decisions are conditioned on. Spaces do not know about this
strategy.
"""

import math
import re
import warnings

import keras_tuner as kt
import numpy as np

from tfnas import moves, pareto, strategies, surrogate, trials
from tfnas.architecture import Architecture
from tfnas.oracles.base import RUNNING, NASOracle
from tfnas.oracles.predictor import encode
from tfnas.validation import check_int, is_integer

#: Level-0 architectures drawn when there are too many to enumerate.
_LEVEL_ZERO_SAMPLES = 256


def depth_decisions(space):
    """`{name: sorted values}` of the depth-like decisions of `space`.

    A depth-like decision is an integer `Choice` that other decisions are
    conditioned on: the depth of a `tfnas.decisions.repeat`.
    """
    parents = {condition.name for hp in space for condition in hp.conditions}
    return {hp.name: sorted(hp.values) for hp in space
            if isinstance(hp, kt.engine.hyperparameters.Choice) and hp.name in parents
            and len(hp.values) > 1 and all(is_integer(value) for value in hp.values)}


def _template(name):
    """A decision's name with its indices replaced: "layer_2/skip/0" ->
    "layer_#/skip/#", the same decision in every repetition."""
    return re.sub(r"\d+", "#", name)


def block_slots(hyperparameters):
    """`{(template, repr(value)): index}` of `block_encoding`'s per-template part."""
    slots = {}
    for hp in hyperparameters.space:
        for value in moves.candidate_values(hp) or ():
            slots.setdefault((_template(hp.name), repr(value)), len(slots))
    return slots


def block_encoding(hyperparameters, values):
    """Features that generalize to a block the surrogate has not seen.

    The one-hot encoding of every decision by name (the predictor's), plus,
    per decision template (the name with its indices replaced, e.g.
    `layer_#/op`), the mean one-hot of its values over the repetitions where
    it is active: PNAS's averaged block embeddings, which let a surrogate
    trained on one-block architectures score the block a step adds.
    """
    slots = block_slots(hyperparameters)
    bag, counts = np.zeros(len(slots), dtype="float32"), {}
    for name, value in values.items():
        slot = slots.get((_template(name), repr(value)))
        if slot is not None:
            bag[slot] += 1.0
            counts[_template(name)] = counts.get(_template(name), 0) + 1
    for (template, _), slot in slots.items():
        if counts.get(template):
            bag[slot] /= counts[template]
    return np.concatenate([encode(hyperparameters, values), bag])


def level(values, depths):
    """How many blocks `values` has beyond the smallest depths."""
    return sum(choices.index(values[name]) for name, choices in depths.items()
               if values.get(name) in choices)


def select(points, directions, count):
    """Indices of `count` points, best first: by non-dominated rank, then by
    crowding distance (NSGA-II); with one objective, simply the best values."""
    if not points:
        return []
    ranks = pareto.ranks(points, directions)
    crowding = pareto.crowding_distances(points, directions) if len(directions) > 1 else (
        [0.0] * len(points))
    order = sorted(range(len(points)), key=lambda i: (ranks[i], -crowding[i], i))
    return order[:count]


@strategies.register("pnas", halving=True)
class ProgressiveOracle(NASOracle):
    """Progressive NAS: train shallow architectures first, then let a
    surrogate choose which deeper ones to train.

    Level l holds the architectures with l blocks beyond the smallest depths
    (see the module docstring). Level 0: `beam_size` architectures at the
    smallest depths (all of them if there are fewer; PNAS trained all its
    one-block cells), in a seeded random order. Level l + 1, once every trial
    of level l has ended: the beam is the `beam_size` best completed
    architectures of level l; each is expanded by one block of each depth
    decision, with every way of setting the decisions the new block
    activates (at most `expansions_per_parent`, sampled, per expansion); an
    ensemble surrogate (`tfnas.surrogate`, trained on the one-hot encodings
    of every completed architecture of the levels below) predicts the
    expansions' scores; the `beam_size` best predicted are trained. At the
    last level the search goes on down the surrogate's ranking until
    `max_trials`, then random unexplored architectures.

    A space without a depth-like decision has a single level, so the search
    is random search there (a warning says so).

    Everything is derived from the trial history with generators seeded by
    (seed, level), so a restarted search continues exactly. While trials of
    level l still run (distributed search), the next level waits (IDLE).

    The surrogate is PNAS's MLP ensemble (rather than its LSTM over the
    block sequence): the `predictor` strategy's ensemble, over
    `block_encoding`, whose per-template means (PNAS's averaged block
    embeddings) carry what was learnt of one block to the next.

    Args:
        objective, max_trials, seed: as for `keras_tuner.Oracle`.
        beam_size: K, the architectures trained per level. Defaults to
            `max_trials` divided by the number of levels (rounded up), so
            the budget reaches the last level; 8 without `max_trials`.
        expansions_per_parent: Most expansions scored per (beam member,
            depth decision).
        ensemble_size, hidden_units: The surrogate ensemble's size and its
            members' hidden layer widths.
        **kwargs: Other `keras_tuner.Oracle` arguments.
    """

    def __init__(self, objective=None, max_trials=100, beam_size=None,
                 expansions_per_parent=64, ensemble_size=5, hidden_units=(32, 32),
                 seed=None, **kwargs):
        if beam_size is not None:
            check_int(beam_size, "beam_size", 1)
        check_int(expansions_per_parent, "expansions_per_parent", 1)
        check_int(ensemble_size, "ensemble_size", 1)
        super().__init__(objective=objective, max_trials=max_trials, seed=seed, **kwargs)
        self.beam_size = beam_size
        self.expansions_per_parent = expansions_per_parent
        self.ensemble_size = ensemble_size
        self.hidden_units = tuple(hidden_units)
        self._rankings = {}  # level -> (key of the data it came from, ranked values)
        self._warned = False

    strategy_name = "pnas"

    # What a step keeps and what it predicts: overridden by DPP.

    def selection_objectives(self):
        """The objectives a beam is selected by."""
        return [self.objective]

    # The levels.

    def _depths(self):
        depths = depth_decisions(self.hyperparameters.space)
        if not depths and not self._warned:
            self._warned = True
            names = [hp.name for hp in self.hyperparameters.space]
            warnings.warn(
                f"Strategy {self.strategy_name!r} grows architectures one block at a time, "
                "but the space has no depth-like decision (a `tfnas.decisions.repeat`, "
                "e.g. the chain space's `num_layers` with min_layers < max_layers), so "
                f"its search is one level: random search. Decisions: {names}. Use a space "
                "with a depth decision, or another strategy (e.g. 'evolution').",
                stacklevel=2)
        return depths

    def _beam(self, depths):
        if self.beam_size is not None:
            return self.beam_size
        if self.max_trials is None:
            return 8
        levels = 1 + sum(len(values) - 1 for values in depths.values())
        return max(1, math.ceil(self.max_trials / levels))

    def propose(self, rng):
        depths = self._depths()
        last = sum(len(values) - 1 for values in depths.values())
        beam = self._beam(depths)
        started = {}  # level -> distinct architectures started (first rung)
        for trial in self.trials.values():
            values = moves.decisions(trial.hyperparameters.values)
            started.setdefault(level(values, depths), set()).add(Architecture(values).hash)
        completed = self.completed_trials(self.learning_rung)
        for step in range(last + 1):
            ranking = self._ranking(step, depths, beam, completed)
            if ranking is None:
                return {"status": trials.IDLE, "values": None}
            if step < last and len(started.get(step, ())) >= min(beam, len(ranking)):
                continue
            for values in ranking:
                if self.is_new(values):
                    return {"status": RUNNING, "values": values}
        return self.random_proposal(rng)

    def _ranking(self, step, depths, beam, completed):
        """The architectures of level `step` in the order they are trained,
        or None while trials of the level below still run."""
        if step > 0:
            below = [t for t in self.trials.values()
                     if level(moves.decisions(t.hyperparameters.values), depths) == step - 1]
            if any(t.status in (trials.RUNNING, trials.IDLE) for t in below):
                return None
        known = [t for t in completed
                 if level(moves.decisions(t.hyperparameters.values), depths) < step]
        key = tuple(sorted(t.trial_id for t in known))
        cached = self._rankings.get(step)
        if cached is None or cached[0] != key:
            rng = np.random.default_rng([self.seed, step])
            if step == 0:
                ranking = self._level_zero(depths, rng)
            else:
                ranking = self._expansions_ranked(step, depths, beam, known, rng)
            cached = self._rankings[step] = (key, ranking)
        return cached[1]

    def _level_zero(self, depths, rng):
        space = self.hyperparameters.space
        smallest = {name: values[0] for name, values in depths.items()}
        architectures = moves.enumerate_architectures(space, limit=_LEVEL_ZERO_SAMPLES,
                                                      fixed=smallest)
        if architectures is None:
            architectures = [moves.fill(space, dict(smallest), rng)
                             for _ in range(_LEVEL_ZERO_SAMPLES)]
        return [architectures[i] for i in rng.permutation(len(architectures))]

    def _expansions(self, parent, depths, rng):
        """Every way to add one block to `parent` (sampled when too many)."""
        space = self.hyperparameters.space
        children = []
        for name, values in depths.items():
            if parent.get(name) not in values[:-1]:
                continue
            grown = {**parent, name: values[values.index(parent[name]) + 1]}
            completions = moves.enumerate_architectures(
                space, limit=self.expansions_per_parent, fixed=grown)
            if completions is None:
                completions = [moves.fill(space, grown, rng)
                               for _ in range(self.expansions_per_parent)]
            children.extend(completions)
        return children

    def _expansions_ranked(self, step, depths, beam, known, rng):
        objectives = self.selection_objectives()
        # A trial stopped early has a partial score: neither a parent, unless
        # every trial of the level was stopped, nor a training target.
        below = [t for t in known
                 if level(moves.decisions(t.hyperparameters.values), depths) == step - 1]
        below = [t for t in below if not trials.is_stopped_early(t)] or below
        known = [t for t in known if not trials.is_stopped_early(t)]
        members, points = pareto.trial_points(below, objectives)
        directions = [o.direction for o in objectives]
        parents = [moves.decisions(members[i].hyperparameters.values)
                   for i in select(points, directions, beam)]
        candidates, seen = [], set()
        for parent in parents:
            for child in self._expansions(parent, depths, rng):
                digest = Architecture(child).hash
                if digest not in seen:
                    seen.add(digest)
                    candidates.append(child)
        if not candidates:
            return []
        train, targets = pareto.trial_points(known, objectives)
        if len(train) < 2:
            return [candidates[i] for i in rng.permutation(len(candidates))]
        x = np.stack([block_encoding(self.hyperparameters,
                                     moves.decisions(t.hyperparameters.values))
                      for t in train])
        grid = np.stack([block_encoding(self.hyperparameters, c) for c in candidates])
        predicted = [surrogate.ensemble_predict(x, [p[j] for p in targets], grid, rng,
                                                self.ensemble_size, self.hidden_units)[0]
                     for j in range(len(objectives))]
        points = [tuple(float(column[i]) for column in predicted)
                  for i in range(len(candidates))]
        return [candidates[i] for i in select(points, directions, len(candidates))]


def _dpp_objectives(objectives, objective):
    if objectives is None:
        return pareto.as_objectives([objective, ("params", "min")])
    return pareto.as_objectives(objectives)


@strategies.register("dpp", halving=True)
class DPPOracle(ProgressiveOracle):
    """DPP-Net: progressive search that keeps a Pareto front of accuracy and
    device cost.

    As `pnas`, except that a level's beam is selected by non-dominated
    sorting of (objective, cost) with crowding distance to fill `beam_size`
    (NSGA-II), and the surrogate predicts every objective (one ensemble per
    metric), so the expansions trained are those predicted non-dominated.
    `NASTuner.get_pareto_front()` and `tfnas report` show the front.

    Args:
        pareto_objectives: Two or more `keras_tuner.Objective`s (or `(name,
            direction)` pairs) the trials report, e.g. `[("val_accuracy",
            "max"), ("latency_ms", "min")]` for measured latency,
            `("predicted_latency_ms", "min")` with a latency table, or
            `("params", "min")` / `("flops", "min")`. Defaults to the
            objective and `("params", "min")`.
        **kwargs: As for `ProgressiveOracle`.
    """

    def __init__(self, objective=None, max_trials=100, pareto_objectives=None, **kwargs):
        super().__init__(objective=objective, max_trials=max_trials, **kwargs)
        self.pareto_objectives = _dpp_objectives(pareto_objectives, self.objective)

    strategy_name = "dpp"

    def selection_objectives(self):
        return self.pareto_objectives
