"""ProxylessNAS (Cai et al., 2019): weight steps on one sampled path,
architecture steps on two, plus the expected latency of the mixed layers
when a latency table is given."""

from tfnas import strategies
from tfnas.supernet.mixed import ARCHITECTURE_PHASE, WEIGHT_PHASE
from tfnas.supernet.strategies.base import GradientStrategy


@strategies.register("proxyless", one_shot=True)
class ProxylessNAS(GradientStrategy):
    """Binarized paths: one for the weights, two for the alphas."""

    mode = "proxyless"

    def architecture_step(self, model, x_train, y_train, x_val, y_val):
        model.set_phase(ARCHITECTURE_PHASE)
        model.architecture_step(x_train, y_train, x_val, y_val)
        model.set_phase(WEIGHT_PHASE)
