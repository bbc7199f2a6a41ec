"""`OneShotTuner`: weight-sharing search through `tuner.search`.

`search(train, validation_data=val, epochs=...)` trains the space's
supernet (`tfnas.supernet.oneshot`) and derives one architecture the way
its strategy does (`tfnas.supernet.strategies`: the largest alpha per
decision for DARTS, GDAS, ProxylessNAS; the best path found by regularized
evolution for SPOS, the best path the controller sampled for ENAS), then
trains that architecture from scratch as an ordinary trial, so
`get_best_models()`, `export_best()` and the reports work as after any
search.
"""

import os

import keras_tuner as kt
import tensorflow as tf

from tfnas import project_lock
from tfnas import tensorboard as search_log
from tfnas.architecture import Architecture
from tfnas.atomic import write_atomically
from tfnas.optimizers import FusedAdam
from tfnas.oracles.base import RUNNING, STOPPED, NASOracle
from tfnas.supernet import oneshot, strategies
from tfnas.supernet.builder import build_supernet
from tfnas.supernet.elastic import ElasticLayer
from tfnas.tuner import NASTuner, dtype_policy_scope, seed_globally

# What a one-shot search learned, one kind of record per file: the alphas'
# probabilities per epoch (gradient strategies), or the paths evaluated with
# their scores (path strategies: SPOS, ENAS).
PROBABILITIES_FILE = "architecture_probabilities.json"
PATHS_FILE = "path_scores.json"


class FixedOracle(NASOracle):
    """Proposes one given architecture, once (the derived one)."""

    def __init__(self, objective=None, seed=None, **kwargs):
        super().__init__(objective=objective, max_trials=1, seed=seed, **kwargs)
        self.architecture = None

    def propose(self, rng):
        if self.architecture is None:
            raise ValueError("FixedOracle: no architecture was set.")
        if not self.is_new(self.architecture):
            return {"status": STOPPED, "values": None}
        return {"status": RUNNING, "values": dict(self.architecture)}

    def get_state(self):
        return {**super().get_state(), "architecture": self.architecture}

    def set_state(self, state):
        super().set_state(state)
        self.architecture = state.get("architecture")


def _as_dataset(data, batch_size):
    if isinstance(data, tf.data.Dataset):
        return data
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return tf.data.Dataset.from_tensor_slices(tuple(data)).batch(batch_size)
    raise ValueError(
        "Expected a tf.data.Dataset of (inputs, labels) batches or an (x, y) "
        f"pair. Received: {type(data).__name__}")


