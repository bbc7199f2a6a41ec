"""Predictor-guided search in the style of BANANAS (White et al., 2021)."""

import numpy as np

from tfnas import strategies, surrogate, trials
from tfnas.architecture import Architecture
from tfnas.moves import candidate_values
from tfnas.oracles.base import RUNNING, NASOracle
from tfnas.validation import check_int

ACQUISITIONS = ("its", "ucb", "ei")
POOLS = ("mutation", "random")


def encode(hyperparameters, values):
    """One-hot encoding of the active decisions of an architecture.

    One feature per (decision, candidate value); an inactive decision is all
    zeros. A decision with too many values to enumerate is one feature, its
    value scaled to [0, 1] by its range.
    """
    features = []
    for hp in hyperparameters.space:
        allowed = candidate_values(hp)
        value = values.get(hp.name)
        if allowed is not None:
            features.extend(1.0 if value == v else 0.0 for v in allowed)
        elif value is None:
            features.append(0.0)
        else:
            low, high = float(hp.min_value), float(hp.max_value)
            features.append((float(value) - low) / (high - low) if high > low else 0.0)
    return np.asarray(features, dtype="float32")


def expected_improvement(mean, std, best):
    """E[max(f - best, 0)] for f ~ N(mean, std**2), elementwise."""
    from scipy.stats import norm

    std = np.maximum(std, 1e-12)
    z = (mean - best) / std
    return (mean - best) * norm.cdf(z) + std * norm.pdf(z)


