"""Training-free proxies: scores of untrained networks that rank architectures.

Each proxy scores a freshly initialised network on one batch of training
data (synflow on one all-ones input), without any training step; a larger
score predicts a better architecture. The computations run in graph mode
(`tf.function`), the whole batch at once.

- synflow (Tanaka et al. 2020): sum of abs(w * dR/dw), R the sum of the
  logits of the network with every weight made positive, on one all-ones
  input, batch normalization removed, in float64;
- naswot (Mellor et al. 2021): log-determinant of the kernel of the ReLU
  on/off patterns of a batch, K[i, j] = units on which examples i and j agree;
- snip (Lee et al. 2019): sum of abs(w * dL/dw), L the batch's cross-entropy;
- grad_norm (Abdelfattah et al. 2021): sum over weight tensors of the
  Euclidean norm of dL/dw;
- jacob_cov (Mellor et al. 2020, v1): -sum(log(v + k) + 1 / (v + k)) over the
  eigenvalues v of the correlation matrix of the examples' input Jacobians,
  k = 1e-5;
- params, flops: the number of parameters and the FLOPs of one forward pass
  on one example (`tfnas.estimation`), the baselines a proxy must beat.

As in Abdelfattah et al.'s zero-cost proxies, the weights scored by synflow,
snip and grad_norm are those of convolutions and dense layers (every
trainable variable of rank 2 or more; biases and normalization parameters
aside); outputs are logits (the input of a final softmax); naswot, snip,
grad_norm and jacob_cov run batch normalization in training mode (batch
statistics), as the papers' code runs the network. The model's weights are
restored afterwards.

Activation patterns (naswot) are read from the traced graph: the inputs of
every ReLU-like op (Relu, Relu6, Elu, Selu, LeakyRelu), Sigmoid (swish is
x * sigmoid(x)), Tanh and Erf (GELU); an on/off code is whether that input
is positive, which for a ReLU is whether the unit is active.

A network that computes nothing (e.g. all-zero weights) scores 0 on synflow,
snip and grad_norm, and -inf on naswot and jacob_cov (a singular kernel,
constant Jacobians): last, whatever the real ones score.
"""

import hashlib
import math

import keras
import numpy as np
import tensorflow as tf

from tfnas import estimation, gc_scope
from tfnas.validation import check_positive_int

PROXIES = ("synflow", "naswot", "snip", "grad_norm", "jacob_cov", "params", "flops")
#: The proxies that need no data (params and flops count; synflow takes ones).
BASELINES = ("params", "flops")
JACOB_COV_K = 1e-5
#: The most architectures `sample_space` enumerates.
ENUMERATION_LIMIT = 100_000
_PATTERN_OPS = ("Relu", "Relu6", "Elu", "Selu", "LeakyRelu", "Sigmoid", "Tanh", "Erf")
_PASS_THROUGH_OPS = ("Identity", "Cast")


def check_proxy(proxy, argument="proxy"):
    """Raises a clear error unless `proxy` is one of `PROXIES`."""
    if proxy not in PROXIES:
        raise ValueError(f"Received an invalid value for `{argument}`, expected one of "
                         f"{PROXIES}. Received: {argument}={proxy!r}")
    return proxy


def _check_proxies(proxies):
    proxies = [proxies] if isinstance(proxies, str) else list(proxies)
    if not proxies:
        raise ValueError("Received no proxy, expected one or more of "
                         f"{PROXIES}. Received: proxies={proxies!r}")
    return [check_proxy(p, "proxies") for p in proxies]


# The batch.

POOL = 4096


