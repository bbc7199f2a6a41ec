"""Writing your own search space with the tfnas decision primitives.

A residual network for the digits data whose depth, operations and skip
connections are searched. The space is an ordinary KerasTuner HyperModel:
`choose_op`, `choose_inputs` and `repeat` declare its decisions, so any
oracle can search it, and decisions inside unused repetitions stay inactive.
"""

import argparse

import keras
import keras_tuner as kt

import tfnas


class ResidualSpace(kt.HyperModel):
    def __init__(self, input_shape, num_classes, width=16):
        super().__init__(name="residual")
        self.input_shape, self.num_classes, self.width = input_shape, num_classes, width

    def build(self, hp):
        inputs = keras.Input(self.input_shape)
        stem = keras.layers.Conv2D(self.width, 3, padding="same", activation="relu")
        outputs = [stem(inputs)]  # every block's output, for skip choices

        def block(index, x):
            op = tfnas.choose_op(hp, f"block_{index}/op", {
                "conv3x3": lambda: keras.layers.Conv2D(
                    self.width, 3, padding="same", activation="relu"),
                "sepconv5x5": lambda: keras.layers.SeparableConv2D(
                    self.width, 5, padding="same", activation="relu"),
                "maxpool": lambda: keras.layers.MaxPooling2D(3, 1, padding="same"),
            })
            y = op(x)
            # Add one earlier output (stem or an earlier block) as a skip.
            skip = tfnas.choose_inputs(hp, f"block_{index}/skip", outputs,
                                       labels=[f"out{i}" for i in range(len(outputs))])
            y = keras.layers.Add()([y, skip])
            outputs.append(y)
            return y

        x = tfnas.repeat(hp, "depth", block, outputs[0], depths=[1, 2, 3])
        x = keras.layers.GlobalAveragePooling2D()(x)
        model = keras.Model(inputs, keras.layers.Dense(self.num_classes, "softmax")(x))
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        return model


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--directory", default="tfnas_projects")
    args = parser.parse_args()

    data = tfnas.load_data("digits")
    tuner = tfnas.NASTuner(ResidualSpace(data.input_shape, data.num_classes),
                           max_trials=args.max_trials, seed=0,
                           directory=args.directory, project_name="custom_space")
    tuner.search(data.train, validation_data=data.validation, epochs=args.epochs,
                 verbose=0)
    tuner.results_summary(3)
