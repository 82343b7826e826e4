"""Init handling (--exclude-init), the consensus ranking and lp_acc ± its standard error in the table."""

from __future__ import annotations

import math

from helpers import init_run
from sslmon.recommend import document
from sslmon.results import Result, Run


def test_exclude_init_unranks_the_init_milestone_but_keeps_it():
    assert [r.name for r in init_run(False).ranked("rankme")] == ["init", "e2", "e1"]
    run = init_run(True)
    assert [r.name for r in run.ranked("rankme")] == ["e2", "e1", "init"]
    doc = document(run, "rankme")
    assert [(r["name"], r["rank"]) for r in doc["results"]] == [("e2", 1), ("e1", 2), ("init", None)]
    assert [r.name for r in run.gated().results] == ["e1", "e2"]


def test_consensus_ranking_is_the_mean_rank_by_hand():
    # the consensus metrics present are rankme and l2_std (others are missing and drop out).
    # with init: rankme ranks init 1, e2 2, e1 3; l2_std ranks e1 1, e2 2, init 3 -> means 2, 2, 2: a tie, input order
    assert [r.name for r in init_run(False).ranked("consensus")] == ["init", "e1", "e2"]
    # without init: rankme e2 1, e1 2; l2_std e1 1, e2 2 -> 1.5 each: input order, init unranked
    run = init_run(True)
    assert [key for _, key in run.ranking("consensus")] == [1.5, 1.5, None]


def test_in_memory_values_treat_nan_as_undefined():
    run = Run({}, [Result("a", None, {"x": math.nan}), Result("b", None, {"x": 2}), Result("c", None, {})])
    assert run.values("x") == [None, 2.0, None]
