"""Weight inheritance: a child starts from its parent's trained weights.

Evolution and local search (`inherit_weights=True`) propose a child one
decision away from a completed parent. The oracle records the parent in the
child's values (`tuner/inherit_from`, with the child's epochs in
`tuner/inherit_epochs`): values are saved in the trial's `trial.json` and
travel to workers over KerasTuner's gRPC channel, so they survive restarts
and distributed searches, as Hyperband's `tuner/trial_id` does. The tuner
then reads the parent's best-epoch weights (from memory when the parent
trained in the same process, `DonorCache`; else it builds the parent and
loads its checkpoint from the project directory,
`trial_<id>/checkpoint.weights.h5`), and copies weights into the child
layer by layer before training it for the fewer epochs.

Matching layers between two builds of a space. A layer's key is its name.
The built-in spaces name every searched layer `"{role}.{variant}"` after the
decision that made it: in the chain space `layer_2.conv3x3` (the operation
of layer 2) and `layer_2_skip_0.shortcut` (layer 2's skip from layer 0); in
the MLP space `layer_1.dense`; in the cell space
`cell_3_block_1_op_0.sep_conv_3x3` and the cells' input projections. Other
layers keep Keras's automatic names, which are the same in every build of a
space because KerasTuner clears the session before each build (the parent
is built in a fresh session too). A child's layer then:

- inherits when the parent has a layer of the same key whose weights all
  have the same shapes (the same role, the same operation, the same
  widths). Layers downstream of a mutation inherit too when their shapes
  allow (Real et al. 2017, "Large-Scale Evolution": weights are inherited
  "whenever possible"); this is what lets an insertion preserve the
  parent's function;
- is morphed (`morph`) when its role is new, i.e. an insertion: a layer added
  by a deeper depth, or a skip switched on. Function-preserving morphisms
  (Net2Net, Chen et al. 2016; network morphism, Wei et al. 2016): a
  stride-1 convolution (regular, separable or depthwise) that keeps its
  channels, followed by batch normalization and a ReLU (or no activation),
  starts as the identity; a `Dense` that keeps its width, with a ReLU or no
  activation, starts as the identity; a skip's 1x1 projection starts with
  a zero batch-normalization scale, so it adds zero. The identity is exact
  in inference when the layer's input is non-negative (it follows a ReLU),
  as in Net2Net; a zero-scaled skip adds exactly zero in training too.
  A convolution whose kernel grew in the same role (conv3x3 -> conv5x5:
  the same kind, channels, stride, dilation and activation) is morphed
  too: it starts from the parent's kernel zero-padded around it, which
  computes the same (kernel-size morphing, Wei et al. 2016);
- is widened (Net2WiderNet, Chen et al. 2016; `tfnas.net2net`) when it has
  more output channels than the parent's layer of the same key (filters
  16 -> 32): its extra channels copy the parent's, and the layers that
  consume them (the next convolution, a pooling's projection, the head)
  split the copied channels' incoming weights among the copies, so the
  child computes the parent's function. An inserted convolution or
  `Dense` wider than its input starts as the identity widened the same
  way. Widened layers and their consumers count as morphed;
- is pruned when no function-preserving start exists but most of the
  parent's layer can be kept: a layer with fewer output channels than the
  parent's (filters 32 -> 16) keeps the parent's channels whose outgoing
  weights (the consumers' incoming weights, e.g. the next convolution's or
  the head's) have the largest L1 norm, and its consumers keep those
  channels' incoming weights (filter pruning, Li et al. 2017); an inserted
  layer narrower than its input starts as the identity on the input's
  most important channels the same way; a convolution whose kernel shrank
  in the same role (conv5x5 -> conv3x3) starts from the centre of the
  parent's kernel. Each started better than Keras's initialisers, after
  the same training, in `benchmarks/results/inheritance_diagnosis*.md`;
- starts from the layer it replaces when a convolution became a pooling or
  a pooling a convolution (`tfnas.op_swap`: the same response to a locally
  constant input; exact for an average pooling away from the borders), and,
  in a shallower child, the layer that read a removed layer folds the
  removed layer's linear part in (`tfnas.layer_removal`: the spaces' head
  after global average pooling): both "pruned";
- starts fresh (Keras's initialisers) otherwise: another kind of
  convolution (a separable for a regular one), a new layer that changes
  the strides or uses another activation, a pooling's projection, and a
  skip without a projection (the same shape, nothing to zero: it adds its
  source, so the child's function changes).

A child trains its fewer epochs under `tfnas.child_schedule`: a short
warm-up, then a cosine decay of the learning rate to zero (as NASH and
LEMONADE train their children), so that Adam's fresh state does not shake
the inherited weights off their trained point.
"""

