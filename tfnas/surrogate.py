"""An ensemble of small neural regressors: the surrogate model of the
predictor-based strategies (BANANAS-style search, progressive NAS).

Each member is a scikit-learn `MLPRegressor` with its own initialization,
trained on standardized targets; the spread of their predictions is the
ensemble's uncertainty (Lakshminarayanan et al., 2017; White et al., 2021).
"""

import warnings

import numpy as np

#: scikit-learn's default minibatch size: with no more points than this,
#: every epoch is one full batch.
BATCH_SIZE = 200


def ensemble_predict(x, y, grid, rng, ensemble_size=5, hidden_units=(32, 32), epochs=300):
    """Trains an ensemble on `(x, y)` and predicts `grid`.

    Args:
        x: Feature matrix of the known points, shape (n, d).
        y: Their targets, shape (n,); larger or smaller is the caller's
            business (the ensemble only regresses).
        grid: Feature matrix of the points to predict, shape (m, d).
        rng: A `numpy.random.Generator`: each member's initialization seed.
        ensemble_size: Number of members.
        hidden_units: Hidden layer widths of each member.
        epochs: Most epochs of Adam per member (each stops earlier when its
            training loss stops improving).

    Returns:
        `(mean, std)` of the members' predictions, each of shape (m,).
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPRegressor

    y = np.asarray(y, dtype="float64")
    mean, scale = y.mean(), y.std() or 1.0
    targets = (y - mean) / scale
    predictions = []
    for _ in range(ensemble_size):
        # One full batch per epoch up to BATCH_SIZE points: shuffling it would
        # change nothing but cost a third of the training time.
        model = MLPRegressor(hidden_layer_sizes=tuple(hidden_units), max_iter=epochs,
                             learning_rate_init=0.01, shuffle=len(y) > BATCH_SIZE,
                             random_state=int(rng.integers(2**31)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(x, targets)
        predictions.append(model.predict(grid) * scale + mean)
    predictions = np.stack(predictions)
    return predictions.mean(axis=0), predictions.std(axis=0)
