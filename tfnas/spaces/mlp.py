"""The MLP space for tabular (or flattened) inputs."""

import keras

from tfnas import decisions
from tfnas.spaces.base import SearchSpace, check_choices, check_int_range


class MLPSpace(SearchSpace):
    """A multilayer perceptron of 1 to 6 hidden layers.

    Decisions: `num_layers`; per hidden layer i (active only when i is below
    the depth) `layer_{i}/units` and `layer_{i}/activation`. Inputs of any
    shape are flattened.

    Args:
        input_shape, num_classes, task, learning_rate: see `SearchSpace`.
        min_layers: Smallest number of hidden layers, at least 1.
        max_layers: Largest number of hidden layers.
        units: Candidate widths.
        activations: Candidate activations (Keras names).
    """

    space_name = "mlp"
    input_rank = None

    def __init__(self, input_shape, num_classes, task="classification",
                 learning_rate=1e-3, min_layers=1, max_layers=6,
                 units=(16, 32, 64, 128, 256), activations=("relu", "tanh", "elu", "swish")):
        super().__init__(input_shape, num_classes, task, learning_rate)
        self.min_layers = check_int_range(min_layers, "min_layers", 1)
        self.max_layers = check_int_range(max_layers, "max_layers", self.min_layers)
        self.units = check_choices(units, "units", int)
        if min(self.units) < 1:
            raise ValueError(f"Expected positive `units`. Received: units={units}")
        self.activations = check_choices(activations, "activations", str)
        for activation in self.activations:
            keras.activations.get(activation)  # raises on unknown names

    def build_features(self, hp, inputs):
        x = keras.layers.Flatten()(inputs) if len(inputs.shape) > 2 else inputs

        def layer(index, x):
            units = hp.Choice(f"layer_{index}/units", list(self.units))
            activation = hp.Choice(f"layer_{index}/activation", list(self.activations))
            return keras.layers.Dense(units, activation=activation,
                                      name=f"layer_{index}.dense")(x)

        depths = range(self.min_layers, self.max_layers + 1)
        return decisions.repeat(hp, "num_layers", layer, x, depths=depths)

    def size(self):
        per_layer = len(self.units) * len(self.activations)
        return sum(per_layer ** depth
                   for depth in range(self.min_layers, self.max_layers + 1))

    def describe(self, values):
        return " > ".join(
            f"{values[f'layer_{i}/units']}{values[f'layer_{i}/activation']}"
            for i in range(values["num_layers"]))

    def get_config(self):
        return {**super().get_config(), "min_layers": self.min_layers,
                "max_layers": self.max_layers, "units": list(self.units),
                "activations": list(self.activations)}
