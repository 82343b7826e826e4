"""Checkpoint selection: picks, regret, rank, Kendall tau, consensus and baseline on hand-made runs.

Every expected number below is worked out by hand in the comments, not produced by the code.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from scipy import stats
from typer.testing import CliRunner

from sslmon.cli import app
from sslmon.meta.correlate import BASELINE, CONSENSUS, correlate_run, select_run
from sslmon.metrics import METRICS
from sslmon.io.runfile import load_run
from sslmon.selection import consensus_keys, metric_keys, select
from test_meta_correlate import named, write_results

EPOCHS = [0, 1, 2, 3, 4]
LP = [0.50, 0.70, 0.80, 0.75, 0.78]  # best: epoch 2 (0.80); by LP the order is 2 > 4 > 3 > 1 > 0


def write_run(path: Path, metrics: dict[str, list], epochs: list = EPOCHS, per_seed: list | None = None) -> Path:
    return write_results(path, metrics, epochs, per_seed)


def by_key(values, key="rankme"):
    return metric_keys(values, METRICS[key])


def test_pick_regret_rank_and_tau_by_hand():
    # A "higher is better" metric that peaks at epoch 4 (0.78): regret = 80 - 78 = 2 points,
    # rank 2 (only epoch 2 is better).
    metric = [1.0, 2.0, 3.0, 2.5, 4.0]
    s = select(by_key(metric), by_key(LP, "lp_acc"), LP, EPOCHS, [f"e{e}" for e in EPOCHS])
    assert (s.status, s.pick_epoch, s.pick_name, s.pick_rank, s.ties) == ("ok", 4, "e4", 2, 1)
    assert s.regret == pytest.approx(2.0)
    assert (s.pick_reference, s.best_reference) == (0.78, 0.80)
    # Kendall tau by hand: metric order 4 > 2 > 3 > 1 > 0, LP order 2 > 4 > 3 > 1 > 0;
    # of the 10 pairs only (2, 4) is discordant: tau = (9 - 1) / 10 = 0.8.
    assert s.kendall_tau == pytest.approx(0.8)
    assert (s.n, s.n_undefined) == (5, 0)


def test_lower_is_better_and_target_metrics_pick_by_their_direction():
    # entropy (lower is better) is smallest at epoch 3: regret 80 - 75 = 5 points, rank 3.
    s = select(by_key([5, 4, 3, 1, 2], "entropy_z3"), by_key(LP, "lp_acc"), LP, EPOCHS, list("abcde"))
    assert (s.pick_epoch, s.pick_rank) == (3, 3) and s.regret == pytest.approx(5.0)
    # alpha-ReQ (closest to 1): |a - 1| = 1.5, 0.3, 0.05, 0.2, 0.6 -> epoch 2, the best: regret 0, rank 1.
    s = select(by_key([2.5, 0.7, 1.05, 1.2, 0.4], "alpha_req"), by_key(LP, "lp_acc"), LP, EPOCHS, list("abcde"))
    assert (s.pick_epoch, s.pick_rank, s.regret) == (2, 1, 0.0)


def test_ties_go_to_the_later_milestone_and_are_counted():
    # epochs 1 and 3 tie at the top (9): the later, epoch 3, is picked; regret 5, rank 3.
    s = select(by_key([0, 9, 1, 9, 2]), by_key(LP, "lp_acc"), LP, EPOCHS, list("abcde"))
    assert (s.pick_epoch, s.ties, s.pick_rank) == (3, 2, 3)
    assert s.regret == pytest.approx(5.0)


def test_reference_ties_share_the_best_rank():
    lp = [0.5, 0.8, 0.8, 0.7, 0.6]  # epochs 1 and 2 tie for the best accuracy
    s = select(by_key([0, 5, 1, 2, 3]), by_key(lp, "lp_acc"), lp, EPOCHS, list("abcde"))
    assert (s.pick_epoch, s.pick_rank, s.regret) == (1, 1, 0.0)


def test_undefined_metric_values_are_skipped_and_counted():
    # The metric is undefined exactly where LP is best (epoch 2): the pick is epoch 4 (0.78), but the
    # regret is still against the run's best, 0.80: 2 points.
    metric = [1.0, 2.0, None, 2.5, 4.0]
    s = select(by_key(metric), by_key(LP, "lp_acc"), LP, EPOCHS, list("abcde"))
    assert (s.pick_epoch, s.n, s.n_undefined, s.pick_rank) == (4, 4, 1, 2)
    assert s.regret == pytest.approx(2.0)
    # one defined value is no choice at all
    s = select(by_key([None, None, None, 1.0, None]), by_key(LP, "lp_acc"), LP, EPOCHS, list("abcde"))
    assert (s.status, s.regret, s.n, s.n_undefined) == ("not enough data", None, 1, 4)


def test_constant_metric_has_no_tau_and_picks_the_last_milestone():
    s = select(by_key([3.0] * 5), by_key(LP, "lp_acc"), LP, EPOCHS, list("abcde"))
    assert (s.kendall_tau, s.ties, s.pick_epoch) == (None, 5, 4)


def test_consensus_is_the_mean_rank_by_hand():
    # a (higher better): 1, 3, 2 -> ranks (1 = best) 3, 1, 2
    # b (lower better):  5, 6, 4 -> ranks 2, 3, 1
    # c (higher better): 7, None, 7 -> ranks 1.5, -, 1.5 (tie: mean rank)
    cols = [by_key([1, 3, 2]), by_key([5, 6, 4], "entropy_z3"), by_key([7, None, 7])]
    assert consensus_keys(cols) == pytest.approx([(3 + 2 + 1.5) / 3, (1 + 3) / 2, (2 + 1 + 1.5) / 3])
    assert consensus_keys([by_key([None, 1.0])]) == [None, 1.0]


def test_run_selection_with_and_without_init_consensus_and_baseline(tmp_path):
    rankme = [9.0, 2.0, 3.0, 2.5, 4.0]  # init ranks first: regret 80 - 50 = 30 points; without init: epoch 4, 2 points
    l2 = [0.1, 0.2, 0.5, 0.3, 0.4]  # best at epoch 2: regret 0
    run = load_run(write_run(tmp_path / "r.json", {"lp_acc": LP, "rankme": rankme, "l2_std": l2}))
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
    # baseline: the last epoch (4), 0.78: 2 points, rank 2; tau of epoch order vs LP by hand:
    # epoch order 4 > 3 > 2 > 1 > 0 against LP 2 > 4 > 3 > 1 > 0: discordant pairs (2,3), (2,4): tau = (8-2)/10
    b = rows[BASELINE]["with_init"]
    assert (b.pick_epoch, b.pick_rank) == (4, 2) and b.regret == pytest.approx(2.0)
    assert b.kendall_tau == pytest.approx(0.6)


def test_run_without_init_milestone_and_without_epochs(tmp_path):
    run = load_run(write_run(tmp_path / "r.json", {"lp_acc": LP, "rankme": LP}, epochs=[1, 2, 3, 4, 5]))
    rows = select_run(run, "lp_acc", ["rankme"])
    assert rows["rankme"]["without_init"].status == "no init milestone"
    assert rows["rankme"]["with_init"].regret == 0.0
    run = load_run(write_run(tmp_path / "n.json", {"lp_acc": LP, "rankme": LP}, epochs=[None] * 5))
    assert select_run(run, "lp_acc", ["rankme"])[BASELINE]["with_init"].status == "no epochs"


def test_seed_spread_from_per_seed_values(tmp_path):
    # mean rankme picks epoch 4; seed 0 picks epoch 4, seed 1 picks epoch 2 (regret 0), seed 2 epoch 3 (regret 5):
    # p_change = 2/3, mean regret (2 + 0 + 5) / 3
    seeds = [[4, 2, 3], [1, 1, 1], [2, 9, 3], [3, 1, 9], [9, 3, 2]]
    per_seed = [[{"rankme": v} for v in row] for row in seeds]
    rankme = [sum(row) / 3 for row in seeds]  # 3, 1, 4.67, 4.33, 4.67 -> tie 2/4 -> epoch 4
    run = named(write_run(tmp_path / "r.json", {"lp_acc": LP, "rankme": rankme}, per_seed=per_seed))
    result = correlate_run(run, "lp_acc", ["rankme"])
    spread = result.selection["rankme"]["with_init"].seeds
    assert result.n_seeds == 3
    assert spread.picked_epochs == [4, 2, 3]
    assert spread.p_change == pytest.approx(2 / 3)
    assert spread.regret_mean == pytest.approx(7 / 3)
    assert spread.regret_sd == pytest.approx(stats.tstd([2, 0, 5]))
    assert result.selection[CONSENSUS]["with_init"].seeds.picked_epochs == [4, 2, 3]
    # without per_seed there is no spread
    plain = correlate_run(named(write_run(tmp_path / "p.json", {"lp_acc": LP, "rankme": rankme})), "lp_acc")
    assert plain.n_seeds == 0 and plain.selection["rankme"]["with_init"].seeds is None


def test_cli_selection_table_and_json(tmp_path):
    path = write_run(tmp_path / "r.json", {"lp_acc": LP, "rankme": [9.0, 2.0, 3.0, 2.5, 4.0], "l2_std": [0.1, 0.2, 0.5, 0.3, 0.4]})
    result = CliRunner().invoke(app, ["correlate", str(path), "--consensus", "rankme,l2_std", "-f", "json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    run = doc["runs"][0]
    assert run["consensus_metrics"] == ["rankme", "l2_std"]
    assert run["selection"]["rankme"]["with_init"]["regret"] == pytest.approx(30.0)
    assert doc["mean_regret"]["l2_std"]["with_init"] == pytest.approx(0.0)
    table = CliRunner().invoke(app, ["correlate", str(path), "--consensus", "rankme,l2_std"])
    assert table.exit_code == 0
    assert "consensus (rankme, l2_std)" in table.stdout and "last milestone" in table.stdout
    assert "ep 0 30.00pt #5" in table.stdout
    bad = CliRunner().invoke(app, ["correlate", str(path), "--consensus", "rankme,nope"])
    assert bad.exit_code == 2 and "nope" in bad.output
