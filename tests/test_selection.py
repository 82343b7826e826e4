"""Checkpoint selection: picks, regret, rank, Kendall tau, consensus and baseline on hand-made runs.

Every expected number below is worked out by hand in the comments, not produced by the code.
"""

from __future__ import annotations

import pytest

from helpers import SELECTION_EPOCHS, SELECTION_LP
from sslmon.metrics import METRICS
from sslmon.selection import consensus_keys, metric_keys, select


def by_key(values, key="rankme"):
    return metric_keys(values, METRICS[key])


def test_pick_regret_rank_and_tau_by_hand():
    # A "higher is better" metric that peaks at epoch 4 (0.78): regret = 80 - 78 = 2 points,
    # rank 2 (only epoch 2 is better).
    metric = [1.0, 2.0, 3.0, 2.5, 4.0]
    s = select(by_key(metric), by_key(SELECTION_LP, "lp_acc"), SELECTION_LP, SELECTION_EPOCHS, [f"e{e}" for e in SELECTION_EPOCHS])
    assert (s.status, s.pick_epoch, s.pick_name, s.pick_rank, s.ties) == ("ok", 4, "e4", 2, 1)
    assert s.regret == pytest.approx(2.0)
    assert (s.pick_reference, s.best_reference) == (0.78, 0.80)
    # Kendall tau by hand: metric order 4 > 2 > 3 > 1 > 0, SELECTION_LP order 2 > 4 > 3 > 1 > 0;
    # of the 10 pairs only (2, 4) is discordant: tau = (9 - 1) / 10 = 0.8.
    assert s.kendall_tau == pytest.approx(0.8)
    assert (s.n, s.n_undefined) == (5, 0)


def test_lower_is_better_and_target_metrics_pick_by_their_direction():
    # entropy (lower is better) is smallest at epoch 3: regret 80 - 75 = 5 points, rank 3.
    s = select(by_key([5, 4, 3, 1, 2], "entropy_z3"), by_key(SELECTION_LP, "lp_acc"), SELECTION_LP, SELECTION_EPOCHS, list("abcde"))
    assert (s.pick_epoch, s.pick_rank) == (3, 3) and s.regret == pytest.approx(5.0)
    # alpha-ReQ (closest to 1): |a - 1| = 1.5, 0.3, 0.05, 0.2, 0.6 -> epoch 2, the best: regret 0, rank 1.
    s = select(by_key([2.5, 0.7, 1.05, 1.2, 0.4], "alpha_req"), by_key(SELECTION_LP, "lp_acc"), SELECTION_LP, SELECTION_EPOCHS, list("abcde"))
    assert (s.pick_epoch, s.pick_rank, s.regret) == (2, 1, 0.0)


def test_ties_go_to_the_later_milestone_and_are_counted():
    # epochs 1 and 3 tie at the top (9): the later, epoch 3, is picked; regret 5, rank 3.
    s = select(by_key([0, 9, 1, 9, 2]), by_key(SELECTION_LP, "lp_acc"), SELECTION_LP, SELECTION_EPOCHS, list("abcde"))
    assert (s.pick_epoch, s.ties, s.pick_rank) == (3, 2, 3)
    assert s.regret == pytest.approx(5.0)


def test_reference_ties_share_the_best_rank():
    lp = [0.5, 0.8, 0.8, 0.7, 0.6]  # epochs 1 and 2 tie for the best accuracy
    s = select(by_key([0, 5, 1, 2, 3]), by_key(lp, "lp_acc"), lp, SELECTION_EPOCHS, list("abcde"))
    assert (s.pick_epoch, s.pick_rank, s.regret) == (1, 1, 0.0)


def test_undefined_metric_values_are_skipped_and_counted():
    # The metric is undefined exactly where SELECTION_LP is best (epoch 2): the pick is epoch 4 (0.78), but the
    # regret is still against the run's best, 0.80: 2 points.
    metric = [1.0, 2.0, None, 2.5, 4.0]
    s = select(by_key(metric), by_key(SELECTION_LP, "lp_acc"), SELECTION_LP, SELECTION_EPOCHS, list("abcde"))
    assert (s.pick_epoch, s.n, s.n_undefined, s.pick_rank) == (4, 4, 1, 2)
    assert s.regret == pytest.approx(2.0)
    # one defined value is no choice at all
    s = select(by_key([None, None, None, 1.0, None]), by_key(SELECTION_LP, "lp_acc"), SELECTION_LP, SELECTION_EPOCHS, list("abcde"))
    assert (s.status, s.regret, s.n, s.n_undefined) == ("not enough data", None, 1, 4)


def test_constant_metric_has_no_tau_and_picks_the_last_milestone():
    s = select(by_key([3.0] * 5), by_key(SELECTION_LP, "lp_acc"), SELECTION_LP, SELECTION_EPOCHS, list("abcde"))
    assert (s.kendall_tau, s.ties, s.pick_epoch) == (None, 5, 4)


def test_consensus_is_the_mean_rank_by_hand():
    # a (higher better): 1, 3, 2 -> ranks (1 = best) 3, 1, 2
    # b (lower better):  5, 6, 4 -> ranks 2, 3, 1
    # c (higher better): 7, None, 7 -> ranks 1.5, -, 1.5 (tie: mean rank)
    cols = [by_key([1, 3, 2]), by_key([5, 6, 4], "entropy_z3"), by_key([7, None, 7])]
    assert consensus_keys(cols) == pytest.approx([(3 + 2 + 1.5) / 3, (1 + 3) / 2, (2 + 1 + 1.5) / 3])
    assert consensus_keys([by_key([None, 1.0])]) == [None, 1.0]
