"""The one room where tfnas reaches into KerasTuner, Keras and TensorFlow internals.

Each private symbol tfnas uses is looked up here, by a function that says
why it is needed, when it is needed (never at import, and no patch is ever
applied on import). Each is guarded: outside the versions tfnas was tested
with, or when upstream renamed the symbol, the lookup raises a
`CompatibilityError` that names the symbol, the installed and the tested
versions and the way out. `tests/test_compat.py` holds one canary test per
symbol, which fails when upstream changes what tfnas relies on.
"""

import contextlib
import importlib
import re
import threading

import keras
import keras_tuner as kt

#: The versions tfnas was tested with: [lowest, first untested).
TESTED = {"keras-tuner": ((1, 4, 7), (1, 5)), "keras": ((3, 3), (4,))}
_INSTALLED = {"keras-tuner": kt.__version__, "keras": keras.__version__}
_CHECKED = set()  # the installed packages found tested


class CompatibilityError(RuntimeError):
    """An installed library lacks an internal that tfnas relies on."""


def version_tuple(text):
    """`"1.4.8"` -> `(1, 4, 8)`; a suffix such as `rc1` or `.dev0` is dropped."""
    return tuple(int(n) for n in re.match(r"\d+(?:\.\d+)*", text).group().split("."))


def _tested_range(package):
    low, high = TESTED[package]
    return (f"{package}>={'.'.join(map(str, low))},<{'.'.join(map(str, high))}")


def is_tested(package, version=None):
    """Whether `version` (by default the installed one) of `package`
    ("keras-tuner" or "keras") is in the range tfnas was tested with."""
    low, high = TESTED[package]
    return low <= version_tuple(version or _INSTALLED[package]) < high


def check_version(package, version=None):
    """Raises a `CompatibilityError` unless `package` is a tested version."""
    if version is None and package in _CHECKED:
        return
    if not is_tested(package, version):
        raise CompatibilityError(
            f"tfnas relies on internals of {package}, and was tested with "
            f"{_tested_range(package)}. Received: {package}=="
            f"{version or _INSTALLED[package]}. Install a tested version, e.g. "
            f"`pip install '{_tested_range(package)}'`.")
    if version is None:
        _CHECKED.add(package)


def _private(module, name, why, package="keras-tuner"):
    """`module.name`, a private symbol of `package`, looked up with a guard."""
    check_version(package)
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as error:
        raise CompatibilityError(
            f"tfnas needs `{module}.{name}` ({why}), which {package}=="
            f"{_INSTALLED[package]} does not have. tfnas was tested with "
            f"{_tested_range(package)}; install one of those versions.") from error


def _attribute(owner, name, why):
    """`owner.name`, a private attribute of a KerasTuner object, with a guard."""
    check_version("keras-tuner")
    try:
        return getattr(owner, name)
    except AttributeError as error:
        raise CompatibilityError(
            f"tfnas needs `{type(owner).__name__}.{name}` ({why}), which "
            f"keras-tuner=={kt.__version__} does not have. tfnas was tested with "
            f"{_tested_range('keras-tuner')}; install one of those versions.") from error


# KerasTuner.

def keras_tuner_module(name):
    """KerasTuner's private module `keras_tuner.src.<name>` (e.g. "protos",
    "distribute.oracle_chief"): its gRPC chief and client, which tfnas's
    distributed search extends. Only a missing module is an error here, so
    that `import tfnas` works with any keras-tuner; patches check versions."""
    module = f"keras_tuner.src.{name}"
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise CompatibilityError(
            f"tfnas needs `{module}` (KerasTuner's distributed search), which "
            f"keras-tuner=={kt.__version__} does not have. tfnas was tested with "
            f"{_tested_range('keras-tuner')}; install one of those versions.") from error


def oracle_lock_tables():
    """KerasTuner's per-oracle `LOCKS` and `THREADS` (keyed by oracle), which
    its `synchronized` uses; tfnas's own `synchronized` shares them so that a
    lock taken by either is seen by both."""
    module = "keras_tuner.src.engine.oracle"
    why = "to share KerasTuner's per-oracle lock"
    return _private(module, "LOCKS", why), _private(module, "THREADS", why)


@contextlib.contextmanager
def oracle_lock(oracle):
    """Holds KerasTuner's lock of `oracle`, re-entrant as its `synchronized`
    (a thread that holds it already goes on), and releases it on any exit."""
    locks, threads = oracle_lock_tables()
    thread = threading.current_thread().name
    if threads[oracle] == thread:
        yield
        return
    with locks[oracle]:
        threads[oracle] = thread
        try:
            yield
        finally:
            threads[oracle] = None