class OneShotTuner(NASTuner):
    """Weight-sharing architecture search with a KerasTuner interface.

    Args:
        hypermodel: A tfnas space (its decisions become mixed layers).
        strategy: A one-shot strategy registered in `tfnas.strategies`:
            "darts" (first order), "darts2" (second order), "gdas",
            "proxyless", "spos", "enas", ...; or a
            `tfnas.supernet.strategies.OneShotStrategy` instance.
        supernet_epochs: Epochs of supernet training; defaults to the
            `epochs` given to `search`.
        architecture_learning_rate: Adam learning rate of the alphas.
        weight_optimizer: Optimizer of the supernet's weights (default
            `tfnas.optimizers.FusedAdam(1e-3)`: Keras's Adam, fused).
        warmup_epochs: Epochs of weight-only training before the alphas
            learn.
        latency_table: Optional `tfnas.latency.LatencyTable`; adds
            `latency_weight` times the expected latency to the architecture
            loss.
        latency_weight: See `latency_table`.
        spos_trials: Architectures evaluated by SPOS's evolution (in spaces
            of more paths than the strategy's `exhaustive_limit`; smaller
            ones are scored path by path).
        enas_trials: Paths the ENAS controller samples; each trains the
            shared weights for `enas_steps` batches, then is rewarded with its
            validation score (the compiled metric that `objective` names).
            The supernet epochs do not apply to ENAS.
        enas_steps: Training batches per ENAS path.
        fixed_values: Values of the space's plain hyperparameters.
        seed: Seed of the strategy.
        objective: The objective of the retraining trial; SPOS and ENAS
            also score paths by the compiled metric it names ("val_accuracy":
            "accuracy"), in its direction.
        **kwargs: `NASTuner` arguments (`directory`, `project_name`, ...).
    """

    def __init__(self, hypermodel, strategy="darts", supernet_epochs=None,
                 architecture_learning_rate=3e-4, weight_optimizer=None, warmup_epochs=0,
                 latency_table=None, latency_weight=0.0, spos_trials=50, enas_trials=50,
                 enas_steps=10, fixed_values=None, seed=None, objective="val_accuracy",
                 **kwargs):
        strategy = strategies.resolve(strategy)
        super().__init__(hypermodel, oracle=FixedOracle(objective=objective, seed=seed),
                         **kwargs)
        self.strategy = strategy
        self.supernet_epochs = supernet_epochs
        self.architecture_learning_rate = architecture_learning_rate
        self.weight_optimizer = weight_optimizer
        self.warmup_epochs = warmup_epochs
        self.latency_table = latency_table
        self.latency_weight = latency_weight
        self.spos_trials = spos_trials
        self.enas_trials = enas_trials
        self.enas_steps = enas_steps
        self.fixed_values = dict(fixed_values or {})
        self.seed = seed
        self.supernet_decisions = []
        # {"epoch", "decision", "candidate", "probability"} (gradient
        # strategies) or {"trial", "score", "architecture"} (path strategies)
        self.architecture_history = []

    @project_lock.exclusive
    def search(self, *fit_args, **fit_kwargs):
        if self.oracle.architecture is None:
            x = fit_args[0] if fit_args else fit_kwargs.get("x")
            y = fit_args[1] if len(fit_args) > 1 else fit_kwargs.get("y")
            validation = fit_kwargs.get("validation_data")
            if validation is None:
                raise ValueError("One-shot search needs `validation_data`: the "
                                 "architecture is learned on it.")
            batch_size = fit_kwargs.get("batch_size") or 32
            train = _as_dataset(x if y is None else (x, y), batch_size)
            validation = _as_dataset(validation, batch_size)
            epochs = self.supernet_epochs or fit_kwargs.get("epochs", 1)
            self.oracle.architecture = self.search_supernet(train, validation, epochs)
            self.oracle.save()
        return super().search(*fit_args, **fit_kwargs)

    def search_supernet(self, train, validation, epochs):
        """Trains the supernet and returns the derived architecture's values."""
        # The supernet's initial weights, whatever ran before (KerasTuner's
        # discovery of the space builds models from unseeded values).
        if self.seed is not None:
            seed_globally(self.seed, "supernet")
        with dtype_policy_scope(self.dtype_policy):  # mixed precision, if asked
            supernet, builder = build_supernet(self.hypermodel, self.strategy.mode,
                                               self.fixed_values, seed=self.seed)
            self.supernet_decisions = list(builder.mixed)
            latency = self._latency_costs(builder) if self.latency_table is not None else None
            steps = int(train.cardinality()) if train.cardinality() > 0 else 0
            model = oneshot.OneShotModel(
                supernet, builder, strategy=self.strategy,
                architecture_optimizer=FusedAdam(self.architecture_learning_rate, beta_1=0.5),
                latency=latency, latency_weight=self.latency_weight,
                warmup_steps=self.warmup_epochs * steps, seed=self.seed)
            model.compile(optimizer=self.weight_optimizer or FusedAdam(1e-3),
                          loss=supernet.loss, metrics=_compiled_metrics(supernet))
        values = self.strategy.search(self, model, train, validation, epochs)
        return self.derived_architecture(values)

    def record_probabilities(self, rows):
        """Keeps the alphas' probabilities per epoch (`ProbabilityLog` rows)
        in `architecture_history`, the project and TensorBoard."""
        self.architecture_history = rows
        write_atomically(os.path.join(self.project_dir, PROBABILITIES_FILE), rows)
        if self.log_dir:
            search_log.SearchLog(self.log_dir, self.oracle.objective.name,
                                 self.oracle.objective.direction).log_probabilities(rows)

    def record_paths(self, rows):
        """Keeps the evaluated paths (`{"trial", "score", "architecture"}`)
        in `architecture_history` and the project."""
        self.architecture_history = rows
        write_atomically(os.path.join(self.project_dir, PATHS_FILE), rows)

    def derived_architecture(self, values):
        """The active decisions of the standalone model that `values` select."""
        hp = kt.HyperParameters()
        hp.values.update({**self.fixed_values, **values})
        self.hypermodel.build(hp)
        return Architecture.from_hyperparameters(hp).values

    def _latency_costs(self, builder):
        costs = {}
        for name, layer in builder.mixed.items():
            shape = tuple(layer.input.shape) if hasattr(layer.input, "shape") else None
            if shape is None or name in builder.shared or any(
                    isinstance(c, ElasticLayer) for c in layer.candidates):
                # An input choice or a depth: no operation of its own; or a
                # shared value, whose elastic layers are not timed alone.
                continue
            # Every copy of the decision (one per cell) costs the same.
            costs[name] = [builder.copies[name] * self.latency_table.time_layer(candidate, shape)
                           for candidate in layer.candidates]
        return costs


def _compiled_metrics(supernet):
    """The metrics the space compiled its model with (accuracy, mean absolute
    error...), so that path scores and reports speak the space's language."""
    config = supernet.get_compile_config() or {}
    return config.get("metrics") or ["accuracy"]