def proxy_batch(data, batch_size=64, seed=0):
    """The one batch of examples every architecture is scored on.

    The first `POOL` examples of the data (every example of digits and
    MNIST-1D, whatever order a shuffling dataset yields them in) are put in
    a canonical order (by a hash of their bytes), then `batch_size` of them
    are chosen by `seed`: the batch depends on the data and the seed only.

    Args:
        data: `(x, y)` arrays, a `tf.data.Dataset` of `(x, y)` pairs (batched
            or not), or a `tfnas.data.SearchData` (its training split).
        batch_size: Number of examples.
        seed: Seed of the choice.

    Returns:
        `(x, y)` as numpy arrays with `batch_size` examples (fewer when the
        data holds fewer).
    """
    check_positive_int(batch_size, "batch_size")
    if hasattr(data, "train") and hasattr(data, "input_shape"):
        data = data.train
    if isinstance(data, tf.data.Dataset):
        xs, ys, count = [], [], 0
        batched = data.element_spec[0].shape.rank and data.element_spec[0].shape[0] is None
        for x, y in data:
            x, y = np.asarray(x), np.asarray(y)
            if not batched:
                x, y = x[None], y[None]
            xs.append(x)
            ys.append(y)
            count += len(x)
            if count >= POOL:
                break
        x, y = np.concatenate(xs), np.concatenate(ys)
    elif isinstance(data, (tuple, list)) and len(data) == 2:
        x, y = np.asarray(data[0]), np.asarray(data[1])
    else:
        raise ValueError(
            "Received an invalid value for `data`, expected (x, y) arrays, a "
            "tf.data.Dataset of (x, y) pairs or a tfnas.data.SearchData. "
            f"Received: data={type(data).__name__}")
    x, y = x[:POOL], y[:POOL]
    digests = [hashlib.blake2b(x[i].tobytes() + y[i].tobytes(), digest_size=16).digest()
               for i in range(len(x))]
    canonical = np.asarray(sorted(range(len(x)), key=digests.__getitem__))
    chosen = canonical[np.random.default_rng(seed).permutation(len(x))[:batch_size]]
    return x[chosen], y[chosen]


# Helpers on models.

def _all_layers(model):
    # Keras has no public recursive walk over nested layers; batch
    # normalization inside tfnas's ops (e.g. ConvBN) is only reached this way.
    return model._flatten_layers(include_self=False, recursive=True)


def _scored_weights(model):
    """Weights of convolutions and dense layers: trainable, rank >= 2."""
    return [v for v in model.trainable_variables if len(v.shape) >= 2]


def _logits(outputs):
    """The input of a final softmax (through Identity/Cast ops), else `outputs`."""
    tensor = outputs
    while tensor.op.type in _PASS_THROUGH_OPS and tensor.op.inputs:
        tensor = tensor.op.inputs[0]
    return tensor.op.inputs[0] if tensor.op.type == "Softmax" else outputs


def _call(model, x, training):
    return model(x, training=training)


class _RestoredWeights:
    """Restores every weight of `model` (BN statistics included) on exit."""

    def __init__(self, model):
        self.model = model

    def __enter__(self):
        self.saved = [np.array(v.numpy()) for v in self.model.weights]
        return self

    def __exit__(self, *exc):
        for variable, value in zip(self.model.weights, self.saved):
            variable.assign(value)


def _loss(logits, y):
    if y.dtype.is_integer:
        labels = tf.reshape(tf.cast(y, tf.int32), [-1])
        return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=labels, logits=tf.cast(logits, tf.float32)))
    return tf.reduce_mean(tf.square(tf.cast(logits, tf.float32) - tf.cast(y, tf.float32)))


# The proxies on a built model.

def synflow(model):
    """SynFlow of `model` (its weights are restored afterwards).

    Every weight is replaced by its absolute value, batch normalization by
    the identity (scale 1, shift 0, mean 0, variance 1 - epsilon, in
    inference mode), and R = sum of the logits on one all-ones example; the
    score is sum(abs(w * dR/dw)) over the weights of convolutions and dense
    layers. Build the model under the "float64" dtype policy to avoid
    overflow in deep networks (`score_architecture` does).
    """
    with _RestoredWeights(model):
        for variable in model.weights:
            variable.assign(tf.abs(variable))
        for layer in _all_layers(model):
            if isinstance(layer, keras.layers.BatchNormalization):
                for name, value in (("gamma", 1.0), ("beta", 0.0), ("moving_mean", 0.0),
                                    ("moving_variance", 1.0 - layer.epsilon)):
                    variable = getattr(layer, name, None)
                    if variable is not None:
                        variable.assign(tf.fill(variable.shape, value))
        weights = _scored_weights(model)
        ones = tf.ones([1] + list(model.inputs[0].shape[1:]), dtype=model.inputs[0].dtype)

        @tf.function
        def score(x):
            with tf.GradientTape() as tape:
                r = tf.reduce_sum(tf.cast(_logits(_call(model, x, False)), tf.float64))
            grads = tape.gradient(r, weights)
            return tf.add_n([tf.reduce_sum(tf.abs(tf.cast(w, tf.float64) * tf.cast(g, tf.float64)))
                             for w, g in zip(weights, grads) if g is not None]
                            + [tf.constant(0.0, tf.float64)])

        return float(score(ones))


