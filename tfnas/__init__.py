"""tfnas: Neural Architecture Search for Keras and TensorFlow.

A search space is a KerasTuner `HyperModel` that declares its decisions with
`choose_op`, `choose_inputs`, `repeat` and `choose_value`; a search strategy is a KerasTuner
`Oracle`; `NASTuner` trains every candidate with `model.fit`.

Submodules are imported on first use, so `import tfnas` is cheap until a
TensorFlow-backed name is touched.
"""

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "Architecture": "tfnas.architecture",
    "choose_op": "tfnas.decisions",
    "choose_inputs": "tfnas.decisions",
    "choose_value": "tfnas.decisions",
    "repeat": "tfnas.decisions",
    "NASTuner": "tfnas.tuner",
    "OneShotTuner": "tfnas.supernet.tuner",
    "SearchSpace": "tfnas.spaces.base",
    "CandidateFailed": "tfnas.tuner",
    "DistributedOptions": "tfnas.secure_channel",
    "load_data": "tfnas.data",
    "rebuild": "tfnas.export",
    "spaces": "tfnas.spaces",
    "strategies": "tfnas.strategies",
    "oracles": "tfnas.oracles",
    "bench": "tfnas.bench",
    "testing": "tfnas.testing",
    "report": "tfnas.report",
    "export": "tfnas.export",
    "errors": "tfnas.errors",
    "pareto": "tfnas.pareto",
    "plots": "tfnas.plots",
    "architecture": "tfnas.architecture",
    "data": "tfnas.data",
    "datasets": "tfnas.datasets",
    "decisions": "tfnas.decisions",
    "distributed": "tfnas.distributed",
    "early_stopping": "tfnas.early_stopping",
    "estimation": "tfnas.estimation",
    "latency": "tfnas.latency",
    "objectives": "tfnas.objectives",
    "optimizers": "tfnas.optimizers",
    "proxies": "tfnas.proxies",
    "screening": "tfnas.screening",
    "supernet": "tfnas.supernet",
    "tensorboard": "tfnas.tensorboard",
    "tuner": "tfnas.tuner",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'tfnas' has no attribute {name!r}")
    module = importlib.import_module(_EXPORTS[name])
    value = module if module.__name__ == f"tfnas.{name}" else getattr(module, name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
