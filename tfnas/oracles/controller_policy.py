"""The controller's policy: an LSTM over decisions, and its NumPy sampler.

`PolicyNetwork` (a Keras layer) gives the log-probability and entropy of
batches of decision sequences, for training; `NumpySampler` runs the same
computation one decision at a time, for sampling while the oracle decides
which decisions are active. `decision_candidates` discretizes a continuous
or wide decision. Used by `tfnas.oracles.controller.ControllerOracle`.
"""

import keras
import keras_tuner as kt
import numpy as np
import tensorflow as tf

from tfnas.moves import candidate_values
from tfnas.validation import check_positive_int, is_integer

DEFAULT_BINS = 20
_NEG_INF = -1e9


def _check_positive(name, value, integer=False):
    if integer:
        check_positive_int(value, name)
    elif isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(
            f"Received an invalid value for `{name}`, expected a positive "
            f"number. Received: {name}={value!r}")


@keras.saving.register_keras_serializable(package="tfnas")
class PolicyNetwork(keras.layers.Layer):
    """An LSTM policy over a sequence of categorical decisions.

    Step `d` reads the previous step's choice embedding (a learned start
    vector at step 0), runs one LSTM step, and computes logits over the
    `choice_counts[d]` candidates: `tanh_constant * tanh(logits /
    temperature)` when `tanh_constant` is set, as in the NAS papers.
    Inactive steps leave the LSTM state and input unchanged.

    `call(choices, active)` returns the log-probability and the entropy of
    each sequence in a batch; `sampler()` gives a NumPy copy of the same
    computation for sampling one decision at a time.

    Args:
        choice_counts: Number of candidates of each decision, in order.
        units: LSTM size.
        temperature: Logit temperature (> 0).
        tanh_constant: Logit clipping constant, or None for no clipping.
        seed: Seed of the weight initialization.
    """

    def __init__(self, choice_counts, units=64, temperature=1.0, tanh_constant=1.5,
                 seed=None, **kwargs):
        super().__init__(**kwargs)
        counts = list(choice_counts)
        if not counts or any(not is_integer(c) or c < 1
                             for c in counts):
            raise ValueError(
                "Received an invalid value for `choice_counts`, expected a "
                f"non-empty list of positive integers. Received: choice_counts={counts}")
        _check_positive("units", units, integer=True)
        _check_positive("temperature", temperature)
        if tanh_constant is not None:
            _check_positive("tanh_constant", tanh_constant)
        self.choice_counts = counts
        self.units = units
        self.temperature = float(temperature)
        self.tanh_constant = None if tanh_constant is None else float(tanh_constant)
        self.seed = seed

    def build(self, input_shape=None):
        steps, width, units = len(self.choice_counts), max(self.choice_counts), self.units
        seed = 0 if self.seed is None else int(self.seed)

        def weight(name, shape, offset):
            return self.add_weight(
                name=name, shape=shape,
                initializer=keras.initializers.RandomUniform(-0.1, 0.1, seed=seed + offset))

        self.start = weight("start", (units,), 1)
        self.kernel = weight("kernel", (units, 4 * units), 2)
        self.recurrent_kernel = weight("recurrent_kernel", (units, 4 * units), 3)
        self.bias = weight("bias", (4 * units,), 4)
        self.head_kernel = weight("head_kernel", (steps, units, width), 5)
        self.head_bias = weight("head_bias", (steps, width), 6)
        self.embeddings = weight("embeddings", (steps, width, units), 7)
        mask = np.zeros((steps, width), dtype="float32")
        for step, count in enumerate(self.choice_counts):
            mask[step, count:] = _NEG_INF
        self._invalid = tf.constant(mask)
        self.built = True

    def _logits(self, hidden, step):
        logits = tf.matmul(hidden, self.head_kernel[step]) + self.head_bias[step]
        logits = logits / self.temperature
        if self.tanh_constant is not None:
            logits = self.tanh_constant * tf.tanh(logits)
        return logits + self._invalid[step]

    def _lstm(self, inputs, hidden, cell):
        gates = (tf.matmul(inputs, self.kernel) + tf.matmul(hidden, self.recurrent_kernel)
                 + self.bias)
        i, f, g, o = tf.split(gates, 4, axis=-1)
        cell = tf.sigmoid(f) * cell + tf.sigmoid(i) * tf.tanh(g)
        return tf.sigmoid(o) * tf.tanh(cell), cell

    def call(self, choices, active):
        """Log-probabilities and entropies of a batch of decision sequences.

        Args:
            choices: int tensor [batch, steps], the chosen candidate per step
                (any valid index where inactive).
            active: bool tensor [batch, steps].

        Returns:
            `(log_prob, entropy)`, each a float tensor [batch].
        """
        batch = tf.shape(choices)[0]
        inputs = tf.tile(self.start[tf.newaxis], [batch, 1])
        hidden = cell = tf.zeros([batch, self.units])
        log_prob = entropy = tf.zeros([batch])
        # Steps as the leading axis, so that step `s` reads row `s`.
        choices, active = tf.transpose(choices), tf.transpose(active)

        def one_step(step, inputs, hidden, cell, log_prob, entropy):
            on = active[step]
            new_hidden, new_cell = self._lstm(inputs, hidden, cell)
            log_probs = tf.nn.log_softmax(self._logits(new_hidden, step))
            chosen = choices[step]
            step_log_prob = tf.gather(log_probs, chosen, batch_dims=1)
            step_entropy = -tf.reduce_sum(tf.exp(log_probs) * log_probs, axis=-1)
            column = on[:, tf.newaxis]
            return (step + 1,
                    tf.where(column, tf.gather(self.embeddings[step], chosen), inputs),
                    tf.where(column, new_hidden, hidden),
                    tf.where(column, new_cell, cell),
                    log_prob + tf.where(on, step_log_prob, 0.0),
                    entropy + tf.where(on, step_entropy, 0.0))

        # A graph loop rather than a Python one: a traced training step then
        # has the same few hundred operations however many decisions there
        # are (unrolled, 5 decisions made 2,000 and took seconds to trace).
        steps = len(self.choice_counts)
        *_, log_prob, entropy = tf.while_loop(
            lambda step, *_: step < steps, one_step,
            (tf.constant(0), inputs, hidden, cell, log_prob, entropy),
            maximum_iterations=steps)
        return log_prob, entropy

    def sampler(self):
        """A `NumpySampler` with a copy of the current weights."""
        return NumpySampler(self)

    def get_config(self):
        return {**super().get_config(), "choice_counts": list(self.choice_counts),
                "units": self.units, "temperature": self.temperature,
                "tanh_constant": self.tanh_constant, "seed": self.seed}