BATCH_PROXIES = ("naswot", "snip", "grad_norm", "jacob_cov")


def batch_statistics(model, x, y=None, proxies=BATCH_PROXIES):
    """One forward pass over the batch (batch normalization in training
    mode) and what the batch proxies need from it, traced once.

    Returns:
        A dict with, as `proxies` need them: "codes", the (N, units) binary
        activation patterns (naswot); "jacobians", the (N, input size)
        gradients of the summed logits with respect to each example
        (jacob_cov); "snip" and "grad_norm" of the cross-entropy's
        gradients with respect to the weights.
    """
    proxies = [check_proxy(p, "proxies") for p in proxies]
    weights = _scored_weights(model)
    wants_loss = "snip" in proxies or "grad_norm" in proxies

    @tf.function
    def statistics(x, y):
        graph = tf.compat.v1.get_default_graph()
        before = len(graph.get_operations())
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(x)
            logits = _logits(_call(model, x, True))
            total = tf.reduce_sum(logits)
            loss = _loss(logits, y) if wants_loss else None
        found = {}
        if "naswot" in proxies:
            patterns = [op.inputs[0] for op in graph.get_operations()[before:]
                        if op.type in _PATTERN_OPS]
            found["codes"] = tf.concat(
                [tf.zeros([tf.shape(x)[0], 0])]
                + [tf.reshape(tf.cast(p > 0, tf.float32), [tf.shape(p)[0], -1])
                   for p in patterns], axis=1)
        if "jacob_cov" in proxies:
            found["jacobians"] = tf.reshape(tape.gradient(total, x), [tf.shape(x)[0], -1])
        if wants_loss:
            pairs = [(tf.cast(w, tf.float64), tf.cast(g, tf.float64))
                     for w, g in zip(weights, tape.gradient(loss, weights)) if g is not None]
            zero = [tf.constant(0.0, tf.float64)]
            found["snip"] = tf.add_n([tf.reduce_sum(tf.abs(w * g)) for w, g in pairs] + zero)
            found["grad_norm"] = tf.add_n([tf.norm(g) for _, g in pairs] + zero)
        return found

    if y is None:
        y = np.zeros(len(x), dtype="int32")
    with _RestoredWeights(model):
        return {k: v.numpy() for k, v in statistics(tf.constant(x), tf.constant(y)).items()}


def snip(model, x, y):
    """SNIP: sum(abs(w * dL/dw)) for the cross-entropy L of the batch."""
    return float(batch_statistics(model, x, y, ["snip"])["snip"])


def grad_norm(model, x, y):
    """Sum over the weight tensors of the Euclidean norm of dL/dw."""
    return float(batch_statistics(model, x, y, ["grad_norm"])["grad_norm"])


def activation_codes(model, x):
    """The binary activation pattern of each example of `x`: an (N, units)
    float32 array, 1 where the unit's pre-activation is positive."""
    return batch_statistics(model, x, None, ["naswot"])["codes"]


def naswot_kernel(codes):
    """K[i, j] = number of units on which examples i and j agree (N_A minus
    their Hamming distance), from `activation_codes`."""
    codes = np.asarray(codes, dtype="float64")
    return codes @ codes.T + (1.0 - codes) @ (1.0 - codes).T


def naswot_score(codes):
    """log|K| of `naswot_kernel(codes)`; -inf when K is singular (e.g. two
    examples with the same pattern), as the paper's slogdet gives."""
    sign, logdet = np.linalg.slogdet(naswot_kernel(codes))
    return float(logdet) if sign > 0 else -math.inf