import collections
import dataclasses
import inspect
import os
import time
import warnings
import zlib

import keras
import keras_tuner as kt
import numpy as np

from tfnas import child_schedule, layer_removal, net2net, op_swap
from tfnas.validation import check_int

INHERIT_FROM = "tuner/inherit_from"
INHERIT_EPOCHS = "tuner/inherit_epochs"
#: Activations under which an identity initialisation preserves a
#: non-negative input.
_IDENTITY_ACTIVATIONS = (None, "linear", "relu")


# The oracle's side.

def check_arguments(inherit_weights, inherit_epochs, halving=None):
    """Validates the oracles' `inherit_weights` and `inherit_epochs` arguments."""
    if not isinstance(inherit_weights, bool):
        raise TypeError(
            "Received an invalid value for `inherit_weights`, expected True or "
            f"False. Received: inherit_weights={inherit_weights!r}")
    check_int(inherit_epochs, "inherit_epochs", 1)
    if inherit_weights and halving is not None:
        raise ValueError(
            "Received `inherit_weights=True` with `halving`: both set a trial's "
            "epochs. Use one of them. Received: "
            f"inherit_weights=True, halving={halving!r}")


def takes_arguments(oracle_class):
    """Whether `oracle_class` takes the `inherit_weights` argument."""
    return "inherit_weights" in inspect.signature(oracle_class).parameters


def child_response(values, parent_trial_id, inherit_epochs):
    """A RUNNING `populate_space` response for a child that inherits from
    the trial `parent_trial_id` and trains `inherit_epochs` epochs."""
    return {"status": "RUNNING",
            "values": {**values, INHERIT_FROM: str(parent_trial_id),
                       INHERIT_EPOCHS: int(inherit_epochs)}}


def parent_of(trial):
    """The id of the trial `trial` inherits from, or None."""
    return trial.hyperparameters.values.get(INHERIT_FROM)


# The tuner's side.

@dataclasses.dataclass
class Donor:
    """The parent's trained weights, by layer key, and its layers' roles."""

    parent_trial_id: str
    weights: dict
    epochs: int
    #: Seconds spent reading the parent's weights (from memory, or building
    #: the parent and loading its checkpoint).
    load_s: float = 0.0
    #: `{layer key: config}` of the parent's `ConvBN` layers (`conv_configs`),
    #: for kernel widening.
    convolutions: dict = dataclasses.field(default_factory=dict)
    #: `{layer key: key of the layer with weights it reads}`
    #: (`layer_removal.upstream_keys`), for shallower children.
    upstream: dict = dataclasses.field(default_factory=dict)


#: Trials whose trained weights a tuner keeps in memory (the latest ones:
#: evolution's parents come from its population, local search's from the
#: incumbent).
REMEMBERED_TRIALS = 64


class DonorCache:
    """The best-epoch weights of a tuner's latest trials, in memory.

    A child whose parent trained in the same process reads them here instead
    of building the parent's model (a second build and compilation) and
    loading its checkpoint. The checkpoint stays the source of truth: a
    restarted search, or a worker whose parent trained elsewhere, reads it.
    """

    def __init__(self, size=REMEMBERED_TRIALS):
        self.size = size
        self._donors = collections.OrderedDict()

    def remember(self, trial_id, weights, convolutions, upstream=None):
        self._donors[str(trial_id)] = (weights, convolutions, upstream or {})
        self._donors.move_to_end(str(trial_id))
        while len(self._donors) > self.size:
            self._donors.popitem(last=False)

    def get(self, trial_id):
        """`(weights, convolutions, upstream)` of trial `trial_id`, or None."""
        return self._donors.get(str(trial_id))


