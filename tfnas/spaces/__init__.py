"""Built-in search spaces, by name.

| name | class | origin |
|---|---|---|
| mlp | `MLPSpace` | multilayer perceptrons for tabular data |
| chain | `ChainSpace` | chain-structured macro space with ENAS-style skips |
| cell | `CellSpace` | NASNet / ENAS / DARTS normal and reduction cells |
| nb201 | `NASBench201Space` | NAS-Bench-201 (Dong & Yang, 2020) |
| macro | `NASBenchMacroSpace` | NAS-Bench-Macro (Su et al., 2021) |
| mobile | `MobileSpace` | MnasNet's factorized hierarchical space (Tan et al., 2019) |
| sequence | `SequenceSpace` | 1-D convolutions, GRU/LSTM, self-attention for text and series |
| transformer | `TransformerSpace` | Transformer encoders (Vaswani et al., 2017) |

A space of your own joins them with `register` (a class decorator): the CLI,
`tfnas export`, `tfnas report` and `tfnas.rebuild` then rebuild it by name
from a project's record.
"""

from tfnas import augmentation  # noqa: F401 (registers its layer, for load_model)
from tfnas.spaces.base import SearchSpace
from tfnas.spaces.cell import CellSpace
from tfnas.spaces.chain import ChainSpace
from tfnas.spaces.mlp import MLPSpace
from tfnas.spaces.mobile import MobileSpace
from tfnas.spaces.nb201 import NASBench201Space
from tfnas.spaces.nbmacro import NASBenchMacroSpace
from tfnas.spaces.sequence import SequenceSpace
from tfnas.spaces.transformer import TransformerSpace

SPACES = {cls.space_name: cls for cls in (
    MLPSpace, ChainSpace, CellSpace, NASBench201Space, NASBenchMacroSpace, MobileSpace,
    SequenceSpace, TransformerSpace)}
#: The names of tfnas's own spaces; `register` adds users' spaces to `SPACES`.
BUILT_IN = tuple(SPACES)


def register(name_or_class=None, space_class=None):
    """Registers a space class by name, so that records rebuild it.

    `@register` uses the class's `space_name`; `@register("myspace")` or
    `register("myspace", MySpace)` name it. The class must rebuild itself
    from its `get_config()`: `MySpace(**space.get_config())` (as every
    `SearchSpace` subclass that adds its own arguments to `get_config` does).

    Returns:
        The class (so that `register` works as a decorator).
    """
    def decorate(cls, name):
        name = name or getattr(cls, "space_name", None)
        if not isinstance(cls, type) or not callable(getattr(cls, "get_config", None)):
            raise ValueError(
                "Received an invalid value for `space_class`, expected a HyperModel class "
                f"with `get_config`. Received: space_class={cls!r}")
        if not isinstance(name, str) or not name:
            raise ValueError(
                "Received no name for the space: pass `register(name, cls)` or set the "
                f"class attribute `space_name`. Received: name={name!r}")
        if name in BUILT_IN and SPACES[name] is not cls:
            raise ValueError(f"Received the name of a built-in space, {name!r}; expected "
                             f"another name. Received: name={name!r}")
        if getattr(cls, "space_name", None) != name:
            cls.space_name = name  # what the record and the CLI call it
        SPACES[name] = cls
        return cls

    if isinstance(name_or_class, type):
        return decorate(name_or_class, None)
    if space_class is not None:
        return decorate(space_class, name_or_class)
    return lambda cls: decorate(cls, name_or_class)


def get(name, input_shape, num_classes, **kwargs):
    """Creates the built-in space `name` for the given data.

    Args:
        name: One of `tfnas.spaces.SPACES`.
        input_shape: Shape of one input example.
        num_classes: Number of classes (or regression targets).
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


__all__ = ["SearchSpace", "MLPSpace", "ChainSpace", "CellSpace", "NASBench201Space",
           "NASBenchMacroSpace", "MobileSpace", "SequenceSpace", "TransformerSpace",
           "SPACES", "BUILT_IN", "get", "name_of", "register"]
