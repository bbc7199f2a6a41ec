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


@strategies.register("beta-darts", one_shot=True)
class BetaDARTS(DARTS):
    """First-order DARTS with beta-DARTS's Beta-Decay regularization (Ye et
    al., 2022) against the collapse onto parameter-free operations: the
    architecture loss adds `weight * L_beta`, with
    `L_beta = mean over decisions of log(sum_k exp(alpha_k))`, whose
    gradient `weight * softmax(alpha) / decisions` keeps the alphas of every
    decision from drifting apart (the paper's constant-weight form; its
    linear ramp of the weight over epochs is not reproduced).

    A registered strategy rather than an option: `--strategy beta-darts`,
    `OneShotTuner(strategy="beta-darts")` and the conformance tests reach
    it without a new argument anywhere.

    Args:
        weight: The regularization's weight (lambda).
    """

    def __init__(self, weight=1.0):
        self.weight = float(weight)

    def architecture_penalty(self, alphas):
        return self.weight * beta_decay(alphas)


def beta_decay(alphas):
    """beta-DARTS's L_beta: the mean over decisions of logsumexp(alpha)."""
    import tensorflow as tf

    return tf.add_n([tf.reduce_logsumexp(alpha) for alpha in alphas]) / len(alphas)
