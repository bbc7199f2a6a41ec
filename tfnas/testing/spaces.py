"""The search-space conformance suite."""

import dataclasses
import statistics
import time

import numpy as np

from tfnas.architecture import Architecture
from tfnas.validation import is_integer
from tfnas.sampling import sample_architectures  # noqa: F401 (re-exported)


@dataclasses.dataclass
class SpaceReport:
    """What `check_space` measured."""

    size: int
    architectures: int
    min_params: int
    max_params: int
    median_build_seconds: float


def _fail(message, values):
    raise AssertionError(f"{message}\n  architecture: {Architecture(values).to_json()}")


def _random_inputs(space, rng, shape):
    """Normal floats, or token ids below `space.vocabulary_size` for integer inputs."""
    if str(getattr(space, "input_dtype", "float32")).startswith("int"):
        return rng.integers(0, space.vocabulary_size, size=shape).astype("int32")
    return rng.normal(size=shape).astype("float32")


def check_space(space, num_architectures=8, seed=0, batch_size=2):
    """Checks the contract of a search space on sampled architectures.

    For each of `num_architectures` architectures sampled with a fixed seed:
    the values are plain and hold exactly the active decisions (no inactive
    decision, none undiscovered); the model builds, maps a batch of random
    inputs to outputs of the right shape with finite values and takes one
    finite training step; building again from the `Architecture` gives the
    same architecture and the same parameter count; `describe` gives one
    line. The space's `size()` is a positive integer and its config
    round-trips.

    Raises:
        AssertionError: naming the failed check and the architecture.

    Returns:
        A `SpaceReport`.
    """
    size = space.size()
    if not is_integer(size) or size < 1:
        raise AssertionError(f"size() must be a positive int. Received: {size!r}")
    config = space.get_config()
    if type(space)(**config).get_config() != config:
        raise AssertionError("get_config() does not round-trip through the constructor")

    space_hp, samples = sample_architectures(space, num_architectures, seed)
    if not samples:
        raise AssertionError("the oracle could not sample any architecture")
    rng = np.random.default_rng(seed)
    inputs = _random_inputs(space, rng, (batch_size,) + tuple(space.input_shape))
    if space.task == "classification":
        targets = rng.integers(0, space.num_classes, size=(batch_size,))
    else:
        targets = rng.normal(size=(batch_size, space.num_classes)).astype("float32")

    params, build_seconds = [], []
    for values in samples:
        architecture = Architecture(values)
        hp = space_hp.copy()
        hp.values = dict(values)
        start = time.perf_counter()
        model = space.build(hp)
        build_seconds.append(time.perf_counter() - start)
        built = Architecture.from_hyperparameters(hp)
        if built != architecture:
            extra = sorted(set(built.values) - set(values))
            inactive = sorted(set(values) - set(built.values))
            _fail(f"decisions differ after building: undiscovered {extra}, "
                  f"inactive {inactive}", values)

        outputs = np.asarray(model(inputs, training=False))
        if outputs.shape != (batch_size, space.num_classes):
            _fail(f"output shape {outputs.shape}, expected "
                  f"{(batch_size, space.num_classes)}", values)
        if not np.all(np.isfinite(outputs)):
            _fail("non-finite outputs", values)
        # Eagerly: tracing a graph train step of a mobile-sized candidate
        # costs seconds on a CPU and checks nothing more about the space.
        model.run_eagerly = True
        loss = model.train_on_batch(inputs, targets, return_dict=True)["loss"]
        if not np.isfinite(loss):
            _fail(f"non-finite training loss {loss}", values)

        rebuilt_hp = architecture.to_hyperparameters()
        rebuilt = space.build(rebuilt_hp)
        if Architecture.from_hyperparameters(rebuilt_hp) != architecture:
            _fail("building from the Architecture gives another architecture", values)
        if rebuilt.count_params() != model.count_params():
            _fail(f"parameter count {rebuilt.count_params()} when rebuilt, "
                  f"{model.count_params()} before", values)
        description = space.describe(values)
        if not isinstance(description, str) or not description or "\n" in description:
            _fail(f"describe() must give one non-empty line: {description!r}", values)
        params.append(model.count_params())

    return SpaceReport(size=size, architectures=len(samples), min_params=min(params),
                       max_params=max(params),
                       median_build_seconds=statistics.median(build_seconds))
