"""The later label-free metrics and lp_acc's standard error against hand computations on tiny cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sslmon import metrics as M
from sslmon.evaluation import EvalConfig, evaluate_embeddings
from sslmon.metrics import METRICS, MetricUndefined

NEW = ["nesum", "stable_rank", "self_clustering", "coherence", "twonn_id"]


def test_nesum_by_hand():
    # centred already; covariance (n - 1 = 3) = diag(2/3, 8/3): NESum = (2/3 + 8/3) / (8/3) = 1.25
    Z = [[1, 0], [-1, 0], [0, 2], [0, -2]]
    assert M.nesum(Z) == pytest.approx(1.25)
    assert M.nesum(np.eye(3) * 5 + 7) == pytest.approx(2.0)  # 3 points in 3-d: 2 equal covariance eigenvalues, 1 zero
    with pytest.raises(MetricUndefined, match="zero variance"):
        M.nesum([[1, 2], [1, 2]])


def test_stable_rank_by_hand():
    # ||Z||_F^2 = 9 + 1 = 10, ||Z||_2^2 = 9
    assert M.stable_rank([[3, 0], [0, 1]]) == pytest.approx(10 / 9)
    assert M.stable_rank([[1, 1], [2, 2]]) == pytest.approx(1.0)  # rank 1
    with pytest.raises(MetricUndefined):
        M.stable_rank(np.zeros((3, 2)))


def test_self_clustering_by_hand():
    # rows normalised: (1,0), (0,1), (1,0); sum of squared cosines = 5 (3 diagonal + 2 off-diagonal);
    # expected for random directions E = n + n(n-1)/d = 3 + 3 = 6; (5 - 6) / (9 - 6) = -1/3
    assert M.self_clustering([[1, 0], [0, 1], [2, 0]]) == pytest.approx(-1 / 3)
    assert M.self_clustering([[1, 1], [2, 2], [3, 3]]) == pytest.approx(1.0)  # collapsed: (9 - 6) / (9 - 6)
    with pytest.raises(MetricUndefined, match="zero vectors"):
        M.self_clustering([[1, 0], [0, 0], [0, 1]])


def test_coherence_by_hand():
    # U spans e1, e2 on the first two rows: max row norm^2 = 1, n / r = 4 / 2 -> 2
    assert M.coherence([[1, 0], [0, 1], [0, 0], [0, 0]]) == pytest.approx(2.0)
    # four rows sharing the space equally: row norms^2 of U = 1/2 -> (4 / 2) * 1/2 = 1
    assert M.coherence([[1, 0], [0, 1], [-1, 0], [0, -1]]) == pytest.approx(1.0)
    # rank 1: U = (1, 2, 0) / sqrt(5); max row norm^2 = 4/5; n / r = 3 -> 2.4
    assert M.coherence([[1, 1], [2, 2], [0, 0]]) == pytest.approx(2.4)


def test_twonn_by_hand_on_a_line():
    # points 0, 1, 3, 7, 15: (r1, r2) = (1, 3), (1, 2), (2, 3), (4, 6), (8, 12) -> mu = 3, 2, 1.5, 1.5, 1.5
    # sorted mu 1.5, 1.5, 1.5, 2, 3 with F = 1/5 .. 5/5; the largest 10 % (int(5 * 0.9) = 4 kept) dropped
    Z = np.array([[0.0], [1.0], [3.0], [7.0], [15.0]])
    x = np.log([1.5, 1.5, 1.5, 2.0])
    y = -np.log(1 - np.array([1, 2, 3, 4]) / 5)
    assert M.twonn_id(Z) == pytest.approx((x * y).sum() / (x * x).sum())


def test_twonn_finds_the_dimension_of_a_plane_in_10d():
    rng = np.random.default_rng(0)
    Z = rng.uniform(size=(2000, 2)) @ rng.normal(size=(2, 10))
    assert M.twonn_id(Z) == pytest.approx(2.0, abs=0.25)
    with pytest.raises(MetricUndefined, match="non-zero"):
        M.twonn_id(np.ones((10, 3)))  # all duplicates: no distance ratio


def test_lp_acc_se_by_hand():
    assert M.lp_acc_se(0.8, 400) == pytest.approx(math.sqrt(0.8 * 0.2 / 400))  # = 0.02
    assert M.lp_acc_se(1.0, 50) == 0.0
    with pytest.raises(MetricUndefined, match="lp_acc is undefined"):
        M.lp_acc_se(None, 10)


def test_new_metrics_are_registered_label_free_and_evaluated():
    rng = np.random.default_rng(1)
    Z = rng.normal(size=(200, 8))
    ev = evaluate_embeddings(Z, config=EvalConfig(k=3), metrics=NEW)
    assert ev.errors == {}
    for key in NEW:
        assert not METRICS[key].needs_labels
        assert ev.metrics[key] == pytest.approx(getattr(M, key)(Z))


def test_lp_acc_se_uses_the_scored_half(tmp_path):
    rng = np.random.default_rng(2)
    y = np.repeat([0, 1, 2], 40)
    Z = rng.normal(size=(120, 6)) + y[:, None]
    ev = evaluate_embeddings(Z, y, config=EvalConfig(), metrics=["lp_acc", "lp_acc_se"])
    p = ev.metrics["lp_acc"]
    assert ev.metrics["lp_acc_se"] == pytest.approx(math.sqrt(p * (1 - p) / 60))  # scored on the other half: 60
    alone = evaluate_embeddings(Z, y, config=EvalConfig(), metrics=["lp_acc_se"])  # computes the probe itself
    assert alone.metrics == {"lp_acc_se": ev.metrics["lp_acc_se"]}
