"""`SearchSpace`: what every built-in space shares.

A space subclasses `SearchSpace` and implements `build_features(hp, inputs)`
(the searched body, declared with the `tfnas.decisions` primitives), `size()`
and, optionally, `describe(values)`. The base class validates the input shape,
number of classes and task, adds the head (global pooling for images, then a
softmax or linear layer), compiles the model and round-trips its arguments
through `get_config`.
"""

import keras
import keras_tuner as kt

from tfnas import validation
from tfnas.architecture import Architecture

TASKS = ("classification", "regression")
#: The name of every candidate's output layer (its key for `tfnas.inheritance`).
HEAD = "head.dense"
_SHAPE_NAMES = {1: "(features,)", 2: "(length, channels)", 3: "(height, width, channels)"}


class SearchSpace(kt.HyperModel):
    """Base class of the built-in search spaces.

    Args:
        input_shape: Shape of one input example (without the batch axis).
        num_classes: Number of classes (at least 2) for classification, or
            number of targets (at least 1) for regression.
        task: "classification" (softmax, sparse categorical cross-entropy,
            accuracy) or "regression" (linear outputs, mean squared error,
            mean absolute error).
        learning_rate: Adam's learning rate.
    """

    #: The space's name in `tfnas.spaces.SPACES` and the CLI.
    space_name = None
    #: Number of axes of one input example the space accepts: an int, a
    #: tuple of ints, or None for any.
    input_rank = 3
    #: The dtype of the model's input ("int32" for token ids).
    input_dtype = "float32"

    def __init__(self, input_shape, num_classes, task="classification",
                 learning_rate=1e-3):
        super().__init__(name=self.space_name)
        try:
            input_shape = tuple(int(dim) for dim in input_shape)
        except (TypeError, ValueError):
            input_shape = ()
        ranks = (self.input_rank,) if isinstance(self.input_rank, int) else self.input_rank
        if not input_shape or min(input_shape) < 1 or (
            ranks is not None and len(input_shape) not in ranks
        ):
            expected = " or ".join(_SHAPE_NAMES.get(rank, f"{rank} positive dimensions")
                                   for rank in ranks) if ranks else "positive dimensions"
            raise ValueError(
                f"Received an invalid value for `input_shape`, expected "
                f"{expected}. Received: input_shape={input_shape}"
            )
        if task not in TASKS:
            raise ValueError(
                f"Received an invalid value for `task`, expected one of {TASKS}. "
                f"Received: task={task!r}"
            )
        minimum = 2 if task == "classification" else 1
        check_int_range(num_classes, "num_classes", minimum,
                        expected=f"an integer >= {minimum} for {task}")
        if not learning_rate > 0:
            raise ValueError(
                "Received an invalid value for `learning_rate`, expected a "
                f"positive number. Received: learning_rate={learning_rate!r}"
            )
        self.input_shape = input_shape
        self.num_classes = num_classes
        self.task = task
        self.learning_rate = float(learning_rate)

    def build_features(self, hp, inputs):
        """Declares the decisions and returns the features before the head."""
        raise NotImplementedError

    def size(self):
        """The number of distinct architectures (assignments of active decisions)."""
        raise NotImplementedError

    def describe(self, values):
        """A one-line summary of an architecture given its decision values."""
        return Architecture(values).summary()

    def diagram(self, values):
        """The architecture as graphs to draw (see `tfnas.plots`).

        Returns:
            A list of graphs, each a dict with "nodes" (labels, in drawing
            order), "edges" (`(source, target, label)` node indices) and an
            optional "title". By default, a chain of the `describe` parts
            separated by " > ".
        """
        return [chain_graph(self.describe(values).split(" > "))]

    def build(self, hp):
        inputs = keras.Input(self.input_shape, dtype=self.input_dtype)
        x = self.build_features(hp, inputs)
        if len(x.shape) == 4:
            x = keras.layers.GlobalAveragePooling2D()(x)
        elif len(x.shape) > 2:
            x = keras.layers.Flatten()(x)
        # The head is named, so that weight inheritance matches it across
        # depths (Keras's automatic names count the layers built before it).
        # It stays float32 under a mixed-precision policy, as Keras
        # advises: a float16 softmax and loss lose precision.
        if self.task == "classification":
            outputs = keras.layers.Dense(self.num_classes, activation="softmax",
                                         dtype="float32", name=HEAD)(x)
            loss, metrics = "sparse_categorical_crossentropy", ["accuracy"]
        else:
            outputs = keras.layers.Dense(self.num_classes, dtype="float32", name=HEAD)(x)
            loss, metrics = "mean_squared_error", ["mean_absolute_error"]
        model = keras.Model(inputs, outputs, name=f"{self.space_name}_candidate")
        model.compile(optimizer=keras.optimizers.Adam(self.learning_rate),
                      loss=loss, metrics=metrics)
        return model

    def get_config(self):
        """The constructor arguments; `type(space)(**space.get_config())` rebuilds it."""
        return {
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "task": self.task,
            "learning_rate": self.learning_rate,
        }


def chain_graph(layers, extra_edges=(), title=None):
    """A diagram graph: input, the `layers` in sequence, output.

    `extra_edges` are `(source, target, label)` between layer indices (e.g.
    skip connections); layer `i` is node `i + 1`.
    """
    nodes = ["input", *layers, "output"]
    edges = [(i, i + 1, "") for i in range(len(nodes) - 1)]
    edges += [(source + 1, target + 1, label) for source, target, label in extra_edges]
    return {"title": title, "nodes": nodes, "edges": edges}


def check_choices(values, name, kind=None, allowed=None):
    """Validates a non-empty tuple of distinct candidate values."""
    try:
        values = tuple(values)
    except TypeError:
        values = ()
    bad = [v for v in values if (kind is not None and (
        isinstance(v, bool) or not isinstance(v, kind)))
        or (allowed is not None and v not in allowed)]
    if not values or bad or len(set(values)) != len(values):
        expected = f"a subset of {tuple(allowed)}" if allowed is not None else (
            "distinct values")
        raise ValueError(
            f"Received an invalid value for `{name}`, expected a non-empty "
            f"tuple of {expected}. Received: {name}={values!r}"
        )
    return values


def check_int_range(value, name, low, high=None, expected=None):
    """Validates an integer in [low, high] (`tfnas.validation.check_int`)."""
    return validation.check_int(value, name, low, high, expected)
