"""Built-in search spaces, by name."""

from tfnas.spaces.chain import ChainSpace

SPACES = {"chain": ChainSpace}


def get(name, input_shape, num_classes, **kwargs):
    """Creates the built-in space `name` for the given data.

    Args:
        name: One of `tfnas.spaces.SPACES`.
        input_shape: Shape of one input example.
        num_classes: Number of classes.
        **kwargs: Space-specific arguments (see each space's docstring).
    """
    if name not in SPACES:
        raise ValueError(
            f"Received an invalid value for `space`, expected one of "
            f"{sorted(SPACES)}. Received: space={name!r}"
        )
    return SPACES[name](input_shape=input_shape, num_classes=num_classes, **kwargs)


def name_of(space):
    """The registered name of a built-in space instance, else None."""
    for name, cls in SPACES.items():
        if type(space) is cls:
            return name
    return None


__all__ = ["ChainSpace", "SPACES", "get", "name_of"]
