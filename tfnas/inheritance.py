"""Weight inheritance: a child starts from its parent's trained weights.

Evolution and local search (`inherit_weights=True`) propose a child one
decision away from a completed parent. The oracle records the parent in the
child's values (`tuner/inherit_from`, with the child's epochs in
`tuner/inherit_epochs`): values are saved in the trial's `trial.json` and
travel to workers over KerasTuner's gRPC channel, so they survive restarts
and distributed searches, as Hyperband's `tuner/trial_id` does. The tuner
then builds the parent, loads its best-epoch checkpoint from the project
directory (`trial_<id>/checkpoint.weights.h5`), and copies weights into the
child layer by layer before training it for the fewer epochs.

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
- starts fresh (Keras's initialisers) otherwise: a changed operation or
  width, a new layer that changes the channels, strides or uses another
  activation, a pooling, and a skip without a projection (the same shape,
  nothing to zero: it adds its source, so the child's function changes).
"""

import dataclasses
import inspect
import os
import time
import warnings

import keras
import keras_tuner as kt
import numpy as np

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
    #: Seconds spent building the parent and loading its checkpoint.
    load_s: float = 0.0
    #: `{layer key: config}` of the parent's `ConvBN` layers (`conv_configs`),
    #: for kernel widening.
    convolutions: dict = dataclasses.field(default_factory=dict)


def load_parent(tuner, trial):
    """The trained weights of `trial`'s parent, or None.

    Builds the parent's architecture in a fresh Keras session and loads its
    checkpoint from the project directory. Call it before building the
    child (KerasTuner's build clears the session again). When the parent's
    checkpoint is missing or does not load (e.g. it trained on a worker that
    did not share the project directory), warns and returns None: the child
    then trains its full epochs from scratch.
    """
    parent_id = parent_of(trial)
    if parent_id is None:
        return None
    start = time.perf_counter()
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
    return Donor(str(parent_id), weights_by_key(model),
                 trial.hyperparameters.values[INHERIT_EPOCHS],
                 load_s=time.perf_counter() - start, convolutions=conv_configs(model))


def weights_by_key(model):
    """`{layer key: [weight values]}` of `model`'s layers that have weights."""
    return {layer.name: [np.asarray(w) for w in layer.weights]
            for layer in model.layers if layer.weights}


def conv_configs(model):
    """`{layer key: config}` of `model`'s `ConvBN` layers."""
    from tfnas.spaces import ops  # the spaces' layers; imported late (no cycle)

    return {layer.name: _conv_config(layer) for layer in model.layers
            if isinstance(layer, ops.ConvBN)}


def _conv_config(layer):
    """What must match, besides a smaller kernel, for kernel widening."""
    return {"kind": layer.kind, "filters": layer.filters, "strides": layer.strides,
            "dilation_rate": layer.dilation_rate, "preactivation": layer.preactivation,
            "activation": _activation_name(layer.activation),
            "kernel_size": layer.kernel_size}


def role(key):
    """The role of a layer key `"{role}.{variant}"` (the key itself without a dot)."""
    return key.rsplit(".", 1)[0]


def inherit(model, donor, fit_kwargs=None):
    """Copies `donor`'s weights into `model`'s matching layers and morphs
    its inserted layers (see the module's docstring).

    Args:
        model: The child, built.
        donor: A `Donor` from `load_parent`, or None (nothing happens).
        fit_kwargs: `model.fit` arguments; the child's epochs are set there.

    Returns:
        Metrics of the child's trial: `inherited_params` (the fraction of its
        parameters copied from the parent), `morphed_layers` (layers that
        start as an identity or a zero skip), `fresh_layers` (layers with
        weights that start from Keras's initialisers) and `inherit_load_s`
        (seconds spent building the parent and loading its checkpoint, not
        part of `train_time_s`); empty without a donor.
    """
    if donor is None:
        return {}
    parent_roles = {role(key) for key in donor.weights}
    inherited = total = morphed = fresh = 0
    for layer in model.layers:
        weights = layer.weights
        if not weights:
            continue
        size = sum(int(np.prod(w.shape)) for w in weights)
        total += size
        source = donor.weights.get(layer.name)
        if source is not None and len(source) == len(weights) and all(
                tuple(s.shape) == tuple(w.shape) for s, w in zip(source, weights)):
            for variable, value in zip(weights, source):
                variable.assign(value)
            inherited += size
        elif role(layer.name) not in parent_roles and morph(layer):
            morphed += 1
        elif widen_kernel(layer, donor):
            morphed += 1
        else:
            fresh += 1
    if fit_kwargs is not None:
        fit_kwargs["epochs"] = donor.epochs
        fit_kwargs["initial_epoch"] = 0
    return {"inherited_params": inherited / total if total else 0.0,
            "morphed_layers": float(morphed), "fresh_layers": float(fresh),
            "inherit_load_s": float(donor.load_s)}


# Function-preserving morphisms.

def widen_kernel(layer, donor):
    """Starts a `ConvBN` whose kernel grew (e.g. conv3x3 -> conv5x5 in the
    same role, the same kind, channels and stride) from the parent's smaller
    kernel, zero-padded around it: with "same" padding it computes exactly
    what the parent's layer did (kernel-size morphing, Wei et al. 2016).
    Returns whether it did; the layer is left untouched when not."""
    from tfnas.spaces import ops  # the spaces' layers; imported late (no cycle)

    if not isinstance(layer, ops.ConvBN):
        return False
    config = _conv_config(layer)
    for key, parent in donor.convolutions.items():
        if (role(key) != role(layer.name) or parent["kernel_size"] >= config["kernel_size"]
                or any(parent[name] != config[name] for name in config
                       if name != "kernel_size")):
            continue
        values = [_centred(value, tuple(w.shape))
                  for value, w in zip(donor.weights[key], layer.weights)]
        if len(values) == len(layer.weights) and all(v is not None for v in values):
            for variable, value in zip(layer.weights, values):
                variable.assign(value)
            return True
    return False


def _centred(value, shape):
    """`value` zero-padded to `shape` around its centre, or None when it
    cannot be (another rank, channels, or an odd difference)."""
    if value.shape == shape:
        return value
    if value.ndim != len(shape) or value.shape[-2:] != shape[-2:]:
        return None
    padding = [target - size for size, target in zip(value.shape, shape)]
    if any(p < 0 or p % 2 for p in padding):
        return None
    return np.pad(value, [(p // 2, p // 2) for p in padding])


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
        conv.depthwise_kernel.assign(_dirac(conv.depthwise_kernel.shape, depthwise=True))
        pointwise = conv.pointwise_kernel
        conv.pointwise_kernel.assign(
            np.eye(channels, dtype="float32").reshape(pointwise.shape))
    elif _depthwise(conv):
        conv.kernel.assign(_dirac(conv.kernel.shape, depthwise=True))
    else:
        conv.kernel.assign(_dirac(conv.kernel.shape, depthwise=False))
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


def _dirac(shape, depthwise):
    """A 1-D or 2-D kernel that copies each input channel to itself: 1 at
    the centre of its spatial dimensions."""
    kernel = np.zeros(shape, dtype="float32")
    centre = tuple(size // 2 for size in shape[:-2])
    for channel in range(shape[-2]):
        kernel[centre + (channel, 0 if depthwise else channel)] = 1.0
    return kernel


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
