"""Image augmentation as Keras preprocessing layers, part of the model.

Keras's random preprocessing layers transform their inputs only in training
(`training=True`, as `model.fit` calls them) and pass them through unchanged
in inference, so an augmented model exports, evaluates and predicts exactly
like the model without them.
"""

import keras

#: The augmentations `--augment` knows, by name.
AUGMENTATIONS = {
    "flip": lambda seed: keras.layers.RandomFlip("horizontal", seed=seed),
    "translate": lambda seed: keras.layers.RandomTranslation(
        0.1, 0.1, fill_mode="constant", seed=seed),  # pad-and-crop by up to 10 %
    "rotate": lambda seed: keras.layers.RandomRotation(
        0.05, fill_mode="constant", seed=seed),  # up to 18 degrees
    "zoom": lambda seed: keras.layers.RandomZoom(0.1, fill_mode="constant", seed=seed),
    "contrast": lambda seed: keras.layers.RandomContrast(0.2, seed=seed),
}
#: What `--augment` without a list applies: CIFAR's flips and crops.
DEFAULT = ("flip", "translate")


def parse(augment):
    """Normalizes an `augment` argument to a tuple of names.

    Args:
        augment: None or False (no augmentation), True (`DEFAULT`), a
            comma-separated string or a sequence of names of `AUGMENTATIONS`.
    """
    if augment is None or augment is False:
        return ()
    if augment is True:
        return DEFAULT
    if isinstance(augment, (list, tuple)) and not augment:
        return ()
    names = augment.split(",") if isinstance(augment, str) else list(augment)
    names = tuple(name.strip() for name in names if isinstance(name, str) and name.strip())
    unknown = [name for name in names if name not in AUGMENTATIONS]
    if unknown or not names:
        raise ValueError(
            f"Received an invalid value for `augment`, expected names among "
            f"{sorted(AUGMENTATIONS)} (comma-separated). Received: augment={augment!r}")
    return names


@keras.saving.register_keras_serializable(package="tfnas")
class Augmentation(keras.layers.Layer):
    """The augmentations `names`, applied in training only.

    Keras's random layers default to `training=True` when called without a
    training flag (as `model.export` and `model(x)` call a model), and the
    first layer's default becomes every later layer's (batch normalization
    included): behind this layer, which defaults to inference, a model
    serves, exports and converts to TFLite as the model without it.

    Args:
        names: Names of `AUGMENTATIONS`, applied in this order.
        seed: Seed of the random layers (layer i gets `seed + i`).
    """

    def __init__(self, names, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.names = list(parse(list(names)))
        self.seed = seed
        self.augmentations = [AUGMENTATIONS[name](None if seed is None else seed + index)
                              for index, name in enumerate(self.names)]

    def build(self, input_shape):
        for layer in self.augmentations:
            layer.build(input_shape)

    def call(self, inputs, training=None):
        if not training:
            return inputs
        for layer in self.augmentations:
            inputs = layer(inputs, training=True)
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "names": self.names, "seed": self.seed}


def with_augmentation(model, names, seed=None):
    """`model` preceded by an `Augmentation` layer of `names`, as one model.

    Args:
        model: A functional Keras model whose input is a batch of images
            `(height, width, channels)`.
        names: Names of `AUGMENTATIONS`, applied in this order.
        seed: Seed of the random layers.

    Returns:
        `model` itself when `names` is empty, else a new (uncompiled) model:
        the augmentation, then `model` (which is no longer compiled).
    """
    if not names:
        return model
    shape = tuple(model.input_shape[1:])
    if len(shape) != 3:
        raise ValueError(
            f"Received `augment`={list(names)} for inputs of shape {shape}: image "
            "augmentation needs image inputs (height, width, channels). Train without it.")
    # The wrapper is compiled instead: the inner model's own, unused optimizer
    # would be saved in `.keras` files and warn at every load.
    model.compiled, model.optimizer = False, None
    inputs = keras.Input(shape, name="image")
    x = Augmentation(names, seed=seed, name="augmentation")(inputs)
    return keras.Model(inputs, model(x), name=f"{model.name}_augmented")
