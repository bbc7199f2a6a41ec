"""An LSTM controller trained by policy gradient: REINFORCE or PPO.

The controller of Zoph & Le (2017), NASNet (Zoph et al., 2018) and ENAS
(Pham et al., 2018), trained by REINFORCE with a moving-average baseline and
an entropy bonus, or by PPO's clipped objective as in MnasNet (Tan et al.,
2019). It emits the active decisions of any tfnas space one step at a time:
a softmax over the decision's candidates (input choices are categorical
decisions over candidate inputs), the chosen candidate's embedding fed to the
next step; a decision made inactive by earlier choices is skipped. A continuous or wide
decision (`hp.Float`, an `hp.Int` of more than 64 values) is discretized into
`bins` candidates at equal quantiles of its own sampling (linear, log or
reverse_log), so the controller learns which region of the range is best.

`PolicyNetwork` is the network (a Keras layer); `ControllerOracle` is the
KerasTuner oracle that samples from it and learns from completed trials.
"""

import contextlib
import glob
import os
import warnings

import keras
import keras_tuner as kt
import numpy as np
import tensorflow as tf

from tfnas import checkpoints, strategies
from tfnas.architecture import Architecture
from tfnas.oracles.base import RUNNING, NASOracle
from tfnas.oracles.controller_policy import (  # noqa: F401 (re-exported)
    DEFAULT_BINS, NumpySampler, PolicyNetwork, _check_positive, decision_candidates,
    nearest_candidate)

ALGORITHMS = ("reinforce", "ppo")


