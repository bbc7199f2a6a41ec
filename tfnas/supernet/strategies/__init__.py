"""One-shot (weight-sharing) strategies, one module each.

| name | mixing | architecture step | derivation |
|---|---|---|---|
| darts, darts2 | softmax-weighted sum | Adam on the alphas (1st / 2nd order) | largest alpha |
| beta-darts | as darts | as darts, plus Beta-Decay regularization | largest alpha |
| darts-pt | as darts | as darts | perturbation: the candidate whose removal hurts most |
| gdas | Gumbel-softmax one-hot | as DARTS, temperature annealed | largest alpha |
| proxyless | one sampled path (two for alphas) | as DARTS, architecture phase | largest alpha |
| spos | one uniformly sampled path, learning rate decayed | none | every path, or evolution |
| enas | the path the controller sets | none | the controller's best path |

Each registers itself in `tfnas.strategies` (`one_shot=True`); importing its
module here makes a built-in one known.
"""

from tfnas.supernet.strategies import darts, enas, gdas, proxyless, spos  # noqa: F401
from tfnas.supernet.strategies.base import GradientStrategy, OneShotStrategy, resolve

__all__ = ["GradientStrategy", "OneShotStrategy", "resolve"]