def _condition_to_proto(condition):
    """`conditions.Parent.to_proto` without the debugging `print` of
    KerasTuner 1.4 (one line per conditional decision per gRPC message)."""
    proto = keras_tuner_module("protos").get_proto()
    first = condition.values[0]
    if isinstance(first, str):
        kind = "string_value"
    elif isinstance(first, bool):
        kind = "boolean_value"
    elif isinstance(first, int):
        kind = "int_value"
    else:
        kind = "float_value"
    return proto.Condition(parent=proto.Condition.Parent(
        name=condition.name,
        values=[proto.Value(**{kind: value}) for value in condition.values]))


def quiet_condition_protos():
    """Replaces KerasTuner's `conditions.Parent.to_proto`, which prints every
    conditional decision of every gRPC message, by the same conversion
    without the print. Called by the chief and the workers of a distributed
    search (it changes the class for the whole process); idempotent."""
    parent = _private("keras_tuner.src.engine.conditions", "Parent",
                      "to silence its debugging print in distributed search")
    parent.to_proto = _condition_to_proto


def retry_queue(oracle):
    """The oracle's queue of trial ids to run again (a list; no public API):
    a restarted chief gives running trials back to their workers, and
    orphaned trials are queued for a retry."""
    return _attribute(oracle, "_retry_queue", "to requeue or hand back running trials")


def display_has_started(oracle, trial_id):
    """Whether the oracle's display recorded the start of `trial_id` (its
    `on_trial_end` raises KeyError otherwise; no public check)."""
    display = _attribute(oracle, "_display", "to show trials handed back after a reload")
    return trial_id in _attribute(display, "trial_start", "to show trials handed back "
                                  "after a reload")


def show_trial_start(oracle, trial):
    """Records `trial`'s start in the oracle's display unless it has been
    (a no-op when the oracle's verbose is 0)."""
    if not display_has_started(oracle, trial.trial_id):
        _attribute(oracle, "_display", "to show trials handed back after a reload"
                   ).on_trial_begin(trial)


def tuner_callback_class():
    """KerasTuner's `TunerCallback`, the callback `Tuner.run_trial` adds to
    `fit` (its batch hooks are no-ops unless a tuner overrides them)."""
    return _private("keras_tuner.src.engine.tuner_utils", "TunerCallback",
                    "to mark KerasTuner's per-batch callback async-safe")


def save_best_epoch_class():
    """KerasTuner's `SaveBestEpoch` checkpoint callback (replaced by an
    atomic writer)."""
    return _private("keras_tuner.src.engine.tuner_utils", "SaveBestEpoch",
                    "to write trial checkpoints atomically")


def keras_tuner_io():
    """KerasTuner's `backend.io` (the write path of non-chief workers of a
    multi-worker strategy, and its clean-up)."""
    return _private("keras_tuner.src.backend", "io",
                    "to write checkpoints where KerasTuner would")


def wrapped_oracle(client):
    """The oracle inside KerasTuner's worker `OracleClient` (its `_oracle`)."""
    return _attribute(client, "_oracle", "to wrap a worker's oracle client")


# Keras.

def keras_weights_writer():
    """Keras's `(H5IOStore, _save_state)`, what `model.save_weights` runs on the
    `.weights.h5` file it opens (it accepts only paths; tfnas writes to memory)."""
    module = "keras.src.saving.saving_lib"
    why = "to write a weights file in memory, then atomically"
    return (_private(module, "H5IOStore", why, "keras"),
            _private(module, "_save_state", why, "keras"))


def keras_trainer_internals():
    """Keras's `(tree, backend.tensorflow.trainer)` modules, whose multi-worker
    reduction and symbolic build `tfnas.distributed.use_multi_worker_keras`
    replaces (tensorflow/tensorflow#72388)."""
    check_version("keras")
    try:
        return (importlib.import_module("keras.src.tree"),
                importlib.import_module("keras.src.backend.tensorflow.trainer"))
    except ImportError as error:
        raise CompatibilityError(
            f"tfnas needs `keras.src.tree` and `keras.src.backend.tensorflow.trainer` "
            f"for multi-worker training, which keras=={keras.__version__} does not "
            f"have. tfnas was tested with {_tested_range('keras')}.") from error