def predictor_budget(max_trials):
    """Predictors take over after a fifth of the budget (at least 2, at most
    10) of random trials."""
    return {"initial_trials": min(10, max(2, max_trials // 5))}


def _with_space_encoding(cls, objective, max_trials, seed=None, space=None, **kwargs):
    # A cell space's path encoding, when it has one, beats the one-hot one.
    if hasattr(space, "path_encoding"):
        kwargs.setdefault("encoder", space.path_encoding)
    return cls(objective=objective, max_trials=max_trials, seed=seed, **kwargs)


@strategies.register("predictor", budget=predictor_budget, halving=True,
                     build=_with_space_encoding)
class PredictorOracle(NASOracle):
    """BANANAS-style search: an ensemble of neural predictors proposes.

    After `initial_trials` random trials, each proposal trains an ensemble of
    `ensemble_size` small multilayer perceptrons (scikit-learn's
    `MLPRegressor`, each with its own initialization) on the one-hot
    encodings of the completed architectures and their standardized scores;
    scores a pool of up to `num_candidates` new architectures, the
    unexplored one-decision neighbours of the best completed trial, then of
    the next best, down to the `num_parents`-th (BANANAS's finding: mutate
    the best architectures seen, rather than sample at random); and proposes
    the candidate that maximizes the acquisition function over the
    ensemble's predictions:

    - "its", independent Thompson sampling (BANANAS's choice): a sample of a
      normal with the ensemble's mean and standard deviation per candidate;
    - "ucb", the upper confidence bound mean + `ucb_kappa` * std;
    - "ei", the expected improvement over the best score seen, under that
      normal.

    The predictors are retrained from the trial history at every proposal, so
    a restarted search needs no other state. A proposal costs tens of
    milliseconds of CPU at 100 completed trials
    (`benchmarks/results/predictor_study.md`).

    Args:
        objective, max_trials, seed: as for `keras_tuner.Oracle`.
        initial_trials: Random trials before the predictors take over.
        ensemble_size: Number of predictors.
        num_candidates: Most candidates scored per proposal.
        num_parents: How many of the best trials' neighbourhoods the pool
            may draw from.
        acquisition: "its", "ucb" or "ei".
        ucb_kappa: Exploration weight of "ucb".
        hidden_units: Hidden layer widths of each predictor.
        epochs: Most training epochs of each predictor.
        candidate_pool: "mutation" (the neighbours of the best trials) or
            "random" (random unexplored architectures, BANANAS's ablation).
        encoder: A function from decision values to a feature vector, e.g.
            a cell space's `path_encoding`; defaults to the one-hot encoding
            of the active decisions.
        proxy_feature: Whether the predictors also see the score of the
            oracle's proxy screen (`screen=`, or `NASTuner(proxy=...)`) as one
            more feature, standardized over the architectures encoded
            together (-inf scores below the others). Costs one proxy
            evaluation per new candidate (cached).
        **kwargs: Other `keras_tuner.Oracle` arguments.
    """

    def __init__(self, objective=None, max_trials=100, initial_trials=10,
                 ensemble_size=5, num_candidates=100, num_parents=10, acquisition="its",
                 ucb_kappa=0.5, hidden_units=(32, 32), epochs=300, candidate_pool="mutation",
                 encoder=None, proxy_feature=False, seed=None, **kwargs):
        for name, value, low in (("initial_trials", initial_trials, 2),
                                 ("ensemble_size", ensemble_size, 2),
                                 ("num_candidates", num_candidates, 1),
                                 ("num_parents", num_parents, 1),
                                 ("epochs", epochs, 1)):
            check_int(value, name, low)
        if acquisition not in ACQUISITIONS:
            raise ValueError(
                f"Received an invalid value for `acquisition`, expected one of "
                f"{ACQUISITIONS}. Received: acquisition={acquisition!r}")
        if candidate_pool not in POOLS:
            raise ValueError(
                f"Received an invalid value for `candidate_pool`, expected one of "
                f"{POOLS}. Received: candidate_pool={candidate_pool!r}")
        super().__init__(objective=objective, max_trials=max_trials, seed=seed, **kwargs)
        self.epochs = epochs
        self.candidate_pool = candidate_pool
        self.initial_trials = initial_trials
        self.ensemble_size = ensemble_size
        self.num_candidates = num_candidates
        self.num_parents = num_parents
        self.acquisition = acquisition
        self.ucb_kappa = float(ucb_kappa)
        self.hidden_units = tuple(hidden_units)
        self.encoder = encoder
        self.proxy_feature = bool(proxy_feature)

    def encode(self, architectures):
        """The feature matrix the predictors see for a list of architectures.

        An `encoder` may return vectors, or dicts of named features (sparse
        path encodings), vectorized over the union of names seen here.
        """
        features = self._encode(architectures)
        if not self.proxy_feature:
            return features
        if getattr(self, "screen", None) is None:
            raise ValueError("Received `proxy_feature=True` without a proxy: pass "
                             "`screen=tfnas.screening.ProxyScreen(...)` or "
                             "`NASTuner(..., proxy=NAME)`.")
        from tfnas.proxies import standardized

        column = standardized([self.screen.scorer(v) for v in architectures])
        return np.hstack([features, column[:, None]]).astype("float32")

    def _encode(self, architectures):
        if self.encoder is None:
            return np.stack([encode(self.hyperparameters, v) for v in architectures])
        encoded = [self.encoder(v) for v in architectures]
        if isinstance(encoded[0], dict):
            from sklearn.feature_extraction import DictVectorizer

            return DictVectorizer(sparse=False).fit_transform(encoded).astype("float32")
        return np.asarray(encoded, dtype="float32")

    def _candidates(self, parents, rng):
        if self.candidate_pool == "random":
            children = (self.random_architecture(rng)
                        for _ in range(self.num_candidates * 5))
        else:
            # The unexplored neighbours of the best parent first, then of the
            # next best: the pool stays where the incumbent is (BANANAS
            # mutates the best architectures, best first).
            children = (child for parent in parents
                        for child in self.neighbours(parent.hyperparameters.values, rng))
        candidates, seen = [], set()
        for child in children:
            key = Architecture(child).hash
            if key not in seen and self.is_new(child):
                seen.add(key)
                candidates.append(child)
                if len(candidates) == self.num_candidates:
                    break
        return candidates

    def predict(self, completed, candidates, rng):
        """Mean and standard deviation of the ensemble's predicted scores
        (negated scores when the objective is minimized)."""
        features = self.encode([t.hyperparameters.values for t in completed] + candidates)
        x, grid = features[:len(completed)], features[len(completed):]
        y = np.asarray([t.score for t in completed], dtype="float64")
        if self.objective.direction != "max":
            y = -y
        return surrogate.ensemble_predict(x, y, grid, rng, self.ensemble_size,
                                          self.hidden_units, self.epochs)

    def propose(self, rng):
        # A trial stopped early has a partial score: not a training target.
        completed = [t for t in self.completed_trials(self.learning_rung)
                     if not trials.is_stopped_early(t)]
        if len(self.start_order) < self.initial_trials or len(completed) < 2:
            return self.random_proposal(rng)
        ranked = trials.ranked(completed, self.objective.direction)
        candidates = self._candidates(ranked[:self.num_parents], rng)
        if not candidates:
            return self.random_proposal(rng)
        mean, std = self.predict(completed, candidates, rng)
        if self.acquisition == "its":
            acquisition = rng.normal(mean, std)
        elif self.acquisition == "ucb":
            acquisition = mean + self.ucb_kappa * std
        else:
            best = max(t.score if self.objective.direction == "max" else -t.score
                       for t in completed)
            acquisition = expected_improvement(mean, std, best)
        return {"status": RUNNING, "values": candidates[int(np.argmax(acquisition))]}
