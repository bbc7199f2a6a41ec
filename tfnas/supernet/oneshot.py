"""One-shot training of a supernet.

`OneShotModel` wraps a supernet built by `build_supernet` and trains it with
`fit` on pairs of batches `((x_train, y_train), (x_val, y_val))`: before each
weight step on the training batch, its strategy (`tfnas.supernet.strategies`:
DARTS, GDAS, ProxylessNAS, SPOS, ENAS, or any registered one) takes its
architecture step, e.g. DARTS's Adam step on the alphas on the validation
batch (`architecture_step`, first or second order).
"""

import keras
import numpy as np
import tensorflow as tf

from tfnas import checkpoints, compat
from tfnas.data import leave_order_to_dataset
from tfnas.graph_options import lean_graph_optimization
from tfnas.optimizers import FusedAdam
from tfnas.supernet import memory


class OneShotModel(keras.Model):
    """A supernet trained by a one-shot strategy (see the module docstring).

    Args:
        supernet: The model from `build_supernet`.
        builder: Its `SupernetBuilder` (the mixed layers by decision).
        strategy: A registered one-shot strategy name ("darts", "darts2",
            "gdas", "proxyless", "spos", "enas", ...) or a
            `tfnas.supernet.strategies.OneShotStrategy`.
        architecture_optimizer: Optimizer of the alphas; defaults to DARTS's
            Adam(3e-4, beta_1=0.5) (`tfnas.optimizers.FusedAdam`).
        second_order: DARTS's unrolled (second-order) architecture gradient
            (also on when the strategy asks for it, as "darts2" does).
        latency: Optional `{decision name: [ms per candidate]}` for the
            expected-latency term.
        latency_weight: Weight of the expected latency in the architecture
            loss ("proxyless", "darts", "gdas").
        warmup_steps: Weight steps before the first architecture step. At
            initialization the weights are random, and the alphas of
            parameter-free candidates (skip, zero) win early for no good
            reason (a known failure of DARTS); a warm-up avoids it.
        seed: Seed of SPOS's path sampling.
    """

    def __init__(self, supernet, builder, strategy="darts", architecture_optimizer=None,
                 second_order=False, latency=None, latency_weight=0.0, warmup_steps=0,
                 seed=None, **kwargs):
        from tfnas.supernet import strategies  # imports this module

        super().__init__(**kwargs)
        self.strategy = strategies.resolve(strategy)
        self.supernet = supernet
        self.builder = builder
        self.second_order = bool(second_order) or self.strategy.second_order
        self.architecture_optimizer = architecture_optimizer or FusedAdam(3e-4, beta_1=0.5)
        if self.dtype_policy.name == "mixed_float16" and not isinstance(
                self.architecture_optimizer, keras.optimizers.LossScaleOptimizer):
            # As `compile` does for the weights' optimizer: float16 gradients
            # underflow unless the loss is scaled.
            self.architecture_optimizer = keras.optimizers.LossScaleOptimizer(
                self.architecture_optimizer)
        self.latency_weight = float(latency_weight)
        self.warmup_steps = int(warmup_steps)
        self.mixed_layers = [layer for layer in supernet.layers if hasattr(layer, "alpha")]
        self.decisions = dict(builder.mixed)  # name -> owner MixedOp
        self._latency = {name: tf.constant(values, dtype="float32")
                         for name, values in (latency or {}).items()}
        self._rng = tf.random.Generator.from_seed(0 if seed is None else seed)
        # Built now, in the strategy's scope: an optimizer that creates its
        # slots inside a replica's step fails under a distribution strategy.
        self.architecture_optimizer.build(self.alphas)

    @property
    def alphas(self):
        return [layer.alpha for layer in self.decisions.values()]

    def _weights(self):
        alpha_ids = {id(v) for v in self.alphas}
        return [v for v in self.supernet.trainable_variables if id(v) not in alpha_ids]

    def call(self, inputs, training=None):
        return self.supernet(inputs, training=training)

    def fit(self, *args, **kwargs):
        kwargs = leave_order_to_dataset(args, kwargs)
        self._build_state(args[0] if args else kwargs.get("x"))
        if getattr(self, "_release", None) is None:  # once per model: one first step
            object.__setattr__(self, "_release", memory.ReleaseAfterFirstStep())
            kwargs["callbacks"] = [*(kwargs.get("callbacks") or []), self._release]
        # Grappler's defaults spend a third of the first step on passes that
        # change nothing in a supernet's graph (see graph_options).
        with lean_graph_optimization():
            return super().fit(*args, **kwargs)

    def _build_state(self, data):
        """Creates the optimizer's slots and the metrics' variables before
        `fit` traces the train step. Without a distribution strategy Keras
        leaves them to the step's first trace, and a `tf.function` whose
        first trace creates variables is traced a second time: the whole
        supernet's train step twice, the first graph thrown away (20 s of
        CPU and 0.6 GB on the cell space)."""
        if self._distribute_strategy is not None:
            return  # Keras builds them before tracing (in the strategy's scope)
        if self.optimizer is not None and not self.optimizer.built:
            self.optimizer.build(self._weights())
        if isinstance(data, tf.data.Dataset):
            # Shapes and dtypes are all it reads: zeros, not a batch drawn
            # from `data` (an extra pass would move its shuffling).
            self._symbolic_build(data_batch=tf.nest.map_structure(
                lambda spec: tf.zeros([1 if n is None else n for n in spec.shape], spec.dtype),
                data.element_spec))

    def evaluate(self, *args, **kwargs):
        with lean_graph_optimization():
            return super().evaluate(*args, **kwargs)

    def _symbolic_build(self, iterator=None, data_batch=None):
        # Under a distribution strategy Keras builds metrics from one batch,
        # read as (x, y): here a ((x, y), (x_val, y_val)) pair. Build from
        # the training half.
        if (iterator is None and isinstance(data_batch, (tuple, list))
                and len(data_batch) == 2 and isinstance(data_batch[0], (tuple, list))):
            data_batch = tuple(data_batch[0])
        if data_batch is not None and self._build_compiled_state(data_batch):
            return
        return super()._symbolic_build(iterator=iterator, data_batch=data_batch)

    def _build_compiled_state(self, data_batch):
        """Builds the compiled loss and metrics from the built supernet's
        output spec, as Keras's `_symbolic_build` does from a symbolic call
        of the whole model (a trace of every candidate's forward pass, 3 s
        of CPU on the cell space, thrown away). Returns whether it could
        (a built supernet of one output, an `(x, y)` batch)."""
        outputs = self.supernet.outputs if self.supernet.built else None
        compiled_state = compat.keras_compiled_state(self)
        if (not outputs or len(outputs) != 1 or not isinstance(data_batch, tuple)
                or len(data_batch) != 2 or compiled_state is None):
            return False
        y = data_batch[1]
        y_true = keras.KerasTensor(y.shape, keras.backend.standardize_dtype(y.dtype))
        y_pred = keras.KerasTensor(outputs[0].shape, outputs[0].dtype)
        for compiled in compiled_state:
            if compiled is not None and not compiled.built:
                compiled.build(y_true, y_pred)
        checkpoints.build_optimizer(self)
        return True

    def probabilities(self):
        """`{decision: {candidate: probability}}` under the current alphas."""
        return {name: dict(zip(layer.labels, tf.nn.softmax(layer.alpha).numpy().tolist()))
                for name, layer in self.decisions.items()}

    def _expected_latency(self):
        total = tf.constant(0.0)
        for name, costs in self._latency.items():
            total += tf.reduce_sum(tf.nn.softmax(self.decisions[name].alpha) * costs)
        return total

    def _loss(self, x, y, training=True):
        predictions = self.supernet(x, training=training)
        return self.compute_loss(x=x, y=y, y_pred=predictions), predictions

    def _loss_and_gradients(self, x, y, latency_weight=0.0, scale=1.0):
        """`(loss, predictions, alpha gradients, weight gradients)` of the
        training loss on `(x, y)`, the gradients those of
        `scale * (loss + latency_weight * expected latency)` (zeros where a
        variable gets none).

        Every architecture and weight step of a train step (two for DARTS,
        five for its second order) differs only in its data, so under
        `fit` they call one `tf.function` (`_shared_gradients`): the
        supernet's forward and backward pass is traced once per train step
        graph instead of once per step kind. Tracing the supernet, not
        running it, is what a one-epoch search spends its time and memory
        on (see benchmarks/supernet_cost.py).
        """
        alphas, weights = self.alphas, self._weights()
        with tf.GradientTape() as tape:
            loss, predictions = self._loss(x, y)
            objective = (loss + latency_weight * self._expected_latency()) * scale
        gradients = tape.gradient(objective, alphas + weights)
        gradients = [tf.zeros_like(v) if g is None else tf.convert_to_tensor(g)
                     for g, v in zip(gradients, alphas + weights)]
        return loss, predictions, gradients[:len(alphas)], gradients[len(alphas):]

    def _gradients(self, x, y, latency_weight=0.0, optimizer=None):
        """`_loss_and_gradients` through the shared traced function when
        inside a graph on one replica (directly otherwise: eagerly, and under
        a multi-replica strategy, whose replicas capture their own
        variables)."""
        scale = 1.0 if optimizer is None else optimizer.scale_loss(tf.constant(1.0))
        scale = tf.cast(scale, tf.float32)
        latency_weight = tf.constant(latency_weight, tf.float32)
        if (tf.executing_eagerly()
                or tf.distribute.get_strategy().num_replicas_in_sync > 1):
            return self._loss_and_gradients(x, y, latency_weight, scale)
        if getattr(self, "_shared_gradients", None) is None:
            object.__setattr__(self, "_shared_gradients",
                               tf.function(self._loss_and_gradients, autograph=False))
        return self._shared_gradients(x, y, latency_weight, scale)

    def set_phase(self, phase):
        """Sets every mixed layer's phase (ProxylessNAS)."""
        for layer in self.decisions.values():
            layer.phase.assign(phase)

    def sample_paths(self):
        """Points every mixed layer at a uniformly sampled candidate (SPOS)."""
        for layer in self.decisions.values():
            layer.index.assign(self._rng.uniform((), 0, len(layer.labels), dtype=tf.int32))

    def architecture_step(self, x_train, y_train, x_val, y_val):
        """One optimizer step of the alphas on the validation batch (DARTS)."""
        weights, alphas = self._weights(), self.alphas
        if self.second_order:
            gradients = self._unrolled_gradients(x_train, y_train, x_val, y_val, weights)
            # The optimizer unscales what it applies (mixed precision).
            gradients = [self.architecture_optimizer.scale_loss(g) for g in gradients]
        else:
            _, _, gradients, _ = self._gradients(x_val, y_val, self.latency_weight,
                                                 self.architecture_optimizer)
        gradients = self._with_penalty(gradients, alphas)
        # During the warm-up the gradient is zero, so Adam leaves the alphas
        # as they are (no branch: a synchronization point inside a
        # conditional is not allowed under a distribution strategy).
        active = tf.cast(self.optimizer.iterations >= self.warmup_steps, tf.float32)
        self.architecture_optimizer.apply(
            [tf.zeros_like(a) if g is None else active * g for g, a in zip(gradients, alphas)],
            alphas)

    def _with_penalty(self, gradients, alphas):
        """`gradients` of the alphas plus the (loss-scaled) gradient of the
        strategy's `architecture_penalty`, if it has one."""
        with tf.GradientTape() as tape:
            penalty = self.strategy.architecture_penalty(alphas)
            if penalty is None:
                return gradients
            scaled = self.architecture_optimizer.scale_loss(penalty)
        return [g + p for g, p in zip(gradients, tape.gradient(scaled, alphas))]

    def _unrolled_gradients(self, x_train, y_train, x_val, y_val, weights):
        """DARTS eq. 7-8: d/dalpha L_val(w - xi * dL_train/dw, alpha), with the
        Hessian-vector product by finite differences."""
        xi = tf.cast(self.optimizer.learning_rate, tf.float32)
        backup = [tf.identity(w) for w in weights]
        _, _, _, train_gradients = self._gradients(x_train, y_train)
        for w, g in zip(weights, train_gradients):
            w.assign_sub(xi * g)
        _, _, alpha_gradients, vector = self._gradients(x_val, y_val, self.latency_weight)
        epsilon = 0.01 / (tf.linalg.global_norm(vector) + 1e-12)

        def train_alpha_gradients(sign):
            for w, b, v in zip(weights, backup, vector):
                w.assign(b + sign * epsilon * v)
            return self._gradients(x_train, y_train)[2]

        plus, minus = train_alpha_gradients(1.0), train_alpha_gradients(-1.0)
        for w, b in zip(weights, backup):
            w.assign(b)
        return [g - xi * (p - m) / (2 * epsilon)
                for g, p, m in zip(alpha_gradients, plus, minus)]

    def train_step(self, data):
        (x_train, y_train), (x_val, y_val) = data
        self.strategy.architecture_step(self, x_train, y_train, x_val, y_val)
        # The loss scaled under mixed precision.
        loss, predictions, _, gradients = self._gradients(x_train, y_train,
                                                          optimizer=self.optimizer)
        self.optimizer.apply(gradients, self._weights())
        return self._report(loss, y_train, predictions)

    def _report(self, loss, y, predictions):
        # `compute_loss` divides by the replicas (their gradients are summed);
        # report the loss of the batch itself.
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        for metric in self.metrics:
            if metric.name == "loss":
                metric.update_state(loss * replicas)
            else:
                metric.update_state(y, predictions)
        return {metric.name: metric.result() for metric in self.metrics}

    def test_step(self, data):
        x, y = data
        loss, predictions = self._loss(x, y, training=False)
        return self._report(loss, y, predictions)


class ProbabilityLog(keras.callbacks.Callback):
    """Records the architecture distribution after every epoch.

    `rows` holds `{"epoch", "decision", "candidate", "probability"}` dicts.
    """

    def __init__(self):
        super().__init__()
        self.rows = []

    def on_epoch_end(self, epoch, logs=None):
        for decision, probabilities in self.model.probabilities().items():
            for candidate, probability in probabilities.items():
                self.rows.append({"epoch": epoch + 1, "decision": decision,
                                  "candidate": candidate, "probability": probability})


def paired(train, validation):
    """`((x_train, y_train), (x_val, y_val))` batches for bi-level training:
    the validation data repeats as long as the training data lasts."""
    return tf.data.Dataset.zip((train, validation.repeat()))


def derive(model):
    """The candidate of largest alpha per decision, as decision values
    (inactive ones included: see `tfnas.supernet.search.derived_architecture`)."""
    return {name: model.builder.values[name][int(np.argmax(layer.alpha.numpy()))]
            for name, layer in model.decisions.items()}
