"""KerasTuner's Oracle contract, run by every registered strategy."""

import functools

import pytest

from tfnas import oracles
from tfnas.testing.contract import ORACLE_CHECKS, check_keras_tuner_contract


# Expected on the checks' small spaces (test_progressive.py asserts the first),
# and from KerasTuner itself: its metric history of all-NaN results and its
# Bayesian oracle's Gaussian process fitted to a handful of points.
@pytest.mark.filterwarnings("ignore:Strategy '(dpp|pnas)' grows architectures:UserWarning")
@pytest.mark.filterwarnings("ignore:All-NaN axis encountered:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:The optimal value found for dimension")
@pytest.mark.parametrize("check", sorted(ORACLE_CHECKS))
@pytest.mark.parametrize("strategy", sorted(oracles.ORACLES))
def test_strategy_keeps_the_keras_tuner_oracle_contract(strategy, check, capsys):
    check_keras_tuner_contract(functools.partial(oracles.get, strategy), checks=[check])