def keras_symbolic_build(model):
    """`model._symbolic_build`, Keras's `Trainer` method that creates the
    optimizer's, compiled metrics' and loss tracker's variables for a batch
    structure (what `fit` runs first under a distribution strategy), or None
    outside the tested Keras versions or when Keras lacks it: `tfnas.prebuild`
    runs it before `fit` so that a new model's training step traces once,
    an optimisation that `fit` does without."""
    if not is_tested("keras"):
        return None
    return getattr(model, "_symbolic_build", None)


def keras_compiled_state(model):
    """`(model._compile_metrics, model._compile_loss)`, the compiled metrics
    and loss that Keras's `Trainer` builds in `_symbolic_build`, or None
    outside the tested Keras versions or when Keras lacks them:
    `OneShotModel` builds them from a supernet's output spec instead of a
    symbolic pass over every candidate, an optimisation `fit` does without."""
    if not is_tested("keras") or not all(
            hasattr(model, name) for name in ("_compile_metrics", "_compile_loss")):
        return None
    return model._compile_metrics, model._compile_loss


def keras_graph_neighbours(layer):
    """`(inbound layers, outbound layers)` of `layer` in its functional
    model, read from Keras's private `_inbound_nodes` (its first node: a
    candidate is built once in a fresh session, so each layer has one) and
    `_outbound_nodes`; `([], [])` outside the tested Keras versions or when
    Keras lacks them: `tfnas.net2net` then maps no channels through the
    graph (inherited layers that need a map start fresh)."""
    if not is_tested("keras"):
        return [], []
    inbound = getattr(layer, "_inbound_nodes", None) or []
    outbound = getattr(layer, "_outbound_nodes", None) or []
    return ([parent.operation for parent in inbound[0].parent_nodes] if inbound else [],
            [node.operation for node in outbound])


def keras_adam_slots(optimizer):
    """A function `variable -> (momentum, velocity)` giving a built Keras
    Adam's slot variables (its private `_momentums`, `_velocities` and
    `_get_variable_index`), or None outside the tested Keras versions or
    when Keras lacks them: `tfnas.optimizers.FusedAdam` then runs Keras's
    own update."""
    names = ("_momentums", "_velocities", "_get_variable_index")
    if not is_tested("keras") or not all(hasattr(optimizer, name) for name in names):
        return None

    def slots(variable):
        index = optimizer._get_variable_index(variable)
        return optimizer._momentums[index], optimizer._velocities[index]
    return slots


# TensorFlow.

def freeze_to_graph(concrete_function):
    """A concrete function with its variables folded into constants, as a
    graph (for the v1 FLOPs profiler); TensorFlow has no public equivalent."""
    try:
        from tensorflow.python.framework.convert_to_constants import (
            convert_variables_to_constants_v2_as_graph,
        )
    except ImportError as error:
        raise CompatibilityError(
            "tfnas counts FLOPs with TensorFlow's "
            "`convert_variables_to_constants_v2_as_graph`, which this TensorFlow "
            "does not have; pass count_flops=False.") from error
    frozen, _ = convert_variables_to_constants_v2_as_graph(concrete_function)
    return frozen.graph


@contextlib.contextmanager
def function_rewrites(**rewrites):
    """Functions first run in this context (on this thread) are optimized by
    grappler with `rewrites` (fields of TensorFlow's `RewriterConfig`) on top
    of the current settings; the previous settings come back on exit.

    `tf.config.optimizer.set_experimental_options` exposes only some of those
    fields, so this sets the eager context's function-call options, the
    `ConfigProto` TensorFlow hands to every function it instantiates
    (`tensorflow.python.eager.context`, not public API).
    """
    try:
        from tensorflow.core.protobuf import config_pb2
        from tensorflow.python.eager import context

        eager = context.context()
        previous = eager.function_call_options
        config = config_pb2.ConfigProto.FromString(previous.config_proto_serialized)
        for name, value in rewrites.items():
            setattr(config.graph_options.rewrite_options, name, value)
        options = context.FunctionCallOptions(executor_type=previous.executor_type,
                                              config_proto=config)
    except (ImportError, AttributeError) as error:
        raise CompatibilityError(
            "tfnas sets grappler's options for a supernet's functions through "
            "`tensorflow.python.eager.context.context().function_call_options`, "
            "which this TensorFlow does not have.") from error
    eager.function_call_options = options
    try:
        yield
    finally:
        eager.function_call_options = previous
