"""Conformance suites that every tfnas space (and later every oracle) must pass.

Ship-with-the-package checks, in the spirit of `optuna.testing`: a new space
is done when `check_space(space)` passes.
"""

from tfnas.testing.spaces import SpaceReport, check_space, sample_architectures

__all__ = ["SpaceReport", "check_space", "sample_architectures"]
