"""sslmon.conditions: --fail-if conditions parsed and judged on hand-made runs."""

from __future__ import annotations

import pytest

from helpers import init_run
from sslmon.conditions import Condition, FlagCondition, judge, nothing_to_judge, parse_condition
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
    # not ranked (the default for different models): there is no best to judge, and the gate says so
    assert judge(run, cond, "best", "input") == [] and len(judge(run, cond, "latest", "input")) == 1
    assert "nothing is ranked, so there is no best" in nothing_to_judge(run, cond, "best", "input")


def test_fail_if_skips_the_excluded_init():
    cond = [parse_condition("lp_acc<0.75")]
    assert len(judge(init_run(False), cond, "each", "rankme")) == 1  # init trips it
    assert judge(init_run(True).gated(), cond, "each", "rankme") == []
    assert len(judge(init_run(False), cond, "best", "rankme")) == 1  # best by rankme is init
    assert judge(init_run(True).gated(), cond, "best", "rankme") == []


def test_flag_conditions_and_gates_that_judge_nothing():
    assert parse_condition(" collapse ") == FlagCondition("collapse") and str(parse_condition("plateau")) == "plateau"
    with pytest.raises(ValueError, match="nor a flag"):
        parse_condition("collapsed")
    healthy = {"l2_std": 0.04, "rankme": 20.0}
    run = Run({}, [Result("e1", None, dict(healthy), epoch=1, n_samples=500, dim=128),
                   Result("e2", None, {"l2_std": 0.0, "rankme": 1.0}, epoch=2, n_samples=500, dim=128)])  # collapsed
    cond = [parse_condition("collapse")]
    assert nothing_to_judge(run, cond, "latest", "epoch") is None
    (message,) = judge(run, cond, "latest", "epoch")
    assert message.startswith("e2: flagged collapse: near-collapse")
    assert judge(run, cond, "best", "epoch") == []  # best = the recommendation, e1: the collapsed e2 is passed over
    only_init = Run({}, [Result("e0", None, dict(healthy), epoch=0)], exclude_init=True).gated()
    assert "the only result is the untrained" in nothing_to_judge(only_init, [parse_condition("rankme<5")], "latest", "epoch")
    unlabelled = Run({}, [Result("e1", None, {**healthy, "knn_acc": None}, {"knn_acc": "no labels given"}, epoch=1)])
    assert "knn_acc is undefined on this data (no labels given)" in nothing_to_judge(
        unlabelled, [parse_condition("knn_acc<0.5")], "latest", "epoch")
    assert "needs a spread over evaluation seeds" in nothing_to_judge(run, [parse_condition("plateau")], "latest", "epoch")
    degenerate = Run({}, [Result("e1", None, {"rankme": None}, {"rankme": "NaN in the embeddings"}, epoch=1)])
    assert nothing_to_judge(degenerate, [parse_condition("rankme<5")], "latest", "epoch") is None  # holds, as before
    assert len(judge(degenerate, [parse_condition("rankme<5")], "latest", "epoch")) == 1