def remember(tuner, trial, model, history=None):
    """Keeps `trial`'s best-epoch weights in `tuner`'s memory for its
    children, when its oracle lets children inherit (an oracle in this
    process: a worker's oracle client does not say, so workers read
    checkpoints). Call it after `model.fit`: unless `history` (the fit's
    `keras.callbacks.History`, in a tuner of one execution per trial) shows
    that the last epoch is the one the tuner's checkpoint holds, it loads
    the best epoch's checkpoint into `model`. Returns the seconds it took."""
    if not getattr(tuner.oracle, "inherit_weights", False):
        return 0.0
    start = time.perf_counter()
    checkpoint = tuner._get_checkpoint_fname(trial.trial_id)
    if not os.path.exists(checkpoint):
        return 0.0
    # With several executions, the checkpoint's best may be an earlier
    # execution's (KerasTuner's `SaveBestEpoch` keeps its best across them),
    # which this execution's `history` cannot show.
    if (getattr(tuner, "executions_per_trial", 1) > 1
            or not _last_epoch_saved(tuner.oracle.objective, history)):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Skipping variable loading")
            model.load_weights(checkpoint)
    _cache(tuner).remember(trial.trial_id, weights_by_key(model), conv_configs(model),
                           layer_removal.upstream_keys(model))
    return time.perf_counter() - start


def _last_epoch_saved(objective, history):
    """Whether KerasTuner's `SaveBestEpoch` saved the last epoch of
    `history` (its rule, replayed: an epoch is saved when its objective
    beats every earlier one, or when its logs lack the objective)."""
    logs = getattr(history, "history", None)
    epochs = len((logs or {}).get("loss", []))
    if not epochs:
        return False
    best = float("-inf") if objective.direction == "max" else float("inf")
    saved = None
    for epoch in range(epochs):
        values = {name: series[epoch] for name, series in logs.items() if epoch < len(series)}
        if not objective.has_value(values):
            saved = epoch
        elif objective.better_than(objective.get_value(values), best):
            best, saved = objective.get_value(values), epoch
    return saved == epochs - 1


def _cache(tuner):
    cache = getattr(tuner, "_inheritance_donors", None)
    if cache is None:
        cache = tuner._inheritance_donors = DonorCache()
    return cache


def load_parent(tuner, trial):
    """The trained weights of `trial`'s parent, or None.

    From the tuner's memory when the parent trained in this process
    (`remember`); else builds the parent's architecture in a fresh Keras
    session and loads its checkpoint from the project directory. Call it
    before building the child (KerasTuner's build clears the session
    again). When the parent's checkpoint is missing or does not load (e.g.
    it trained on a worker that did not share the project directory), warns
    and returns None: the child then trains its full epochs from scratch.
    """
    parent_id = parent_of(trial)
    if parent_id is None:
        return None
    start = time.perf_counter()
    epochs = trial.hyperparameters.values[INHERIT_EPOCHS]
    remembered = _cache(tuner).get(parent_id)
    if remembered is not None:
        return Donor(str(parent_id), remembered[0], epochs,
                     load_s=time.perf_counter() - start, convolutions=remembered[1],
                     upstream=remembered[2])
    checkpoint = kt.Tuner._get_checkpoint_fname(tuner, parent_id)  # the reporter's
    problem = None
    if not os.path.exists(checkpoint):
        problem = f"no checkpoint at {checkpoint}"
    else:
        try:
            parent = tuner.oracle.get_trial(parent_id)
            keras.backend.clear_session()
            model = tuner._build_hypermodel(parent.hyperparameters)
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Skipping variable loading")
                model.load_weights(checkpoint)
        except Exception as error:  # noqa: BLE001 (the child can train from scratch)
            problem = f"{checkpoint} does not load ({type(error).__name__}: {error})"
    if problem is not None:
        warnings.warn(f"Trial {trial.trial_id}: cannot inherit the weights of trial "
                      f"{parent_id}: {problem}; training from scratch.")
        return None
    return Donor(str(parent_id), weights_by_key(model), epochs,
                 load_s=time.perf_counter() - start, convolutions=conv_configs(model),
                 upstream=layer_removal.upstream_keys(model))


