"""sslmon.conditions: --fail-if conditions parsed and judged on hand-made runs."""

from __future__ import annotations

import pytest

from helpers import init_run
from sslmon.conditions import Condition, judge, parse_condition
from sslmon.results import Result, Run


def test_conditions_parse_and_judge():
    assert parse_condition("rankme < 40") == Condition("rankme", "<", 40.0)
    assert parse_condition("knn_acc>=1e-1") == Condition("knn_acc", ">=", 0.1)
    for bad in ["rankme", "nosuch<3", "rankme<abc"]:
        with pytest.raises(ValueError):
            parse_condition(bad)
    run = Run(config={}, results=[
        Result("a", None, {"rankme": 50.0}, epoch=10),
        Result("b", None, {"rankme": 30.0}, epoch=20),
        Result("c", None, {"rankme": None}, errors={"rankme": "all embeddings are zero"}, epoch=5),
    ])
    cond = [parse_condition("rankme<40")]
    assert judge(run, cond, "best", "rankme") == []
    assert len(judge(run, cond, "latest", "rankme")) == 1  # b, epoch 20
    each = judge(run, cond, "each", "rankme")
    assert len(each) == 2 and any("undefined" in m for m in each)  # undefined never passes a gate


def test_fail_if_skips_the_excluded_init():
    cond = [parse_condition("lp_acc<0.75")]
    assert len(judge(init_run(False), cond, "each", "rankme")) == 1  # init trips it
    assert judge(init_run(True).gated(), cond, "each", "rankme") == []
    assert len(judge(init_run(False), cond, "best", "rankme")) == 1  # best by rankme is init
    assert judge(init_run(True).gated(), cond, "best", "rankme") == []
