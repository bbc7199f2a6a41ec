"""Proxy screening: of k proposals of a strategy, the best by proxy is trained.

A `ProxyScreen` given to a tfnas oracle (`NASOracle(..., screen=...)`, or
`NASTuner(..., proxy="naswot", proxy_candidates=k)`) makes the oracle ask
its strategy for `candidates` proposals in a row (each from the same seeded
generator, so the choice is reproducible) and return the one with the best
proxy score: evolution then trains the best of k mutations (each of its own
tournament), local search the best of k unexplored neighbours, random search
the best of k random architectures. Nothing is trained to choose.

Screening lives in the oracle, where KerasTuner decides what a trial
trains (`populate_space`), so it works with every tfnas strategy, with
successive halving and with a distributed search (the chief's oracle
screens); the tuner only hands the screen its batch of data, which an
oracle never sees.
"""

from tfnas import proxies
from tfnas.trials import RUNNING
from tfnas.validation import check_positive_int


class ProxyScreen:
    """Keeps the best of `candidates` proposals by a proxy.

    Args:
        scorer: A callable from decision values to a score, larger is
            better: a `tfnas.proxies.ProxyScorer`, or e.g. a table lookup.
        candidates: k, the proposals compared per trial (1: no screening).
        batch_size: Examples of the batch that `set_batch` takes from the
            search's training data for a `tfnas.proxies.ProxyScorer`.
    """

    def __init__(self, scorer, candidates=5, batch_size=64):
        if not callable(scorer):
            raise TypeError("Received an invalid value for `scorer`, expected a callable "
                            "from decision values to a score (e.g. a "
                            f"tfnas.proxies.ProxyScorer). Received: scorer={scorer!r}")
        self.scorer = scorer
        self.candidates = check_positive_int(candidates, "candidates")
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.last_scores = []  # the scores of the last choice's proposals

    def choose(self, propose, rng):
        """The best of up to `candidates` responses of `propose(rng)`.

        Proposals stop early when the strategy answers anything but RUNNING
        (an exhausted space); a tie keeps the earliest proposal.
        """
        best, best_key, self.last_scores = None, None, []
        for _ in range(self.candidates):
            response = propose(rng)
            if response["status"] != RUNNING:
                return response if best is None else best
            if self.candidates == 1:
                return response
            score = float(self.scorer(response["values"]))
            self.last_scores.append(score)
            key = proxies.rank_key(score)
            if best is None or key < best_key:
                best, best_key = response, key
        return best


def attach(oracle, space, proxy, candidates=5, batch_size=64):
    """Gives `oracle` a screen by `proxy` over `space` (for `NASTuner`).

    The proxy's weights are seeded by the oracle's seed; its batch is set
    by `set_batch` when the search starts.

    Raises:
        ValueError: when the oracle is not a tfnas strategy (KerasTuner's own
            oracles have no proposals to screen).
    """
    from tfnas.oracles.base import NASOracle

    proxies.check_proxy(proxy)
    if not isinstance(oracle, NASOracle):
        raise ValueError(
            "Received `proxy` with an oracle that cannot screen its proposals: "
            f"{type(oracle).__name__}. Expected a tfnas strategy (random, evolution, "
            "local, predictor, controller, ppo, sha). Received: "
            f"oracle={type(oracle).__name__}, proxy={proxy!r}")
    check_positive_int(batch_size, "proxy_batch_size")
    check_positive_int(candidates, "proxy_candidates")
    scorer = proxies.ProxyScorer(space, proxy, seed=oracle.seed or 0)
    oracle.screen = ProxyScreen(scorer, candidates, batch_size)
    return oracle.screen


def set_batch(oracle, fit_args, fit_kwargs):
    """Hands the oracle's proxy screen (if any) its batch, taken from the
    training data given to `search` (`x`, or `x` and `y`)."""
    screen = getattr(oracle, "screen", None)
    scorer = getattr(screen, "scorer", None)
    if not isinstance(scorer, proxies.ProxyScorer) or scorer.batch is not None:
        return
    x = fit_args[0] if fit_args else fit_kwargs.get("x")
    y = fit_args[1] if len(fit_args) > 1 else fit_kwargs.get("y")
    if x is None:
        return  # a HyperModel's own fit: the proxies that need data fail clearly
    scorer.set_batch(proxies.proxy_batch(x if y is None else (x, y), screen.batch_size,
                                         scorer.seed))
