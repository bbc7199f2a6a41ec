"""Mixed layers: every candidate of one decision inside a supernet.

A mixed layer holds all candidates of an operation choice and one
architecture weight per candidate (`alpha`, trainable, zeros at first). Its
mode says how the candidates are combined:

- "darts" (Liu et al., 2019): the softmax(alpha)-weighted sum of all
  candidates;
- "gdas" (Dong & Yang, 2019): one candidate sampled by Gumbel-softmax with
  temperature `temperature`; only it is computed; the straight-through
  one-hot weight carries the gradient to alpha. The alpha owner draws the
  Gumbel noise at each call; its copies (the same decision in later cells)
  reuse it, so every cell samples the same candidate in a step, as in the
  paper;
- "proxyless" (Cai et al., 2019): binarized paths. In the weight phase one
  candidate, sampled from softmax(alpha), is computed (the memory of one
  path); in the architecture phase two sampled candidates are computed and
  alpha receives the binary-gate gradient renormalized over those two;
- "single_path" (ENAS, SPOS): the candidate in `index` (set from outside,
  e.g. by a sampler or a controller) is the only one computed, and the
  only one to receive gradients.

Outside training, "gdas" and "proxyless" use the candidate of largest
alpha; "darts" keeps its weighted sum.

A "darts" layer's mixing weights can also be perturbed from outside, for
DARTS-PT's selection (`tfnas.supernet.perturbation`): `mask` multiplies
them (a zero removes a candidate), and `projected` (-1 unless set) replaces
them by the one-hot of one candidate.
"""

import keras
import tensorflow as tf

MODES = ("darts", "gdas", "proxyless", "single_path")
WEIGHT_PHASE, ARCHITECTURE_PHASE = 0, 1


def _check_mode(mode):
    if mode not in MODES:
        raise ValueError(
            f"Received an invalid value for `mode`, expected one of {MODES}. "
            f"Received: mode={mode!r}")


def _switch(index, branches):
    return tf.switch_case(tf.cast(index, tf.int32), branches)


