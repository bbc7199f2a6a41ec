"""Conformance suites that every tfnas space, oracle and tuner must pass.

Ship-with-the-package checks, in the spirit of `optuna.testing`: a new space
is done when `check_space(space)` passes; a new strategy when
`check_oracle(make_oracle)` (tfnas's own promises) and
`check_keras_tuner_contract(make_oracle)` (KerasTuner's Oracle contract)
pass; `check_tuner_contract(NASTuner, ...)` holds NASTuner to KerasTuner's
Tuner contract.
"""

from tfnas.testing.contract import ORACLE_CHECKS, check_keras_tuner_contract
from tfnas.testing.oracles import LookupTuner, check_oracle, synthetic_score
from tfnas.testing.spaces import SpaceReport, check_space, sample_architectures
from tfnas.testing.tuners import TUNER_CHECKS, check_tuner_contract


__all__ = ["LookupTuner", "ORACLE_CHECKS", "SpaceReport", "TUNER_CHECKS",
           "check_keras_tuner_contract", "check_oracle", "check_space",
           "check_tuner_contract", "sample_architectures", "synthetic_score"]