@strategies.register("controller", halving=True)
class ControllerOracle(NASOracle):
    """Architecture search by an LSTM controller trained by policy gradient.

    Each trial's architecture is sampled from the controller (re-sampled, up
    to `max_resamples` times, when already evaluated; then a random new
    architecture). Completed trials are learned from in batches of
    `batch_size`, in the order they complete, so results arriving out of
    order from several workers are used as they come; failed trials are not
    learned from. The reward is the objective (negated when minimized).

    - REINFORCE (Williams, 1992; Zoph & Le; ENAS): the baseline `b` is an
      exponential moving average of rewards (`b -= (1 - baseline_decay) *
      (b - reward)`), updated before the advantage `reward - b` is taken;
      loss `-(advantage * log_prob) - entropy_weight * entropy`.
    - PPO (Schulman et al., 2017; MnasNet): the same advantage; `ppo_epochs`
      steps on the clipped surrogate with ratio `exp(log_prob -
      log_prob_at_sampling)` clipped to `1 +- ppo_clip`.

    State: the network's and optimizer's weights in
    `controller-<updates>.weights.h5` in the project directory (written
    through a temporary file and a rename; `oracle.json` names the current
    one), the baseline, the learned trials and the sampling log-probabilities
    in `get_state`, and the random numbers through `NASOracle`'s seed state.
    A reloaded search continues training where it stopped.

    Args:
        objective, max_trials, seed: as for `keras_tuner.Oracle`.
        algorithm: "reinforce" or "ppo".
        units: LSTM size.
        learning_rate: Adam learning rate of the controller.
        batch_size: Completed trials per update.
        baseline_decay: Decay of the reward baseline, in [0, 1).
        entropy_weight: Weight of the entropy bonus (>= 0).
        temperature: Logit temperature.
        tanh_constant: Logit clipping constant (None: no clipping).
        ppo_clip: PPO's clipping range epsilon.
        ppo_epochs: PPO's gradient steps per batch.
        max_resamples: Samples tried before a random new architecture.
        bins: Candidates of a continuous or wide decision (`hp.Float`, an
            `hp.Int` of more than 64 values), at equal quantiles of its
            sampling (see `decision_candidates`). At least 2.
        **kwargs: Other `NASOracle` arguments (e.g. `halving`).
    """

    def __init__(self, objective=None, max_trials=100, algorithm="reinforce", units=64,
                 learning_rate=0.005, batch_size=1, baseline_decay=0.9, entropy_weight=1e-4,
                 temperature=1.0, tanh_constant=1.5, ppo_clip=0.2, ppo_epochs=4,
                 max_resamples=50, seed=None, bins=DEFAULT_BINS, **kwargs):
        if algorithm not in ALGORITHMS:
            raise ValueError(
                f"Received an invalid value for `algorithm`, expected one of "
                f"{ALGORITHMS}. Received: algorithm={algorithm!r}")
        _check_positive("learning_rate", learning_rate)
        for name, value in (("batch_size", batch_size), ("ppo_epochs", ppo_epochs),
                            ("max_resamples", max_resamples), ("bins", bins)):
            _check_positive(name, value, integer=True)
        if bins < 2:
            raise ValueError(
                f"Received an invalid value for `bins`, expected an integer >= 2. "
                f"Received: bins={bins!r}")
        if not 0 <= baseline_decay < 1:
            raise ValueError(
                "Received an invalid value for `baseline_decay`, expected a number "
                f"in [0, 1). Received: baseline_decay={baseline_decay!r}")
        if entropy_weight < 0:
            raise ValueError(
                "Received an invalid value for `entropy_weight`, expected a "
                f"number >= 0. Received: entropy_weight={entropy_weight!r}")
        if not 0 < ppo_clip < 1:
            raise ValueError(
                "Received an invalid value for `ppo_clip`, expected a number in "
                f"(0, 1). Received: ppo_clip={ppo_clip!r}")
        super().__init__(objective=objective, max_trials=max_trials, seed=seed, **kwargs)
        PolicyNetwork([1], units=units, temperature=temperature,
                      tanh_constant=tanh_constant)  # validates these arguments
        self.algorithm = algorithm
        self.units = units
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.baseline_decay = baseline_decay
        self.entropy_weight = entropy_weight
        self.temperature = temperature
        self.tanh_constant = tanh_constant
        self.ppo_clip = ppo_clip
        self.ppo_epochs = ppo_epochs
        self.max_resamples = max_resamples
        self.bins = bins
        self.network = None
        self._decisions = None  # [(name, candidate values)] the network was built for
        self._reset_learning_state()

    def _reset_learning_state(self):
        self.baseline = None
        self.updates = 0
        self.learned = []  # trial ids, in the order they were learned from
        self.sampling_log_probs = {}  # trial id -> log-probability when proposed
        self._weights_file = None
        self._saved_updates = None
        self._saved_decisions = None
        self._last_update = {}

    # The network.

    def _current_decisions(self):
        return [(hp.name, decision_candidates(hp, self.bins))
                for hp in self.hyperparameters.space]

    def _ensure_network(self):
        """Builds the network for the current decisions (loading saved weights
        if they were saved for the same decisions)."""
        decisions = self._current_decisions()
        if self.network is not None and decisions == self._decisions:
            return
        if self.network is not None:
            warnings.warn("The space gained decisions: the controller starts learning "
                          "again with a new network.")
            self._reset_learning_state()
        self._decisions = decisions
        self.network = PolicyNetwork([len(v) for _, v in decisions], units=self.units,
                                     temperature=self.temperature,
                                     tanh_constant=self.tanh_constant, seed=self.seed,
                                     dtype="float32")  # whatever the global policy
        self.network.build()
        self.optimizer = keras.optimizers.Adam(self.learning_rate)
        self.optimizer.build(self.network.trainable_variables)
        self._container = _Checkpoint(self.network, self.optimizer)
        self._train_step = tf.function(self._gradient_step, reduce_retracing=True)
        if self._weights_file is not None:
            path = os.path.join(self._project_dir, self._weights_file)
            signature = [[name, len(values)] for name, values in decisions]
            if self._saved_decisions != signature:
                raise ValueError(
                    f"The controller's weights {path} were saved for other "
                    f"decisions ({self._saved_decisions}) than this space's "
                    f"({signature}); use the same space or start the search over "
                    "(overwrite=True).")
            if not os.path.exists(path):
                raise FileNotFoundError(
                    f"The controller's weights {path}, named in oracle.json, are "
                    "missing; restore the file or start the search over "
                    "(overwrite=True).")
            self._container.load_weights(path)

    def _encode(self, values):
        """`(choices, active)` rows of an architecture's decision values; a
        continuous value counts as its nearest candidate."""
        choices, active = [], []
        for hp, (name, candidates) in zip(self.hyperparameters.space, self._decisions):
            index = None
            if values.get(name) is not None:
                index = nearest_candidate(hp, candidates, values[name])
            choices.append(0 if index is None else index)
            active.append(index is not None)
        return choices, active

    def probability(self, values):
        """The controller's probability of sampling the architecture `values`."""
        self._ensure_network()
        choices, active = self._encode(values)
        log_prob, _ = self.network(tf.constant([choices]), tf.constant([active]))
        return float(np.exp(log_prob[0]))

    # Proposals.

    def _sample(self, rng):
        sampler = self.network.sampler()
        hps = kt.HyperParameters()
        for step, hp in enumerate(self.hyperparameters.space):
            hps.merge([hp])
            if not hps.is_active(hp):
                continue
            candidates = self._decisions[step][1]
            index = int(rng.choice(len(candidates), p=sampler.probabilities(step)))
            sampler.choose(step, index)
            hps.values[hp.name] = candidates[index]
        values = {k: v for k, v in hps.values.items() if hps.is_active(k)}
        return values, sampler.log_prob

    def _log_prob(self, values):
        sampler = self.network.sampler()
        choices, active = self._encode(values)
        for step, (index, on) in enumerate(zip(choices, active)):
            if on:
                sampler.choose(step, index)
        return sampler.log_prob

    def propose(self, rng):
        if not self.hyperparameters.space:
            # Nothing declared yet (hyperparameters declared in `run_trial`
            # or `fit`): the first trial runs with the defaults, as in KerasTuner.
            return self.random_proposal(rng)
        self._ensure_network()
        for _ in range(self.max_resamples):
            values, log_prob = self._sample(rng)
            if self.is_new(values):
                return {"status": RUNNING, "values": values, "remember": log_prob}
        response = self.random_proposal(rng)
        if response["status"] == RUNNING:
            response["remember"] = self._log_prob(response["values"])
        return response

    def remember(self, trial_id, log_prob):
        """Keeps the probability the trial was sampled with (for PPO)."""
        self.sampling_log_probs[trial_id] = log_prob

    # Learning.

    def learn(self):
        if not self.hyperparameters.space:
            return  # no decision to learn yet
        learned = set(self.learned)
        pending = [t for t in self.completed_trials(self.learning_rung)
                   if t.trial_id not in learned]
        while len(pending) >= self.batch_size:
            batch, pending = pending[: self.batch_size], pending[self.batch_size:]
            self._update(batch)

    def _update(self, trials):
        self._ensure_network()
        sign = 1.0 if self.objective.direction == "max" else -1.0
        advantages = []
        for trial in trials:
            reward = sign * float(trial.score)
            if self.baseline is None:
                self.baseline = reward
            self.baseline -= (1 - self.baseline_decay) * (self.baseline - reward)
            advantages.append(reward - self.baseline)
        rows = [self._encode(Architecture.from_trial(t).values) for t in trials]
        choices = tf.constant([r[0] for r in rows])
        active = tf.constant([r[1] for r in rows])
        advantages = tf.constant(advantages, dtype="float32")
        old = tf.constant([self.sampling_log_probs.get(t.trial_id, np.nan)
                           for t in trials], dtype="float32")
        for _ in range(self.ppo_epochs if self.algorithm == "ppo" else 1):
            loss, entropy = self._train_step(choices, active, advantages, old)
        self._last_update = {
            "reward": float(np.mean([sign * float(t.score) for t in trials])),
            "baseline": float(self.baseline), "entropy": float(entropy),
            "loss": float(loss)}
        self.updates += 1
        self.learned.extend(t.trial_id for t in trials)

    def _gradient_step(self, choices, active, advantages, sampling_log_prob):
        """One optimizer step on the REINFORCE or PPO loss (a tf.function)."""
        with tf.GradientTape() as tape:
            log_prob, entropy = self.network(choices, active)
            if self.algorithm == "ppo":
                # A trial without a recorded sampling probability is treated
                # as sampled by the current policy (ratio 1).
                reference = tf.where(tf.math.is_nan(sampling_log_prob),
                                     tf.stop_gradient(log_prob), sampling_log_prob)
                ratio = tf.exp(log_prob - reference)
                clipped = tf.clip_by_value(ratio, 1 - self.ppo_clip, 1 + self.ppo_clip)
                surrogate = tf.minimum(ratio * advantages, clipped * advantages)
            else:
                surrogate = log_prob * advantages
            loss = -tf.reduce_mean(surrogate) - self.entropy_weight * tf.reduce_mean(entropy)
        variables = self.network.trainable_variables
        gradients = tape.gradient(loss, variables)
        self.optimizer.apply_gradients(
            [(g, v) for g, v in zip(gradients, variables) if g is not None])
        return loss, tf.reduce_mean(entropy)

    def scalars(self):
        """The last update's mean reward, baseline, policy entropy and loss."""
        return dict(self._last_update)

    # Persistence.

    def save(self):
        if self.network is not None and self.updates != self._saved_updates:
            name = f"controller-{self.updates:06d}.weights.h5"
            # Whole or not at all, even on a full disk (see tfnas.checkpoints).
            checkpoints.save_weights_atomically(self._container,
                                                os.path.join(self._project_dir, name))
            self._weights_file, self._saved_updates = name, self.updates
        super().save()
        for path in glob.glob(os.path.join(self._project_dir, "controller-*.weights.h5")):
            if os.path.basename(path) != self._weights_file:
                with contextlib.suppress(FileNotFoundError):  # another oracle's, gone
                    os.remove(path)  # older than the state oracle.json now names

    def get_state(self):
        state = super().get_state()
        state["controller"] = {
            "algorithm": self.algorithm,
            "baseline": self.baseline,
            "updates": self.updates,
            "learned": list(self.learned),
            "sampling_log_probs": dict(self.sampling_log_probs),
            "weights_file": self._weights_file,
            "decisions": [[name, len(values)] for name, values in self._decisions or []],
        }
        return state

    def set_state(self, state):
        super().set_state(state)
        saved = state.get("controller")
        self.network = None
        self._reset_learning_state()
        if not saved:
            return
        self.baseline = saved["baseline"]
        self.updates = saved["updates"]
        self.learned = list(saved["learned"])
        self.sampling_log_probs = dict(saved["sampling_log_probs"])
        self._weights_file = saved["weights_file"]
        self._saved_updates = self.updates if self._weights_file else None
        self._saved_decisions = saved["decisions"]


class _Checkpoint(keras.Model):
    """Holds the network and its optimizer, so that one Keras weights file
    saves both."""

    def __init__(self, network, optimizer):
        super().__init__()
        self.network = network
        self.optimizer = optimizer
        self.built = True


@strategies.register("ppo", halving=True)
class PPOControllerOracle(ControllerOracle):
    """`ControllerOracle` trained by PPO (the `ppo` strategy)."""

    def __init__(self, *args, algorithm="ppo", **kwargs):
        super().__init__(*args, algorithm=algorithm, **kwargs)