@keras.saving.register_keras_serializable(package="tfnas")
class MixedOp(keras.layers.Layer):
    """All candidate operations of one decision, mixed by architecture weights.

    Args:
        candidates: The candidate layers (their outputs must have one shape).
        labels: The candidates' names, as in the decision's values.
        mode: One of `MODES`.
        temperature: The Gumbel-softmax temperature ("gdas"); the strategy
            anneals it with `set_temperature`.
        seed: Seed of the layer's sampling ("gdas", "proxyless").
        alpha_owner: Another `MixedOp` of the same decision whose `alpha`
            (and sampling state) this one uses, e.g. the same operation
            choice in every normal cell: one architecture, separate weights.
            Not part of the config: a saved supernet's copies are untied.
    """

    def __init__(self, candidates, labels, mode="darts", temperature=1.0, seed=None,
                 alpha_owner=None, **kwargs):
        # The architecture weights are read in float32 even under a mixed
        # precision policy (the candidates still compute in float16).
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)
        candidates = list(candidates)
        labels = [str(label) for label in labels]
        if not candidates or len(labels) != len(candidates) or len(set(labels)) != len(labels):
            raise ValueError(
                "Expected as many distinct `labels` as `candidates` (at least one). "
                f"Received: {len(candidates)} candidates, labels={labels}")
        _check_mode(mode)
        if not temperature > 0:
            raise ValueError(
                "Received an invalid value for `temperature`, expected a positive "
                f"number. Received: temperature={temperature!r}")
        self.candidates = candidates
        self.labels = labels
        self.mode = mode
        self.initial_temperature = float(temperature)
        self.seed = seed
        self._seed_generator = keras.random.SeedGenerator(seed)
        if alpha_owner is not None and len(alpha_owner.labels) != len(labels):
            raise ValueError("Expected `alpha_owner` to have the same candidates.")
        # Set past Keras's attribute tracking: the owner's variables belong to
        # the owner only.
        object.__setattr__(self, "_alpha_owner", alpha_owner)

    def build(self, input_shape):
        count = len(self.candidates)
        if self._alpha_owner is None:
            self._alpha = self.add_weight(name="alpha", shape=(count,), initializer="zeros")
            self._index = self.add_weight(name="index", shape=(), dtype="int32",
                                          initializer="zeros", trainable=False)
            self._phase = self.add_weight(name="phase", shape=(), dtype="int32",
                                          initializer="zeros", trainable=False)
            self._temperature = self.add_weight(
                name="temperature", shape=(),
                initializer=keras.initializers.Constant(self.initial_temperature),
                trainable=False)
            # Read in "darts" mode only; created in every mode so that the
            # supernets of one space have the same weights whatever the mode.
            self._mask = self.add_weight(name="mask", shape=(count,), initializer="ones",
                                         trainable=False)
            self._projected = self.add_weight(
                name="projected", shape=(), dtype="int32",
                initializer=keras.initializers.Constant(-1), trainable=False)
            if self.mode == "gdas":
                # The last Gumbel noise drawn, read by the copies.
                self._gumbel = self.add_weight(name="gumbel", shape=(count,),
                                               initializer="zeros", trainable=False)
            if self.mode == "proxyless":
                # The candidates sampled at the last training call (see `support`).
                self._support = self.add_weight(name="support", shape=(count,),
                                                initializer="zeros", trainable=False)
        for candidate in self.candidates:
            if isinstance(candidate, keras.layers.Layer) and not candidate.built:
                candidate.build(input_shape)
        self.built = True

    def _owner(self):
        return self._alpha_owner or self

    @property
    def alpha(self):
        """The architecture weights, one per candidate (shared with the owner)."""
        return self._owner()._alpha

    @property
    def index(self):
        return self._owner()._index

    @property
    def phase(self):
        return self._owner()._phase

    @property
    def temperature(self):
        return self._owner()._temperature

    @property
    def support(self):
        """ProxylessNAS: 1.0 for the candidates the owner sampled at its last
        training call (one in the weight phase, two in the architecture
        phase), 0.0 elsewhere. Layers weighted by this decision's output
        (elastic layers, `tfnas.supernet.elastic.mix`) compute only those."""
        return self._owner()._support

    @property
    def mask(self):
        return self._owner()._mask

    @property
    def projected(self):
        return self._owner()._projected

    def probabilities(self):
        """softmax(alpha): the learned distribution over the candidates."""
        return tf.nn.softmax(self.alpha)

    def mixing_weights(self):
        """The "darts" weights of the candidates: softmax(alpha), or the
        one-hot of the `projected` candidate once set, times `mask`."""
        probabilities = tf.nn.softmax(self.alpha)  # float16 under mixed precision
        weights = tf.where(self.projected >= 0,
                           tf.one_hot(self.projected, len(self.candidates),
                                      dtype=probabilities.dtype),
                           probabilities)
        return weights * tf.cast(self.mask, probabilities.dtype)

    def set_index(self, index):
        self.index.assign(int(index))

    def set_phase(self, phase):
        self.phase.assign(int(phase))

    def set_temperature(self, temperature):
        self.temperature.assign(float(temperature))

    def _branches(self, inputs, training):
        return [lambda c=c: c(inputs, training=training) if _takes_training(c) else c(inputs)
                for c in self.candidates]

    def call(self, inputs, training=None):
        branches = self._branches(inputs, training)
        if self.mode == "darts":
            # One `Unpack` (and one `Pack` in the gradient), not a strided
            # slice per candidate and its gradient: ~4,000 fewer nodes in a
            # cell supernet's gradient function, the same values.
            weights = tf.unstack(self.mixing_weights(), num=len(self.candidates))
            outputs = [branch() for branch in branches]
            self._check_shapes(outputs)
            return tf.add_n([_gate(weight, output) for weight, output in zip(weights, outputs)])
        if not self.built or not getattr(self, "_shapes_checked", False):
            self._check_shapes([branch() for branch in branches])
        if self.mode == "single_path":
            return _switch(self.index, branches)
        if not training:
            return _switch(tf.argmax(self.alpha), branches)
        if self.mode == "gdas":
            return self._gdas(branches)
        return self._proxyless(branches)

    def compute_output_spec(self, inputs, training=None):
        # The candidates' own output specs (from their `compute_output_shape`
        # where they have one), not Keras's default, which traces this call:
        # every candidate's ops, symbolically, whenever the supernet is
        # called on symbolic inputs (its build, `fit`'s symbolic build):
        # 41 % of a cell supernet's build.
        if not all(isinstance(c, keras.layers.Layer) for c in self.candidates):
            return super().compute_output_spec(inputs, training=training)
        specs = [candidate.compute_output_spec(inputs) for candidate in self.candidates]
        self._check_shapes(specs)
        return specs[0]

    def _check_shapes(self, outputs):
        shapes = {label: tuple(output.shape[1:]) for label, output in zip(self.labels, outputs)}
        if len(set(shapes.values())) > 1:
            raise ValueError(
                f"{self.name}: a supernet mixes the candidates of a decision, so "
                f"they must give outputs of one shape. Received: {shapes}. Make the "
                "space's candidates agree (e.g. project pooling to the same "
                "channels) to search it with weight sharing.")
        object.__setattr__(self, "_shapes_checked", True)

    def _gdas(self, branches):
        if self._alpha_owner is None:
            uniform = keras.random.uniform(self.alpha.shape, minval=1e-10, maxval=1.0,
                                           seed=self._seed_generator)
            gumbel = -tf.math.log(-tf.math.log(uniform))
            self._gumbel.assign(gumbel)
        else:
            # The owner (an earlier cell) has drawn this step's noise.
            gumbel = tf.convert_to_tensor(self._alpha_owner._gumbel)
        soft = tf.nn.softmax((self.alpha + gumbel) / self.temperature)
        index = tf.argmax(soft, output_type=tf.int32)
        hard = tf.one_hot(index, len(branches))
        straight_through = hard - tf.stop_gradient(soft) + soft
        return _gate(straight_through[index], _switch(index, branches))

    def _sample(self, logits):
        return keras.random.categorical(logits[tf.newaxis], 1, seed=self._seed_generator)[0, 0]

    def _sampled(self, *indices):
        """Records `indices` as the owner's `support` (copies sample their own
        paths and leave it alone)."""
        if self._alpha_owner is None:
            hot = tf.add_n([tf.one_hot(i, len(self.candidates)) for i in indices])
            self._support.assign(tf.minimum(hot, 1.0))

    def _proxyless(self, branches):
        def weight_phase():
            index = tf.cast(self._sample(tf.stop_gradient(self.alpha)), tf.int32)
            self._sampled(index)
            return _switch(index, branches)

        def architecture_phase():
            # Two distinct paths sampled from softmax(alpha); the gate is
            # renormalized over them, and only they are computed.
            first = tf.cast(self._sample(tf.stop_gradient(self.alpha)), tf.int32)
            masked = tf.tensor_scatter_nd_update(
                tf.stop_gradient(self.alpha), [[first]], [-1e9])
            second = tf.cast(self._sample(masked), tf.int32)
            if len(branches) == 1:
                second = first
            self._sampled(first, second)
            pair = tf.stack([first, second])
            pair_probabilities = tf.nn.softmax(tf.gather(self.alpha, pair))
            chosen = tf.cast(self._sample(tf.math.log(tf.stop_gradient(pair_probabilities))),
                             tf.int32)
            gates = (tf.one_hot(chosen, 2) - tf.stop_gradient(pair_probabilities)
                     + pair_probabilities)
            return (_gate(gates[0], _switch(first, branches))
                    + _gate(gates[1], _switch(second, branches)))

        return tf.cond(tf.equal(self.phase, ARCHITECTURE_PHASE), architecture_phase,
                       weight_phase)

    def get_config(self):
        return {**super().get_config(),
                "candidates": [keras.saving.serialize_keras_object(c) for c in self.candidates],
                "labels": list(self.labels), "mode": self.mode,
                "temperature": self.initial_temperature, "seed": self.seed}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["candidates"] = [keras.saving.deserialize_keras_object(c)
                                for c in config["candidates"]]
        return cls(**config)


def _gate(weight, output):
    """`weight * output` in the output's dtype (float16 under mixed precision,
    where the architecture weights stay float32)."""
    return tf.cast(weight, output.dtype) * output


def _takes_training(layer):
    return isinstance(layer, keras.layers.Layer)
