"""The registry of search strategies, multi-trial and one-shot alike.

A strategy registers itself in its own module, once:

    @strategies.register("evolution", budget=evolution_budget, halving=True)
    class RegularizedEvolutionOracle(NASOracle): ...

    @strategies.register("darts", one_shot=True)
    class DARTS(GradientStrategy): ...

`tfnas.oracles.get`, `NASTuner(oracle=name)`, `OneShotTuner(strategy=name)`,
the CLI's `--strategy` and the conformance tests all read this registry, so
a new strategy is one new module (and, for a built-in, one import line in
its package's `__init__`).
"""

import dataclasses
import importlib
from typing import Callable, Optional

# The packages whose modules register the built-in strategies.
_BUILT_IN_PACKAGES = ("tfnas.oracles", "tfnas.supernet.strategies")
_REGISTRY = {}


@dataclasses.dataclass(frozen=True)
class Strategy:
    """A registered strategy.

    Attributes:
        name: Its name (`--strategy`, `NASTuner(oracle=...)`).
        cls: The KerasTuner `Oracle` class (multi-trial), or the
            `tfnas.supernet.strategies.OneShotStrategy` class (one-shot).
        one_shot: Whether it searches by weight sharing (`OneShotTuner`).
        halving: Whether it takes a `halving=SuccessiveHalving(...)` argument
            (`--halving`).
        budget: `max_trials -> {argument: value}`, its arguments scaled to a
            budget of trials (explicit arguments override them).
        schedule: `(min_epochs, max_epochs, eta) -> {argument: value}` for a
            strategy that schedules epochs itself (sha, hyperband): the CLI
            passes `--min-epochs`, `--epochs` and `--eta` through it.
        build: `build(cls, objective=, max_trials=, seed=, space=, **kwargs)`
            when the class is not simply called with
            `(objective=, max_trials=, seed=, **kwargs)`.
        own_trials: The strategy sets its own number of trials (Hyperband):
            `max_trials` is neither checked nor passed.
    """

    name: str
    cls: type
    one_shot: bool = False
    halving: bool = False
    budget: Optional[Callable] = None
    schedule: Optional[Callable] = None
    build: Optional[Callable] = None
    own_trials: bool = False

    def budget_defaults(self, max_trials):
        """Arguments scaled to `max_trials` (none for no limit)."""
        if max_trials is None or self.budget is None:
            return {}
        return dict(self.budget(max_trials))

    def create(self, objective, max_trials, seed=None, space=None, **kwargs):
        """A new oracle of this (multi-trial) strategy."""
        if self.build is not None:
            return self.build(self.cls, objective=objective, max_trials=max_trials,
                              seed=seed, space=space, **kwargs)
        return self.cls(objective=objective, max_trials=max_trials, seed=seed, **kwargs)


def register(name, cls=None, **fields):
    """Registers the strategy `name` (see `Strategy` for `fields`).

    Called with a class, registers it; without one, returns a class
    decorator. Registering a name again replaces the entry (a module
    reloaded), so names stay unique.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"Received an invalid value for `name`, expected a non-empty "
                         f"string. Received: name={name!r}")

    def decorate(strategy_class):
        _REGISTRY[name] = Strategy(name=name, cls=strategy_class, **fields)
        return strategy_class

    return decorate if cls is None else decorate(cls)


def _load_built_ins():
    for package in _BUILT_IN_PACKAGES:
        importlib.import_module(package)


def names(one_shot=None, halving=None):
    """Sorted names of the registered strategies, optionally only those
    with the given `one_shot` / `halving` flags."""
    _load_built_ins()
    return sorted(name for name, entry in _REGISTRY.items()
                  if (one_shot is None or entry.one_shot == one_shot)
                  and (halving is None or entry.halving == halving))


def get(name, one_shot=None):
    """The `Strategy` registered as `name`.

    Raises:
        ValueError: for an unknown name (or one of the other kind, when
            `one_shot` is given), naming the known ones.
    """
    _load_built_ins()
    entry = _REGISTRY.get(name)
    if entry is None or (one_shot is not None and entry.one_shot != one_shot):
        known = names(one_shot=one_shot)
        raise ValueError(f"Received an invalid value for `strategy`, expected one of "
                         f"{known}. Received: strategy={name!r}")
    return entry


def is_one_shot(name):
    """Whether `name` is a registered one-shot strategy."""
    _load_built_ins()
    entry = _REGISTRY.get(name)
    return entry is not None and entry.one_shot
