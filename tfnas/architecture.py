"""The `Architecture` value: the active decisions of one trial.

An architecture is what a search strategy proposes and what a user keeps: the
values of the decisions that are active for one candidate, as plain Python
`str`/`int`/`float`/`bool`. Its canonical JSON (sorted keys, no whitespace)
is the same in every process, so its hash identifies a candidate across runs,
workers and machines.
"""

import hashlib
import json
import math
import numbers

import keras_tuner as kt

from tfnas.trials import BUDGET_PREFIX  # noqa: F401 (re-exported)

_PLAIN_TYPES = (bool, int, float, str)


def _plain_value(name, value):
    """Returns `value` as a plain Python scalar, or raises a clear error."""
    if isinstance(value, _PLAIN_TYPES):
        plain = value
    elif isinstance(value, numbers.Integral):  # numpy integers
        plain = int(value)
    elif isinstance(value, numbers.Real):  # numpy floats
        plain = float(value)
    elif hasattr(value, "item") and isinstance(value.item(), _PLAIN_TYPES):
        plain = value.item()  # numpy bool_ and 0-d arrays
    else:
        raise TypeError(
            f"Received an invalid value for decision `{name}`, expected a "
            f"plain str, int, float or bool. Received: {name}={value!r} "
            f"(of type {type(value).__name__})"
        )
    if isinstance(plain, float) and not math.isfinite(plain):
        raise ValueError(
            f"Received an invalid value for decision `{name}`, expected a "
            f"finite number. Received: {name}={plain!r}"
        )
    return plain


class Architecture:
    """The active decisions of one candidate network.

    Args:
        values: A mapping from decision (hyperparameter) name to its value.
            Values must be plain Python `str`, `int`, `float` or `bool`
            (numpy scalars are converted).

    Example:

    ```python
    arch = tfnas.Architecture.from_trial(tuner.oracle.get_best_trials()[0])
    arch.to_json()        # '{"layer_0/op":"conv3x3","num_layers":2}'
    arch.hash             # 64 hex digits, the same in every process
    model = space.build(arch.to_hyperparameters())
    ```
    """

    def __init__(self, values):
        if not hasattr(values, "items"):
            raise TypeError(
                "Received an invalid value for `values`, expected a mapping "
                f"from decision names to values. Received: values={values!r}"
            )
        canonical = {}
        for name, value in values.items():
            if not isinstance(name, str) or not name:
                raise TypeError(
                    "Decision names must be non-empty strings. "
                    f"Received: {name!r}"
                )
            canonical[name] = _plain_value(name, value)
        self._values = dict(sorted(canonical.items()))

    @classmethod
    def from_hyperparameters(cls, hp):
        """The active values of a `keras_tuner.HyperParameters`, without the
        training-budget values KerasTuner's convention names `tuner/...`."""
        return cls({
            name: value for name, value in hp.values.items()
            if not name.startswith(BUDGET_PREFIX) and hp.is_active(name)
        })

    @classmethod
    def from_trial(cls, trial):
        """The architecture a `keras_tuner.engine.trial.Trial` evaluated."""
        return cls.from_hyperparameters(trial.hyperparameters)

    @classmethod
    def from_json(cls, text):
        """Parses the output of `to_json`."""
        values = json.loads(text)
        if not isinstance(values, dict):
            raise ValueError(
                "Expected the JSON of an architecture to be an object. "
                f"Received: {text[:80]!r}"
            )
        return cls(values)

    @property
    def values(self):
        """A copy of the decision values, sorted by name."""
        return dict(self._values)

    def to_json(self):
        """The canonical JSON: sorted keys, no whitespace, ASCII only."""
        return json.dumps(
            self._values, sort_keys=True, separators=(",", ":"), ensure_ascii=True
        )

    @property
    def hash(self):
        """SHA-256 hex digest of the canonical JSON: stable across processes."""
        return hashlib.sha256(self.to_json().encode("ascii")).hexdigest()

    def to_hyperparameters(self):
        """A `keras_tuner.HyperParameters` whose values are these decisions.

        Building a space with it (`space.build(arch.to_hyperparameters())`)
        gives this architecture: every decision the space declares takes its
        value from here, and decisions absent here take their defaults.
        """
        hp = kt.HyperParameters()
        hp.values.update(self._values)
        return hp

    def summary(self, max_length=None):
        """A one-line, human-readable `name=value` list."""
        text = " ".join(f"{name}={value}" for name, value in self._values.items())
        if max_length is not None and len(text) > max_length:
            text = text[: max(0, max_length - 3)] + "..."
        return text or "(no decisions)"

    def __eq__(self, other):
        if not isinstance(other, Architecture):
            return NotImplemented
        return self.to_json() == other.to_json()

    def __hash__(self):
        return hash(self.to_json())

    def __repr__(self):
        return f"Architecture({self.to_json()})"