def weights_by_key(model):
    """`{layer key: [weight values]}` of `model`'s layers that have weights."""
    return {layer.name: [np.asarray(w) for w in layer.weights]
            for layer in model.layers if layer.weights}


def conv_configs(model):
    """`{layer key: config}` of `model`'s `ConvBN` layers and of its
    poolings followed by a projection (`op_swap.pooling_config`)."""
    configs = {layer.name: _layer_config(layer) for layer in model.layers}
    return {key: config for key, config in configs.items() if config is not None}


def _layer_config(layer):
    from tfnas.spaces import ops  # the spaces' layers; imported late (no cycle)

    if isinstance(layer, ops.ConvBN):
        return _conv_config(layer)
    return op_swap.pooling_config(layer)


def _conv_config(layer):
    """What must match, besides a smaller kernel, for kernel widening."""
    return {"kind": layer.kind, "filters": layer.filters, "strides": layer.strides,
            "dilation_rate": layer.dilation_rate, "preactivation": layer.preactivation,
            "activation": _activation_name(layer.activation),
            "kernel_size": layer.kernel_size}


def role(key):
    """The role of a layer key `"{role}.{variant}"` (the key itself without a dot)."""
    return key.rsplit(".", 1)[0]


def inherit(model, donor, fit_kwargs=None, seed=0):
    """Copies `donor`'s weights into `model`'s matching layers, widens the
    layers that grew (Net2WiderNet) and morphs its inserted layers (see the
    module's docstring).

    Args:
        model: The child, built.
        donor: A `Donor` from `load_parent`, or None (nothing happens).
        fit_kwargs: `model.fit` arguments; the child's epochs are set there,
            and its learning-rate schedule (`tfnas.child_schedule`) added to
            its callbacks.
        seed: Seeds the channels a widened layer copies (e.g. the trial's id).

    Returns:
        Metrics of the child's trial: `inherited_params` (the fraction of its
        parameters copied from the parent as they are), `morphed_layers`
        (layers that start from a function-preserving transformation: an
        identity, a zero skip, a zero-padded kernel, copied channels of a
        wider layer, or the split incoming weights of its consumer),
        `pruned_layers` (layers that start from part of the parent's
        weights: a narrower layer's most important channels, a cropped
        kernel, or the consumer of either), `fresh_layers` (layers with
        weights that start from Keras's initialisers), `inherit_load_s`
        (seconds spent reading the parent's weights) and `inherit_copy_s`
        (seconds spent setting the child's weights), neither part of
        `train_time_s`; empty without a donor.
    """
    if donor is None:
        return {}
    start = time.perf_counter()
    rng = np.random.default_rng(zlib.crc32(str(seed).encode()))
    parent_roles = {role(key) for key in donor.weights}
    channel_maps = {}  # layer name: the ChannelMap of its output, or None
    model_layers = {layer.name for layer in model.layers}
    counts = {"inherited": 0, "morphed": 0, "pruned": 0, "fresh": 0}
    inherited = total = 0
    for layer in model.layers:
        weights = layer.weights
        if not weights:
            channel_maps[layer.name] = net2net.propagated(layer, channel_maps)
            continue
        size = sum(int(np.prod(w.shape)) for w in weights)
        total += size
        outcome, values, channel_maps[layer.name] = _initial_values(
            layer, donor, net2net.input_map(layer, channel_maps), parent_roles, rng,
            model_layers)
        counts[outcome] += 1
        if values is not None:
            for variable, value in zip(weights, values):
                variable.assign(value)
        inherited += size if outcome == "inherited" else 0
    if fit_kwargs is not None:
        fit_kwargs["epochs"] = donor.epochs
        fit_kwargs["initial_epoch"] = 0
        fit_kwargs["callbacks"] = list(fit_kwargs.get("callbacks") or []) + [
            child_schedule.ChildSchedule()]
    return {"inherited_params": inherited / total if total else 0.0,
            "morphed_layers": float(counts["morphed"]),
            "pruned_layers": float(counts["pruned"]),
            "fresh_layers": float(counts["fresh"]),
            "inherit_load_s": float(donor.load_s),
            "inherit_copy_s": time.perf_counter() - start}


