"""`sslmon correlate`: Pearson/Spearman against hand computations, edge cases, CLI shape and exit codes."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from helpers import AMI, ENTROPY, LP, SELECTION_LP, named, pearson_by_hand, write_results, write_run
from sslmon.io.runfile import load_run
from sslmon.meta.correlate import BASELINE, CONSENSUS, Correlation, correlate_run, correlation, select_run


def ranks_by_hand(values: list[float]) -> list[float]:
    """Rank 1 = smallest; tied values share their mean rank."""
    ordered = sorted(values)
    return [ordered.index(v) + (ordered.count(v) + 1) / 2 for v in values]


def test_pearson_and_p_match_the_formula_with_and_without_init(run_file):
    result = correlate_run(named(run_file), "lp_acc")
    assert set(result.correlations) == {"entropy_z3", "ami_c1_c2"}
    with_init = result.correlations["entropy_z3"]["with_init"]
    without_init = result.correlations["entropy_z3"]["without_init"]
    r, p = pearson_by_hand(ENTROPY, LP)
    assert (with_init.status, with_init.n) == ("ok", 6)
    assert with_init.pearson_r == pytest.approx(r, abs=1e-12)
    assert with_init.pearson_p == pytest.approx(p, rel=1e-9)
    r, p = pearson_by_hand(ENTROPY[1:], LP[1:])
    assert (without_init.status, without_init.n) == ("ok", 5)
    assert without_init.pearson_r == pytest.approx(r, abs=1e-12)
    assert without_init.pearson_p == pytest.approx(p, rel=1e-9)
    # dropping the init milestone flips the sign, as in the paper's Table I
    assert with_init.pearson_r > 0 > without_init.pearson_r
    assert result.n_points == 6


def test_interval_of_r_equals_scipy_and_the_fisher_formula(run_file):
    c = correlate_run(named(run_file), "lp_acc").correlations["ami_c1_c2"]["with_init"]
    ci = stats.pearsonr(AMI, LP).confidence_interval(confidence_level=0.95)
    assert (c.pearson_ci_low, c.pearson_ci_high) == pytest.approx((ci.low, ci.high), abs=1e-12)
    r, _ = pearson_by_hand(AMI, LP)
    half = stats.norm.ppf(0.975) / math.sqrt(len(AMI) - 3)  # Fisher z: tanh(atanh(r) -+ z_0.975 / sqrt(n - 3))
    assert (c.pearson_ci_low, c.pearson_ci_high) == pytest.approx((math.tanh(math.atanh(r) - half), math.tanh(math.atanh(r) + half)))
    assert c.pearson_ci_low < c.pearson_r < c.pearson_ci_high


def test_spearman_is_pearson_of_the_ranks():
    x = [1.0, 2.0, 2.0, 5.0, 4.0, 9.0]  # a tie: mean ranks
    y = [0.3, 0.1, 0.4, 0.5, 0.9, 0.7]
    c = correlation(x, y)
    rho, _ = pearson_by_hand(ranks_by_hand(x), ranks_by_hand(y))
    assert ranks_by_hand(x) == [1, 2.5, 2.5, 5, 4, 6]
    assert c.spearman_rho == pytest.approx(rho, abs=1e-12)
    assert 0 < c.spearman_p < 1


def test_nulls_are_skipped_and_fewer_than_three_points_is_not_enough_data(tmp_path):
    path = write_results(tmp_path / "r.json", {"lp_acc": [0.1, 0.2, None, 0.4, 0.5, 0.6],
                                               "rankme": [None, 2.0, 3.0, None, None, 7.0],
                                               "alpha_req": [1.0, None, 1.3, 0.9, 1.5, 1.1]})
    result = correlate_run(named(path), "lp_acc")
    rankme = result.correlations["rankme"]
    assert rankme["with_init"] == Correlation(None, None, None, None, 2, "not enough data")
    alpha = result.correlations["alpha_req"]["with_init"]
    r, _ = pearson_by_hand([1.0, 0.9, 1.5, 1.1], [0.1, 0.4, 0.5, 0.6])
    assert (alpha.n, alpha.pearson_r) == (4, pytest.approx(r))
    assert result.correlations["alpha_req"]["without_init"].n == 3
    assert result.n_points == 5


def test_constant_metric_or_reference_gives_a_status_not_nan():
    assert correlation([0.5] * 5, [1, 2, 3, 4, 5]).status == "constant"
    assert correlation([1, 2, 3, 4, 5], [7.0] * 5).status == "constant"
    assert correlation([1, 2, 3, 4, 5], [7.0] * 5).pearson_r is None


def test_without_init_is_not_applicable_when_there_is_no_epoch_zero(tmp_path):
    path = write_results(tmp_path / "late.json", {"lp_acc": LP, "ami_c1_c2": AMI}, epochs=[20, 40, 60, 80, 100, None])
    c = correlate_run(named(path), "lp_acc").correlations["ami_c1_c2"]
    assert c["with_init"].status == "ok"
    assert (c["without_init"].status, c["without_init"].pearson_r) == ("no init milestone", None)


def test_run_selection_with_and_without_init_consensus_and_baseline(tmp_path):
    rankme = [9.0, 2.0, 3.0, 2.5, 4.0]  # init ranks first: regret 80 - 50 = 30 points; without init: epoch 4, 2 points
    l2 = [0.1, 0.2, 0.5, 0.3, 0.4]  # best at epoch 2: regret 0
    run = load_run(write_run(tmp_path / "r.json", {"lp_acc": SELECTION_LP, "rankme": rankme, "l2_std": l2}))
    rows = select_run(run, "lp_acc", ["rankme", "l2_std"])
    assert rows["rankme"]["with_init"].pick_epoch == 0
    assert rows["rankme"]["with_init"].regret == pytest.approx(30.0)
    assert rows["rankme"]["with_init"].pick_rank == 5
    assert rows["rankme"]["without_init"].pick_epoch == 4
    assert rows["rankme"]["without_init"].regret == pytest.approx(2.0)
    # consensus without init (epochs 1-4): rankme ranks 4, 2, 3, 1; l2_std ranks 4, 1, 3, 2;
    # means 4, 1.5, 3, 1.5: epochs 2 and 4 tie, the later (4) is picked: 2 points.
    c = rows[CONSENSUS]["without_init"]
    assert (c.pick_epoch, c.ties) == (4, 2) and c.regret == pytest.approx(2.0)
    # with init: rankme ranks 1, 5, 3, 4, 2; l2_std 5, 4, 1, 3, 2; means 3, 4.5, 2, 3.5, 2 -> tie 2/4 -> epoch 4
    assert rows[CONSENSUS]["with_init"].pick_epoch == 4
    # baseline: the last epoch (4), 0.78: 2 points, rank 2; tau of epoch order vs SELECTION_LP by hand:
    # epoch order 4 > 3 > 2 > 1 > 0 against SELECTION_LP 2 > 4 > 3 > 1 > 0: discordant pairs (2,3), (2,4): tau = (8-2)/10
    b = rows[BASELINE]["with_init"]
    assert (b.pick_epoch, b.pick_rank) == (4, 2) and b.regret == pytest.approx(2.0)
    assert b.kendall_tau == pytest.approx(0.6)


def test_run_without_init_milestone_and_without_epochs(tmp_path):
    run = load_run(write_run(tmp_path / "r.json", {"lp_acc": SELECTION_LP, "rankme": SELECTION_LP}, epochs=[1, 2, 3, 4, 5]))
    rows = select_run(run, "lp_acc", ["rankme"])
    assert rows["rankme"]["without_init"].status == "no init milestone"
    assert rows["rankme"]["with_init"].regret == 0.0
    run = load_run(write_run(tmp_path / "n.json", {"lp_acc": SELECTION_LP, "rankme": SELECTION_LP}, epochs=[None] * 5))
    assert select_run(run, "lp_acc", ["rankme"])[BASELINE]["with_init"].status == "no epochs"


def test_seed_spread_from_per_seed_values(tmp_path):
    # mean rankme picks epoch 4; seed 0 picks epoch 4, seed 1 picks epoch 2 (regret 0), seed 2 epoch 3 (regret 5):
    # p_change = 2/3, mean regret (2 + 0 + 5) / 3
    seeds = [[4, 2, 3], [1, 1, 1], [2, 9, 3], [3, 1, 9], [9, 3, 2]]
    per_seed = [[{"rankme": v} for v in row] for row in seeds]
    rankme = [sum(row) / 3 for row in seeds]  # 3, 1, 4.67, 4.33, 4.67 -> tie 2/4 -> epoch 4
    run = named(write_run(tmp_path / "r.json", {"lp_acc": SELECTION_LP, "rankme": rankme}, per_seed=per_seed))
    result = correlate_run(run, "lp_acc", ["rankme"])
    spread = result.selection["rankme"]["with_init"].seeds
    assert result.n_seeds == 3
    assert spread.picked_epochs == [4, 2, 3]
    assert spread.p_change == pytest.approx(2 / 3)
    assert spread.regret_mean == pytest.approx(7 / 3)
    assert spread.regret_sd == pytest.approx(stats.tstd([2, 0, 5]))
    assert result.selection[CONSENSUS]["with_init"].seeds.picked_epochs == [4, 2, 3]
    # without per_seed there is no spread
    plain = correlate_run(named(write_run(tmp_path / "p.json", {"lp_acc": SELECTION_LP, "rankme": rankme})), "lp_acc")
    assert plain.n_seeds == 0 and plain.selection["rankme"]["with_init"].seeds is None