def naswot(model, x):
    """NASWOT: log|K| of the activation-pattern kernel of the batch."""
    return naswot_score(activation_codes(model, x))


def jacob_cov_score(jacobians):
    """-sum(log(v + k) + 1/(v + k)) over the eigenvalues v of the correlation
    matrix of the rows of `jacobians`; -inf when a row is constant."""
    rows = np.asarray(jacobians, dtype="float64")
    with np.errstate(invalid="ignore", divide="ignore"):
        correlation = np.corrcoef(rows)
    if not np.all(np.isfinite(correlation)):
        return -math.inf
    values = np.linalg.eigvalsh(correlation)
    return float(-np.sum(np.log(values + JACOB_COV_K) + 1.0 / (values + JACOB_COV_K)))


def jacob_cov(model, x):
    """jacob_cov of the input Jacobians of the summed logits."""
    return jacob_cov_score(batch_statistics(model, x, None, ["jacob_cov"])["jacobians"])


def score_model(model, proxies, batch=None):
    """Scores of a built model: `{proxy: float}`.

    The batch proxies share one traced pass (`batch_statistics`). Each
    proxy traces its `tf.function` for this model: TensorFlow's warning
    about functions retraced in a loop is silenced meanwhile (retracing for
    every architecture is the point).

    Args:
        model: A built Keras model with a fixed input shape, untrained.
        proxies: A proxy name or a list of them (`PROXIES`).
        batch: `(x, y)` from `proxy_batch`; needed by naswot, snip,
            grad_norm and jacob_cov.
    """
    proxies = _check_proxies(proxies)
    needs_data = [p for p in proxies if p in BATCH_PROXIES]
    if needs_data and batch is None:
        raise ValueError(f"Received `batch=None`; the proxies {needs_data} need a batch "
                         "of examples: pass `batch=tfnas.proxies.proxy_batch(data)`.")
    scores = {}
    with _quiet_tensorflow():
        if needs_data:
            found = batch_statistics(model, batch[0], batch[1], needs_data)
            for proxy in needs_data:
                if proxy == "naswot":
                    scores[proxy] = naswot_score(found["codes"])
                elif proxy == "jacob_cov":
                    scores[proxy] = jacob_cov_score(found["jacobians"])
                else:
                    scores[proxy] = float(found[proxy])
        if "synflow" in proxies:
            scores["synflow"] = synflow(model)
        if "params" in proxies:
            scores["params"] = float(estimation.count_params(model))
        if "flops" in proxies:
            flops = estimation.count_flops(model)
            scores["flops"] = math.nan if flops is None else float(flops)
    return {proxy: scores[proxy] for proxy in proxies}


class _quiet_tensorflow:
    def __enter__(self):
        self.logger = tf.get_logger()
        self.level = self.logger.level
        self.logger.setLevel("ERROR")

    def __exit__(self, *exc):
        self.logger.setLevel(self.level)


# The proxies on architectures of a space.

def build(space, values, seed=0, dtype_policy=None):
    """`space`'s model for the decision values `values`, its weights
    initialised from `seed` (Keras's global seed is set)."""
    from tfnas.architecture import Architecture
    from tfnas.tuner import dtype_policy_scope

    keras.utils.set_random_seed(seed)
    hp = Architecture(values).to_hyperparameters()
    if dtype_policy is None:
        return space.build(hp)
    with dtype_policy_scope(dtype_policy):
        return space.build(hp)


def score_architecture(space, values, proxies, batch=None, seed=0):
    """Scores of one architecture of `space`: `{proxy: float}`.

    The model is built with weights initialised from `seed` (the same seed
    for every architecture); synflow's copy is built in float64.
    """
    proxies = _check_proxies(proxies)
    keras.backend.clear_session()
    scores = {}
    others = [p for p in proxies if p != "synflow"]
    if others:
        scores.update(score_model(build(space, values, seed), others, batch))
    if "synflow" in proxies:
        float64_model = build(space, values, seed, dtype_policy="float64")
        scores.update(score_model(float64_model, ["synflow"]))
    return {p: scores[p] for p in proxies}