def _initial_values(layer, donor, in_map, parent_roles, rng, model_layers):
    """`(outcome, values or None, output channel map)` of a child's layer."""
    source = donor.weights.get(layer.name)
    weights = layer.weights
    if source is not None:
        folded = layer_removal.folded(layer, donor, in_map, model_layers)
        if folded is not None:  # its parent's input was removed: folded in
            return "pruned", folded, None
        if in_map is None and len(source) == len(weights) and all(
                tuple(s.shape) == tuple(w.shape) for s, w in zip(source, weights)):
            return "inherited", source, None
        transferred = net2net.transfer(  # wider or narrower, or after one
            layer, source, in_map, rng,
            importance=net2net.outgoing_importance(layer, donor.weights, model_layers))
        if transferred is not None:
            return (_transferred_outcome(in_map, transferred[1]),) + transferred
        return "fresh", None, None
    if role(layer.name) not in parent_roles:
        if morph(layer):  # a zero skip or an identity of the same width
            return "morphed", None, in_map
        resized = _resized_identity(layer, in_map, rng, net2net.outgoing_importance(
            layer, donor.weights, model_layers))
        if resized is not None:
            return (_transferred_outcome(in_map, resized[1]),) + resized
        return "fresh", None, None
    resized = _resized_kernel(layer, donor, in_map, rng)
    if resized is not None:
        return resized
    config = _layer_config(layer)
    swapped = config and op_swap.swapped(layer, config, donor, in_map, rng,
                                         net2net.outgoing_importance(
                                             layer, donor.weights, model_layers))
    if swapped:  # a convolution for a pooling, or a pooling for a convolution
        return ("pruned",) + swapped
    return "fresh", None, None


def _transferred_outcome(in_map, out_map):
    """"morphed" when a transfer preserves the parent's function, "pruned"
    when it drops channels of the parent (a narrowing, or after one)."""
    return "morphed" if net2net.exact(in_map) and net2net.exact(out_map) else "pruned"


def _resized_identity(layer, in_map, rng, importance):
    """An inserted `ConvBN` or `Dense` wider than its input: the identity on
    its input's channels, widened (Net2DeeperNet then Net2WiderNet). One
    narrower than its input: the identity on the input's channels of
    largest `importance` (those the parent's consumers weigh most), which
    drops the others."""
    if in_map is not None or not _may_be_identity(layer):
        return None
    values = net2net.identity_values(layer)
    if values is None:
        return None
    return net2net.transfer(layer, values, None, rng, importance=importance)


# Function-preserving morphisms.

def _resized_kernel(layer, donor, in_map, rng):
    """A `ConvBN` whose kernel changed size in the same role (e.g. conv3x3
    -> conv5x5: the same kind, channels and stride) starts from the
    parent's kernel. A larger kernel is the parent's zero-padded around it:
    with "same" padding it computes exactly what the parent's layer did
    (kernel-size morphing, Wei et al. 2016). A smaller one is the parent's
    cropped to its centre, the taps that weigh most in a trained kernel
    (not exact: "pruned"; better than Keras's initialisers, see
    benchmarks/results/inheritance_diagnosis.md). Returns `(outcome, values,
    output channel map)`, or None."""
    from tfnas.spaces import ops  # the spaces' layers; imported late (no cycle)

    if not isinstance(layer, ops.ConvBN):
        return None
    config = _conv_config(layer)
    for key, parent in donor.convolutions.items():
        if (role(key) != role(layer.name) or parent["kernel_size"] == config["kernel_size"]
                or any(parent[name] != config[name] for name in config
                       if name != "kernel_size")):
            continue
        grown = parent["kernel_size"] < config["kernel_size"]
        transferred = net2net.transfer(layer, donor.weights[key], in_map, rng,
                                       pad_kernel=grown, crop_kernel=not grown)
        if transferred is not None:
            outcome = _transferred_outcome(in_map, transferred[1])
            return ("morphed" if grown and outcome == "morphed" else "pruned",) + transferred
    return None


