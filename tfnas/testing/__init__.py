"""Conformance suites that every tfnas space (and later every oracle) must pass.

Ship-with-the-package checks, in the spirit of `optuna.testing`: a new space
is done when `check_space(space)` passes.
"""

from tfnas.testing.oracles import LookupTuner, check_oracle, synthetic_score
from tfnas.testing.spaces import SpaceReport, check_space, sample_architectures

__all__ = ["LookupTuner", "SpaceReport", "check_oracle", "check_space",
           "sample_architectures", "synthetic_score"]