def score_architectures(space, architectures, proxies, batch=None, seed=0, progress=None):
    """Scores of many architectures: a list of `{proxy: float}`, in order.

    Args:
        progress: Optional callable `(done, count)` after each architecture.
    """
    results = []
    architectures = list(architectures)
    # Each architecture's `clear_session` collects garbage: over only what
    # the loop made, not all of TensorFlow (as between a search's trials).
    with gc_scope.SearchCollections():
        for index, values in enumerate(architectures):
            results.append(score_architecture(space, values, proxies, batch, seed))
            if progress is not None:
                progress(index + 1, len(architectures))
    return results


def standardized(scores):
    """Scores as a zero-mean, unit-variance float64 array: a feature for a
    predictor. -inf (and NaN) become one below the smallest finite score."""
    column = np.asarray(scores, dtype="float64")
    finite = np.isfinite(column)
    if not finite.any():
        return np.zeros(len(column))
    column[~finite] = column[finite].min() - 1.0
    scale = column.std()
    return (column - column.mean()) / (scale if scale > 0 else 1.0)


def rank_key(score):
    """Sort key, best first: larger scores first, NaN last."""
    return (math.isnan(score), -score if not math.isnan(score) else 0.0)


class ProxyScorer:
    """An architecture's proxy score, cached by architecture.

    Args:
        space: The search space.
        proxy: One of `PROXIES`.
        batch: `(x, y)` from `proxy_batch` (None for params, flops and
            synflow, or until `set_batch`).
        seed: Seed of the weights every architecture is scored with.
    """

    def __init__(self, space, proxy, batch=None, seed=0):
        self.space = space
        self.proxy = check_proxy(proxy)
        self.batch = batch
        self.seed = int(seed)
        self._cache = {}

    def set_batch(self, batch):
        """Sets the batch, once (later calls keep the first, so scores stay
        comparable across a search)."""
        if self.batch is None:
            self.batch = batch

    def __call__(self, values):
        from tfnas.architecture import Architecture

        key = Architecture(values).hash
        if key not in self._cache:
            self._cache[key] = score_architecture(
                self.space, values, [self.proxy], self.batch, self.seed)[self.proxy]
        return self._cache[key]


def rank(space, proxy, batch=None, architectures=None, samples=None, seed=0,
         progress=None):
    """Ranks architectures of `space` by a proxy, best first, without training.

    Args:
        space: The search space.
        proxy: One of `PROXIES`.
        batch: `(x, y)` from `proxy_batch` (not needed by params, flops,
            synflow).
        architectures: Decision-value dicts to rank; default: every
            architecture when the space has at most `samples` (or 100,000)
            of them, else `samples` random ones (seeded).
        samples: How many random architectures to rank.
        seed: Seed of the sampling and of the weights.

    Returns:
        A list of `(values, score)`, best first (ties keep sampling order).
    """
    check_proxy(proxy)
    if architectures is None:
        architectures = sample_space(space, samples, seed)
    scores = score_architectures(space, architectures, [proxy], batch, seed, progress)
    order = sorted(range(len(architectures)),
                   key=lambda i: rank_key(scores[i][proxy]))
    return [(architectures[i], scores[i][proxy]) for i in order]


def sample_space(space, samples=None, seed=0):
    """Every architecture of `space` when there are at most `samples` (or
    100,000 without `samples`), else `samples` random distinct ones."""
    from tfnas import moves
    from tfnas.sampling import sample_architectures

    if samples is not None:
        check_positive_int(samples, "samples")
    size = space.size()
    limit = ENUMERATION_LIMIT if samples is None else samples
    if size <= limit:
        hyperparameters, _ = sample_architectures(space, 1, seed)
        every = moves.enumerate_architectures(hyperparameters.space, ENUMERATION_LIMIT)
        if every is not None:
            return every
    if samples is None:
        raise ValueError(f"The space has {size} architectures, too many to rank them all "
                         f"(more than {ENUMERATION_LIMIT}): pass `samples` (--samples N) to "
                         "rank a random sample.")
    return sample_architectures(space, samples, seed)[1]