def morph(layer):
    """Initialises an inserted `layer` so that it preserves its input's
    function: an identity convolution or dense layer, or a zero skip.
    Returns whether it could; the layer is left untouched when not."""
    from tfnas.spaces import ops  # the spaces' layers; imported late (no cycle)

    if isinstance(layer, ops.Shortcut):
        if layer.project is None:
            return False
        _zero_batch_norm(layer.project.norm)
        return True
    if isinstance(layer, ops.ConvBN):
        return _identity_conv_bn(layer)
    if isinstance(layer, keras.layers.Dense):
        return _identity_dense(layer)
    return False


def _may_be_identity(layer):
    """Whether a `ConvBN` or `Dense` can start as the identity on a
    non-negative input, its width aside."""
    from tfnas.spaces import ops  # the spaces' layers; imported late (no cycle)

    if isinstance(layer, ops.ConvBN):
        return (not layer.preactivation and layer.strides == 1
                and identity_activation(layer.activation))
    return isinstance(layer, keras.layers.Dense) and identity_activation(layer.activation)


def identity_activation(activation):
    """Whether `activation` keeps a non-negative input as it is."""
    return _activation_name(activation) in _IDENTITY_ACTIVATIONS


def _activation_name(activation):
    if activation is None or isinstance(activation, str):
        return activation
    return getattr(activation, "__name__", None)


def _identity_conv_bn(layer):
    if (layer.preactivation or layer.strides != 1
            or _activation_name(layer.activation) not in _IDENTITY_ACTIVATIONS):
        return False
    conv = layer.conv
    channels = _input_channels(conv)
    if channels != layer.filters:
        return False
    if _separable(conv):
        conv.depthwise_kernel.assign(net2net.dirac(conv.depthwise_kernel.shape, depthwise=True))
        pointwise = conv.pointwise_kernel
        conv.pointwise_kernel.assign(
            np.eye(channels, dtype="float32").reshape(pointwise.shape))
    elif _depthwise(conv):
        conv.kernel.assign(net2net.dirac(conv.kernel.shape, depthwise=True))
    else:
        conv.kernel.assign(net2net.dirac(conv.kernel.shape, depthwise=False))
    _identity_batch_norm(layer.norm)
    return True


def _input_channels(conv):
    """The input channels of a 1-D or 2-D convolution: a kernel's shape is
    `(*spatial, in, out)` (or `(*spatial, in, multiplier)`)."""
    kernel = conv.depthwise_kernel if _separable(conv) else conv.kernel
    return kernel.shape[-2]


def _separable(conv):
    return isinstance(conv, (keras.layers.SeparableConv1D, keras.layers.SeparableConv2D))


def _depthwise(conv):
    return isinstance(conv, (keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D))


def _identity_batch_norm(norm):
    """Batch normalization that returns its input in inference."""
    norm.gamma.assign(np.ones(norm.gamma.shape, "float32"))
    norm.beta.assign(np.zeros(norm.beta.shape, "float32"))
    norm.moving_mean.assign(np.zeros(norm.moving_mean.shape, "float32"))
    norm.moving_variance.assign(
        np.full(norm.moving_variance.shape, 1.0 - norm.epsilon, "float32"))


def _zero_batch_norm(norm):
    """Batch normalization that returns zeros (a zero scale and offset)."""
    norm.gamma.assign(np.zeros(norm.gamma.shape, "float32"))
    norm.beta.assign(np.zeros(norm.beta.shape, "float32"))


def _identity_dense(layer):
    kernel = layer.kernel
    if (kernel.shape[0] != kernel.shape[1]
            or _activation_name(layer.activation) not in _IDENTITY_ACTIVATIONS):
        return False
    kernel.assign(np.eye(kernel.shape[0], dtype="float32"))
    if layer.bias is not None:
        layer.bias.assign(np.zeros(layer.bias.shape, "float32"))
    return True
