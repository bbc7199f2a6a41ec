"""Argument checks that every constructor shares, with one error sentence.

No tfnas imports: spaces, layers, oracles and the data loader all use it.
"""


def is_integer(value):
    """Whether `value` is an `int` (and not a `bool`, which Python counts as one)."""
    return isinstance(value, int) and not isinstance(value, bool)


def check_int(value, name, low=1, high=None, expected=None):
    """Returns `value` if it is an integer in [`low`, `high`]; raises otherwise.

    Args:
        value: The argument received.
        name: The argument's name, for the error.
        low: The smallest allowed value.
        high: The largest allowed value, or None for no upper bound.
        expected: What the error says was expected; by default "an integer
            >= low" (or "from low to high").

    Raises:
        ValueError: Keras style: "Received an invalid value for `units`,
            expected a positive integer. Received: units=-3".
    """
    if not is_integer(value) or value < low or (high is not None and value > high):
        if expected is None:
            bound = f"from {low} to {high}" if high is not None else f">= {low}"
            expected = f"an integer {bound}"
        raise ValueError(
            f"Received an invalid value for `{name}`, expected {expected}. "
            f"Received: {name}={value!r}")
    return value


def check_positive_int(value, name):
    """`check_int(value, name, 1)`, whose error says "a positive integer"."""
    return check_int(value, name, 1, expected="a positive integer")
