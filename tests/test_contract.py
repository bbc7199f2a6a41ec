"""KerasTuner's Oracle contract, run by every registered strategy."""

import functools

import pytest

from tfnas import oracles
from tfnas.testing.contract import ORACLE_CHECKS, check_keras_tuner_contract


@pytest.mark.parametrize("check", sorted(ORACLE_CHECKS))
@pytest.mark.parametrize("strategy", sorted(oracles.ORACLES))
def test_strategy_keeps_the_keras_tuner_oracle_contract(strategy, check, capsys):
    check_keras_tuner_contract(functools.partial(oracles.get, strategy), checks=[check])
