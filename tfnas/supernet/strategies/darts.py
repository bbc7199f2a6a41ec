"""DARTS (Liu et al., 2019): a softmax-weighted sum of every candidate;
bi-level training, an architecture step on the validation batch (Adam on the
alphas), then a weight step on the training batch. "darts2" uses the
unrolled architecture gradient with the paper's finite-difference
Hessian-vector product (`OneShotModel.unrolled_gradients`)."""

from tfnas import strategies
from tfnas.supernet.strategies.base import GradientStrategy


@strategies.register("darts", one_shot=True)
class DARTS(GradientStrategy):
    """First-order DARTS."""

    mode = "darts"


@strategies.register("darts2", one_shot=True)
class SecondOrderDARTS(DARTS):
    """Second-order (unrolled) DARTS."""

    second_order = True
