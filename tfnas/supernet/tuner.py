"""`OneShotTuner`: weight-sharing search through `tuner.search`.

`search(train, validation_data=val, epochs=...)` trains the space's
supernet (`tfnas.supernet.oneshot`), derives one architecture (the largest
alpha per decision; for SPOS, the best path found by regularized evolution
over the trained supernet; for ENAS, the best path the controller sampled),
then trains that architecture from scratch as an ordinary trial, so
`get_best_models()`, `export_best()` and the reports work as after any
search.
"""

import os
import tempfile

import keras
import keras_tuner as kt
import numpy as np
import tensorflow as tf

from tfnas import oracles
from tfnas import project_lock
from tfnas import tensorboard as search_log
from tfnas.architecture import Architecture
from tfnas.lookup import LookupTuner
from tfnas.oracles.base import RUNNING, STOPPED, NASOracle
from tfnas.atomic import write_atomically
from tfnas.supernet import oneshot
from tfnas.supernet.builder import build_supernet
from tfnas.tuner import NASTuner, dtype_policy_scope

ONE_SHOT_STRATEGIES = ("darts", "darts2", "gdas", "proxyless", "spos", "enas")
PROBABILITIES_FILE = "architecture_probabilities.json"


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
        strategy: "darts" (first order), "darts2" (second order), "gdas",
            "proxyless", "spos" or "enas".
        supernet_epochs: Epochs of supernet training; defaults to the
            `epochs` given to `search`.
        architecture_learning_rate: Adam learning rate of the alphas.
        weight_optimizer: Optimizer of the supernet's weights (default
            Adam(1e-3)).
        warmup_epochs: Epochs of weight-only training before the alphas
            learn.
        latency_table: Optional `tfnas.latency.LatencyTable`; adds
            `latency_weight` times the expected latency to the architecture
            loss.
        latency_weight: See `latency_table`.
        spos_trials: Architectures evaluated by SPOS's evolution.
        enas_trials: Paths the ENAS controller samples; each trains the
            shared weights for `enas_steps` batches, then is rewarded with its
            validation accuracy. The supernet epochs do not apply to ENAS.
        enas_steps: Training batches per ENAS path.
        fixed_values: Values of the space's plain hyperparameters.
        seed: Seed of the strategy.
        objective: The objective of the retraining trial.
        **kwargs: `NASTuner` arguments (`directory`, `project_name`, ...).
    """

    def __init__(self, hypermodel, strategy="darts", supernet_epochs=None,
                 architecture_learning_rate=3e-4, weight_optimizer=None, warmup_epochs=0,
                 latency_table=None, latency_weight=0.0, spos_trials=50, enas_trials=50,
                 enas_steps=10, fixed_values=None, seed=None, objective="val_accuracy",
                 **kwargs):
        if strategy not in ONE_SHOT_STRATEGIES:
            raise ValueError(
                f"Received an invalid value for `strategy`, expected one of "
                f"{ONE_SHOT_STRATEGIES}. Received: strategy={strategy!r}")
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
        self.architecture_history = []  # {"epoch", "decision", "candidate", "probability"}

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
        mode = oneshot.STRATEGY_MODES[self.strategy]
        with dtype_policy_scope(self.dtype_policy):  # mixed precision, if asked
            supernet, builder = build_supernet(self.hypermodel, mode, self.fixed_values,
                                               seed=self.seed)
            self._supernet_decisions = list(builder.mixed)
            latency = self._latency_costs(builder) if self.latency_table is not None else None
            steps = int(train.cardinality()) if train.cardinality() > 0 else 0
            strategy = "darts" if self.strategy == "darts2" else self.strategy
            model = oneshot.OneShotModel(
                supernet, builder, strategy=strategy,
                architecture_optimizer=keras.optimizers.Adam(
                    self.architecture_learning_rate, beta_1=0.5),
                second_order=self.strategy == "darts2", latency=latency,
                latency_weight=self.latency_weight,
                warmup_steps=self.warmup_epochs * steps, seed=self.seed)
            model.compile(optimizer=self.weight_optimizer or keras.optimizers.Adam(1e-3),
                          loss=supernet.loss, metrics=["accuracy"])
        log = oneshot.ProbabilityLog()
        callbacks = [log]
        if self.strategy == "gdas":
            callbacks.append(oneshot.TemperatureSchedule(epochs))
        if self.strategy == "enas":
            return self.derived_architecture(self._controller_paths(model, train, validation))
        model.fit(oneshot.paired(train, validation), epochs=epochs, verbose=0,
                  callbacks=callbacks)
        if self.strategy != "spos":
            self.architecture_history = log.rows
            write_atomically(os.path.join(self.project_dir, PROBABILITIES_FILE), log.rows)
            if self.log_dir:
                search_log.SearchLog(self.log_dir, self.oracle.objective.name,
                                     self.oracle.objective.direction).log_probabilities(log.rows)
        derived = (self._evolve_paths(model, train, validation) if self.strategy == "spos"
                   else oneshot.derive(model))
        return self.derived_architecture(derived)

    def derived_architecture(self, values):
        """The active decisions of the standalone model that `values` select."""
        hp = kt.HyperParameters()
        hp.values.update({**self.fixed_values, **values})
        self.hypermodel.build(hp)
        return Architecture.from_hyperparameters(hp).values

    def _latency_costs(self, builder):
        costs = {}
        for name, layer in builder.mixed.items():
            shape = tuple(layer.input.shape) if not isinstance(layer.input, list) else None
            if shape is None:
                continue  # an input choice or a depth: no operation of its own
            # Every copy of the decision (one per cell) costs the same.
            costs[name] = [builder.copies[name] * self.latency_table.time_layer(candidate, shape)
                           for candidate in layer.candidates]
        return costs

    @staticmethod
    def _set_path(model, values):
        """Points every single-path mixed layer at the candidate in `values`
        (the first one for a decision `values` leaves inactive)."""
        for name, layer in model.decisions.items():
            options = model.builder.values[name]
            layer.set_index(options.index(values[name]) if values.get(name) in options else 0)

    def _path_space(self, hyperparameters):
        """The space's hyperparameters with the plain ones (not mixed in the
        supernet) fixed to the values the supernet was built with, so that a
        path search varies only what the supernet can evaluate."""
        decisions = set(self._supernet_decisions)
        fixed = kt.HyperParameters()
        for hp in hyperparameters.space:
            if hp.name not in decisions:
                hp = kt.engine.hyperparameters.Fixed(
                    hp.name, self.fixed_values.get(hp.name, hp.default),
                    conditions=hp.conditions)
            fixed.merge([hp])
        return fixed

    def _path_accuracy(self, model, values, validation, calibration=None):
        """Validation accuracy of the supernet's path `values` (batch norm
        recalibrated on `calibration` inputs first, when given)."""
        self._set_path(model, values)
        if calibration is not None:
            _recalibrate(model.supernet, calibration)
        correct = total = 0
        for x, y in validation:
            predicted = np.argmax(model.supernet(x, training=False).numpy(), axis=-1)
            correct += int(np.sum(predicted == np.asarray(y)))
            total += len(predicted)
        return correct / total

    def _controller_paths(self, model, train, validation):
        """ENAS: the controller samples a path per trial; the shared weights
        train on it for `enas_steps` batches (they persist across trials);
        its validation accuracy (batch norm recalibrated for the path, as the
        shared statistics mix every path) is the controller's reward."""
        paired = oneshot.paired(train.repeat(), validation)
        calibration = next(iter(train.unbatch().batch(512)))[0]
        validation = list(validation)

        def score(values):
            self._set_path(model, values)
            model.fit(paired, steps_per_epoch=self.enas_steps, epochs=1, verbose=0)
            return self._path_accuracy(model, values, validation, calibration)

        return self._search_paths("controller", self.enas_trials, score)

    def _evolve_paths(self, model, train, validation):
        """SPOS: regularized evolution over single paths, each scored by the
        supernet's validation accuracy after batch-norm recalibration."""
        calibration = next(iter(train.unbatch().batch(512)))[0]
        validation = list(validation)
        return self._search_paths(
            "evolution", self.spos_trials,
            lambda values: self._path_accuracy(model, values, validation, calibration))

    def _search_paths(self, strategy, trials, score):
        """Runs a multi-trial `strategy` over the supernet's paths; returns the
        best path's values and keeps every evaluated path in
        `architecture_history`."""
        oracle = oracles.get(strategy, kt.Objective("score", "max"), trials, seed=self.seed)
        with tempfile.TemporaryDirectory() as directory:
            tuner = LookupTuner(oracle, self.hypermodel, score, signal_name="score",
                                directory=directory)
            oracle.hyperparameters = self._path_space(oracle.hyperparameters)
            tuner.search()
            best = oracle.get_best_trials(1)[0]
            self.architecture_history = [
                {"trial": t.trial_id, "score": t.score,
                 "architecture": Architecture.from_trial(t).values}
                for t in oracle.trials.values()]
        write_atomically(os.path.join(self.project_dir, PROBABILITIES_FILE),
                         self.architecture_history)
        return Architecture.from_trial(best).values


def _recalibrate(model, inputs):
    """Batch-norm statistics of the current path, from one large batch."""
    layers = [layer for layer in model._flatten_layers()
              if isinstance(layer, keras.layers.BatchNormalization)]
    momenta = [layer.momentum for layer in layers]
    for layer in layers:
        layer.momentum = 0.0
    model(inputs, training=True)
    for layer, momentum in zip(layers, momenta):
        layer.momentum = momentum
