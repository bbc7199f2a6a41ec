"""Built-in search spaces, by name.

| name | class | origin |
|---|---|---|
| mlp | `MLPSpace` | multilayer perceptrons for tabular data |
| chain | `ChainSpace` | chain-structured macro space with ENAS-style skips |
| cell | `CellSpace` | NASNet / ENAS / DARTS normal and reduction cells |
| nb201 | `NASBench201Space` | NAS-Bench-201 (Dong & Yang, 2020) |
| macro | `NASBenchMacroSpace` | NAS-Bench-Macro (Su et al., 2021) |
| mobile | `MobileSpace` | MnasNet's factorized hierarchical space (Tan et al., 2019) |
"""

from tfnas.spaces.base import SearchSpace
from tfnas.spaces.cell import CellSpace
from tfnas.spaces.chain import ChainSpace
from tfnas.spaces.mlp import MLPSpace
from tfnas.spaces.mobile import MobileSpace
from tfnas.spaces.nb201 import NASBench201Space
from tfnas.spaces.nbmacro import NASBenchMacroSpace

SPACES = {cls.space_name: cls for cls in (
    MLPSpace, ChainSpace, CellSpace, NASBench201Space, NASBenchMacroSpace, MobileSpace)}


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
           "NASBenchMacroSpace", "MobileSpace", "SPACES", "get", "name_of"]