def _sigmoid(x):
    # 1 / (1 + exp(-x)) overflows (a RuntimeWarning) for large negative x;
    # this identity does not.
    return 0.5 * (1.0 + np.tanh(0.5 * x))


class NumpySampler:
    """One pass of a `PolicyNetwork`, a decision at a time, in NumPy.

    The same computation as `PolicyNetwork.call` for one sequence, cheap
    enough to run step by step while the oracle decides which decisions are
    active. `probabilities(step)` then `choose(step, index)` per active
    step; `log_prob` accumulates the chosen candidates' log-probabilities.
    """

    def __init__(self, network):
        self.network = network
        self.weights = {name: getattr(network, name).numpy() for name in (
            "start", "kernel", "recurrent_kernel", "bias", "head_kernel", "head_bias",
            "embeddings")}
        self.inputs = self.weights["start"]
        self.hidden = self.cell = np.zeros(network.units, dtype="float32")
        self.log_prob = 0.0
        self._pending = None

    def probabilities(self, step):
        w = self.weights
        gates = self.inputs @ w["kernel"] + self.hidden @ w["recurrent_kernel"] + w["bias"]
        i, f, g, o = np.split(gates, 4)
        cell = _sigmoid(f) * self.cell + _sigmoid(i) * np.tanh(g)
        hidden = _sigmoid(o) * np.tanh(cell)
        logits = (hidden @ w["head_kernel"][step] + w["head_bias"][step])
        logits = logits / self.network.temperature
        if self.network.tanh_constant is not None:
            logits = self.network.tanh_constant * np.tanh(logits)
        logits = logits[: self.network.choice_counts[step]].astype("float64")
        logits -= logits.max()
        probabilities = np.exp(logits) / np.exp(logits).sum()
        self._pending = (step, hidden, cell, probabilities)
        return probabilities

    def choose(self, step, index):
        if self._pending is None or self._pending[0] != step:
            self.probabilities(step)
        _, self.hidden, self.cell, probabilities = self._pending
        self.log_prob += float(np.log(probabilities[index]))
        self.inputs = self.weights["embeddings"][step][index]
        self._pending = None


def decision_candidates(hp, bins=DEFAULT_BINS):
    """The candidates the controller chooses from for hyperparameter `hp`.

    Every value of a discrete decision; for a `Float`, or an `Int` with too
    many values to enumerate, `bins` values at the centres of equal-probability
    intervals of the hyperparameter's own sampling (`hp.prob_to_value`), so a
    log-sampled range gets log-spaced candidates (duplicates of a stepped or
    narrow range are dropped).
    """
    values = candidate_values(hp)
    if values is not None:
        return values
    candidates = []
    for index in range(bins):
        value = hp.prob_to_value((index + 0.5) / bins)
        value = int(value) if isinstance(hp, kt.engine.hyperparameters.Int) else float(value)
        if value not in candidates:
            candidates.append(value)
    return candidates


def nearest_candidate(hp, candidates, value):
    """The index of the candidate nearest to `value` under `hp`'s sampling."""
    if value in candidates:
        return candidates.index(value)
    if not isinstance(hp, (kt.engine.hyperparameters.Float, kt.engine.hyperparameters.Int)):
        return None
    target = hp.value_to_prob(value)
    return int(np.argmin([abs(hp.value_to_prob(c) - target) for c in candidates]))
