"""Each metric against an independent computation: scikit-learn, or the formula by hand."""

from __future__ import annotations

import json
import math
import re
from dataclasses import replace

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn
from typer.testing import CliRunner
from rich.console import Console
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import adjusted_mutual_info_score, silhouette_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import StandardScaler

from sslmon.engine.clustering import silhouettes, spherical_kmeans
from sslmon.engine.spectrum import spectrum
from sslmon import api
from sslmon import metrics as M
from sslmon.api import score_embeddings
from sslmon.cli import app
from sslmon.errors import OptionsError
from sslmon.evaluation import NO_VIEWS, SEEDED, EvalConfig, _required, evaluate_embeddings
from sslmon.meta import plots
from sslmon.meta.correlate import ordered_keys
from sslmon.models.augment import uint8_views
from sslmon.engine.intermediates import INTERMEDIATES, SEED_DEPENDENT
from sslmon.metrics import METRICS, TRAIN_SPLIT, MetricSpec, MetricUndefined
from sslmon.report import render_table
from sslmon.results import Result, Run


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(n_samples=600, n_features=16, centers=5, cluster_std=2.0, random_state=0)
    return X, y


@pytest.mark.parametrize("block_bytes", [2**28, 8 * 600 * 7, 1])
def test_silhouette_matches_sklearn_for_any_chunking(blobs, block_bytes):
    X, y = blobs
    assert M.silhouette(X, y, block_bytes=block_bytes) == pytest.approx(silhouette_score(X, y), abs=1e-6)


def test_silhouette_with_singletons_and_torch_input_matches_sklearn(blobs):
    X, y = blobs
    y = y.copy()
    y[:3] = [10, 11, 12]  # three singleton clusters: their s_i is 0 by definition
    got = M.silhouette(torch.from_numpy(X).float(), torch.from_numpy(y), block_bytes=8 * 600 * 50)
    assert got == pytest.approx(silhouette_score(X.astype(np.float32), y), abs=1e-6)


def test_silhouette_tiny_case_by_hand():
    # points 0, 1 in cluster A and 4 in cluster B on a line
    X = np.array([[0.0], [1.0], [4.0]])
    a0, b0 = 1.0, 4.0
    a1, b1 = 1.0, 3.0
    expected = ((b0 - a0) / b0 + (b1 - a1) / b1 + 0.0) / 3  # the singleton scores 0
    assert M.silhouette(X, [0, 0, 1]) == pytest.approx(expected, abs=1e-12)


def test_silhouette_undefined_for_one_cluster_or_all_singletons(blobs):
    X, _ = blobs
    with pytest.raises(MetricUndefined, match="distinct value"):
        M.silhouette(X, np.zeros(len(X)))
    with pytest.raises(MetricUndefined, match="fewer clusters than samples"):
        M.silhouette(X[:5], np.arange(5))


def test_ami_matches_sklearn_and_is_label_permutation_invariant():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 5, 300)
    b = np.where(rng.random(300) < 0.7, a, rng.integers(0, 10, 300))
    assert M.ami_c1_c2(a, b) == pytest.approx(adjusted_mutual_info_score(a, b, average_method="arithmetic"))
    assert M.ami_c1_gt(a, (a + 3) % 5) == pytest.approx(1.0)
    with pytest.raises(MetricUndefined):
        M.ami_c1_c2(np.zeros(10), np.arange(10) % 2)


def test_entropy_tiny_case_by_hand():
    # 1-d: x = 0, 0, 0, 1 -> sigma = sqrt(0.1875) = 0.433, width 0.4*sigma = 0.173: bins 0, 0, 0, floor(5.77) = 5
    x = np.array([0.0, 0.0, 0.0, 1.0])
    expected = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert M.entropy_z3(x[:, None]) == pytest.approx(expected, abs=1e-12)
    # 3-d: all four points in different bins -> ln 4
    Z3 = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=float)
    assert M.entropy_z3(Z3) == pytest.approx(math.log(4), abs=1e-12)
    # a huge bin factor puts everything in one bin -> 0 nats
    assert M.entropy_z3(Z3, bin_factor=100) == pytest.approx(0.0)


def test_entropy_matches_numpy_histogramdd():
    rng = np.random.default_rng(1)
    Z3 = rng.normal(size=(2000, 3)) * [1.0, 3.0, 0.5]
    sigma = Z3.std(axis=0)
    lo = Z3.min(axis=0)
    edges = [np.arange(lo[i], Z3[:, i].max() + 0.8 * sigma[i], 0.8 * sigma[i]) for i in range(3)]
    counts, _ = np.histogramdd(Z3, bins=edges)
    p = counts[counts > 0] / len(Z3)
    assert M.entropy_z3(Z3, bin_factor=0.8) == pytest.approx(-(p * np.log(p)).sum(), abs=1e-9)


def test_rankme_by_hand():
    Z = np.array([[3.0, 0.0], [0.0, 1.0], [0.0, 0.0]])  # singular values 3 and 1
    p = np.array([0.75, 0.25]) + 1e-7
    assert M.rankme(Z) == pytest.approx(math.exp(-(p * np.log(p)).sum()), rel=1e-12)
    assert M.rankme(np.eye(8)) == pytest.approx(8.0, rel=1e-5)


def test_rankme_and_alpha_req_from_one_gram_matrix_match_the_svd(blobs):
    X, _ = blobs
    X32 = (X * 100).astype(np.float32)  # large norms: the Gram route must not lose precision
    s = np.linalg.svd(X32.astype(np.float64), compute_uv=False)
    p = s / s.sum() + 1e-7
    assert M.rankme(X32) == pytest.approx(math.exp(-(p * np.log(p)).sum()), rel=1e-9)
    lam = np.linalg.svd(X32 - X32.astype(np.float64).mean(axis=0), compute_uv=False) ** 2 / (len(X32) - 1)
    spec = spectrum(X32)
    np.testing.assert_allclose(spec.covariance, lam, rtol=1e-8)
    slope = np.polyfit(np.log(np.arange(1, len(lam) + 1)), np.log(lam), 1)[0]
    assert M.alpha_req(spec) == pytest.approx(-slope, abs=1e-8)
    assert M.rankme(spec) == M.rankme(X32)
    wide = np.random.default_rng(0).normal(size=(6, 40))  # n < d: only n singular values count
    s = np.linalg.svd(wide, compute_uv=False)
    p = s / s.sum() + 1e-7
    assert M.rankme(wide) == pytest.approx(math.exp(-(p * np.log(p)).sum()), rel=1e-12)


def test_silhouettes_of_several_labellings_in_one_pass_match_sklearn(blobs):
    from sslmon.engine.neighbors import knn_graph

    X, y = blobs
    X32 = X.astype(np.float32)
    rng = np.random.default_rng(1)
    labelings = [y, rng.integers(0, 3, len(y)), (X[:, 0] > 0).astype(int)]
    expected = [silhouette_score(X, lab) for lab in labelings]
    np.testing.assert_allclose(silhouettes(X32, labelings), expected, atol=1e-6)
    stored = knn_graph(X32, 5, keep_distances=True).distances_full
    np.testing.assert_allclose(silhouettes(X32, labelings, distances=stored, block_bytes=4 * 600 * 11), expected, atol=1e-6)


def test_alpha_req_recovers_a_planted_power_law():
    rng = np.random.default_rng(0)
    n, d, alpha = 400, 32, 1.3
    Q, _ = np.linalg.qr(rng.normal(size=(n, d)) - 0)
    Q -= Q.mean(axis=0)  # centred columns ...
    Q, _ = np.linalg.qr(Q)  # ... made orthonormal again (still centred: they span a centred subspace)
    lam = np.arange(1, d + 1, dtype=float) ** -alpha
    Z = Q * np.sqrt(lam * (n - 1))  # covariance eigenvalues exactly lam
    assert M.alpha_req(Z) == pytest.approx(alpha, abs=1e-6)


def test_l2_std_by_hand():
    Z = np.array([[2.0, 0.0], [0.0, 5.0]])  # normalised: (1,0), (0,1): std 0.5 in each dimension
    assert M.l2_std(Z) == pytest.approx(0.5)
    assert M.l2_std(np.tile([[1.0, 2.0, 3.0]], (10, 1))) == pytest.approx(0.0)


@pytest.mark.parametrize("k", [1, 5, 20])
def test_knn_matches_sklearn_weighted_kneighbors(blobs, k):
    X, y = blobs
    Xtr, ytr, Xte, yte = X[:400], y[:400], X[400:], y[400:]
    tau = 0.07
    ref = KNeighborsClassifier(n_neighbors=k, metric="cosine", algorithm="brute", weights=lambda d: np.exp((1 - d) / tau))
    expected = ref.fit(Xtr, ytr).score(Xte, yte)
    assert M.knn_acc(Xtr, ytr, Xte, yte, k=k, temperature=tau, chunk=37) == pytest.approx(expected)


def test_lp_acc_matches_sklearn_probe(blobs):
    X, y = blobs
    scaler = StandardScaler().fit(X[:400])
    clf = LogisticRegression(max_iter=1000, random_state=0).fit(scaler.transform(X[:400]), y[:400])
    expected = clf.score(scaler.transform(X[400:]), y[400:])
    assert M.lp_acc(X[:400], y[:400], X[400:], y[400:]) == pytest.approx(expected)


def test_spherical_kmeans_ignores_row_scale_and_matches_sklearn_on_normalised_rows(blobs):
    X, _ = blobs
    X3 = X[:, :3] + 20.0  # keep directions distinct
    scale = np.random.default_rng(0).uniform(0.1, 10, size=(len(X3), 1))
    labels = spherical_kmeans(X3, 4, seed=0)
    assert adjusted_mutual_info_score(labels, spherical_kmeans(X3 * scale, 4, seed=0)) == pytest.approx(1.0)
    unit = X3 / np.linalg.norm(X3, axis=1, keepdims=True)
    ref = KMeans(4, random_state=0).fit_predict(unit)  # scikit-learn's defaults
    assert adjusted_mutual_info_score(labels, ref) == pytest.approx(1.0)


def test_degenerate_inputs_raise_metric_undefined():
    with pytest.raises(MetricUndefined, match="NaN or Inf"):
        M.rankme(np.array([[1.0, np.nan], [0.0, 1.0]]))
    with pytest.raises(MetricUndefined, match="2-D"):
        M.l2_std(np.zeros(5))
    with pytest.raises(MetricUndefined, match="zero variance"):  # identical rows: the round-off rule says it first
        spherical_kmeans(np.tile([[1.0, 2.0, 3.0]], (50, 1)), 3)
    with pytest.raises(MetricUndefined, match="distinct points"):
        spherical_kmeans(np.tile([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]], (25, 1)), 3)
    with pytest.raises(MetricUndefined, match="zero spread"):
        M.entropy_z3(np.ones((20, 3)))
    with pytest.raises(MetricUndefined, match="zero variance"):
        M.alpha_req(np.ones((20, 4)))
    with pytest.raises(MetricUndefined, match="all embeddings are zero"):
        M.rankme(np.zeros((5, 3)))


def test_every_metric_declares_direction_and_label_need():
    assert set(METRICS) == {
        "ami_c1_c2", "silhouette_c1", "entropy_z3", "rankme", "alpha_req", "l2_std",
        "ami_c1_gt", "silhouette_gt", "knn_acc", "lp_acc",
        "lp_acc_se", "nesum", "stable_rank", "self_clustering", "coherence", "twonn_id",
        "cluster_learnability", "dse", "lidar",
    }
    for spec in METRICS.values():
        assert spec.better in {"higher", "lower", "target", "none"}
        assert spec.summary
    assert METRICS["alpha_req"].sort_key(1.1) < METRICS["alpha_req"].sort_key(2.0)
    assert METRICS["entropy_z3"].sort_key(1.0) < METRICS["entropy_z3"].sort_key(2.0)
    assert [k for k, spec in METRICS.items() if not spec.ranked] == ["twonn_id"]  # no supported direction
    with pytest.raises(ValueError, match="no direction"):
        METRICS["twonn_id"].sort_key(3.0)


def test_huge_magnitude_embeddings_are_undefined_not_made_up():
    rng = np.random.default_rng(0)
    Z_fine = rng.normal(size=(40, 6))
    fine = score_embeddings(Z_fine, config=EvalConfig(k=2), metrics=["rankme", "l2_std"])
    assert fine.metrics["rankme"] is not None and fine.metrics["l2_std"] is not None
    huge = score_embeddings(Z_fine * 1e300, config=EvalConfig(k=2), metrics=["rankme", "l2_std"])
    assert huge.metrics == {"rankme": None, "l2_std": None}
    assert all("magnitude" in huge.errors[key] for key in ("rankme", "l2_std"))


# --------------------------------------------------------------------------- the later label-free metrics, lp_acc's standard error

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
    with pytest.raises(MetricUndefined, match="zero variance"):
        M.twonn_id(np.ones((10, 3)))  # all duplicates: no distance ratio
    with pytest.raises(MetricUndefined, match="distinct"):
        M.twonn_id(np.tile([[0.0, 1.0], [1.0, 0.0]], (5, 1)))  # two distinct points: no second neighbour


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


# --------------------------------------------------------------------------- the registry: adding a metric is one MetricSpec entry

FAST_EVAL = EvalConfig(seeds=(0, 1), umap_epochs=10)


@pytest.fixture
def labelled_z() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, 200)
    return rng.standard_normal((200, 8)) + 4 * np.eye(8)[y], y


@pytest.fixture
def total_variance(monkeypatch) -> MetricSpec:
    """A toy metric registered for one test (monkeypatch restores METRICS afterwards)."""
    spec = MetricSpec(
        "total_variance", "higher", False, "sum of the per-dimension variances of Z (ddof 1)",
        title="total variance", symbol="tr Cov(Z)", unit="squared units of Z",
        needs=("spectrum",), compute=lambda v, cfg: float(v["spectrum"].covariance.sum()),
    )
    monkeypatch.setitem(METRICS, spec.name, spec)
    return spec


@pytest.fixture
def z3_spread(monkeypatch) -> MetricSpec:
    """A toy metric of the UMAP layout: it depends on the evaluation seed."""
    spec = MetricSpec(
        "z3_spread", "lower", False, "mean population std of the columns of Z3",
        title="spread of Z3", symbol="std(Z3)", unit="layout units",
        needs=("Z3",), compute=lambda v, cfg: float(v["Z3"].std(axis=0).mean()),
    )
    monkeypatch.setitem(METRICS, spec.name, spec)
    return spec


def test_total_variance(labelled_z, total_variance):
    Z, _ = labelled_z
    ev = evaluate_embeddings(Z, metrics=["total_variance"], config=EvalConfig(seeds=(0,)))
    assert ev.metrics["total_variance"] == pytest.approx(Z.var(axis=0, ddof=1).sum(), rel=1e-9)


def test_a_registered_label_free_metric_is_in_the_default_set(labelled_z, total_variance):
    Z, _ = labelled_z
    ev = evaluate_embeddings(Z, config=FAST_EVAL)  # no labels, no metrics named: every label-free metric
    assert ev.metrics["total_variance"] == pytest.approx(Z.var(axis=0, ddof=1).sum(), rel=1e-9)
    assert not total_variance.seeded and ev.metrics_std["total_variance"] == 0.0  # seed-independent: no spread
    assert [s["total_variance"] for s in ev.per_seed] == [ev.metrics["total_variance"]] * 2


def test_a_metric_of_z3_pulls_in_the_layout_and_varies_with_the_seed(labelled_z, z3_spread):
    Z, _ = labelled_z
    ev = evaluate_embeddings(Z, metrics=["z3_spread"], config=FAST_EVAL)
    assert z3_spread.seeded
    assert "umap_layout" in ev.timings and ev.Z3 is not None
    assert ev.per_seed[0]["z3_spread"] == pytest.approx(ev.Z3.std(axis=0).mean(), rel=1e-12)  # Z3 is the first seed's
    values = [s["z3_spread"] for s in ev.per_seed]
    assert ev.metrics["z3_spread"] == pytest.approx(np.mean(values)) and ev.metrics_std["z3_spread"] == pytest.approx(np.std(values, ddof=1))
    assert evaluate_embeddings(Z, metrics=["rankme"], config=FAST_EVAL).Z3 is None  # no metric asks for the layout: none is made


def test_a_registered_metric_gets_a_column_with_its_arrow_and_a_line_in_the_listing(labelled_z, total_variance, runner):
    Z, _ = labelled_z
    ev = evaluate_embeddings(Z, metrics=["rankme", "total_variance"], config=EvalConfig(seeds=(0,)))
    console = Console(record=True, width=200)
    render_table(Run(config={}, results=[Result("a", None, ev.metrics, metrics_std=ev.metrics_std)]), "total_variance", console)
    text = console.export_text()
    assert "variance ↑" in text and f"{Z.var(axis=0, ddof=1).sum():.4g}" in text
    assert "ranked by total_variance (higher is better" in " ".join(text.split())  # the title may wrap
    listing = runner.invoke(app, ["metrics"])
    assert listing.exit_code == 0
    assert "total_variance" in listing.stdout and "per-dimension variances" in re.sub(r"[\s│]+", " ", listing.stdout)


def test_registry_order_is_the_display_order(total_variance):
    assert ordered_keys(["aaa", "total_variance", "rankme"]) == ["rankme", "total_variance", "aaa"]  # registered before unknown keys
    assert plots._name("total_variance") == "total variance [total_variance]"
    assert plots._label("total_variance") == "tr Cov(Z)  (squared units of Z)"


def test_arrows():
    assert [METRICS[k].arrow for k in ("rankme", "entropy_z3", "alpha_req", "twonn_id")] == ["↑", "↓", "→1", "·"]
    assert replace(METRICS["alpha_req"], target=2.5).arrow == "→2.5"


def test_every_entry_is_consistent():
    for key, spec in METRICS.items():
        assert key == spec.name and spec.title and spec.symbol and spec.unit and spec.summary, key
        assert spec.needs and all(n in INTERMEDIATES or n in METRICS for n in spec.needs), key
        assert spec.needs_labels == ("labels" in _required(list(spec.needs))), key  # evaluation's own closure
        assert spec.silhouette_of is None or spec.silhouette_of in spec.needs, key
        assert spec.uncertainty_of is None or spec.uncertainty_of in spec.needs, key
        assert (spec.better == "target") == (spec.target is not None), key
    order = list(INTERMEDIATES)
    for name, item in INTERMEDIATES.items():  # evaluation builds them in table order: every need comes first
        assert name == item.name and item.doc and all(order.index(dep) < order.index(name) for dep in item.needs), name
    assert SEED_DEPENDENT == ("Z3", "C1", "C2")
    # fitted on the train split when there is one: exactly the metrics that need the reference split
    assert TRAIN_SPLIT == ["knn_acc", "lp_acc", "lp_acc_se"]
    assert TRAIN_SPLIT == [m for m in METRICS if {"Z_fit", "y_score"} & _required([m])]
    # the metrics of the layout and its clusters (the paper's four) are exactly the seeded ones
    assert SEEDED == ("ami_c1_c2", "silhouette_c1", "entropy_z3", "ami_c1_gt")


def test_batched_silhouettes_equal_each_entry_alone(labelled_z):
    Z, y = labelled_z
    cfg = EvalConfig(seeds=(0,), umap_epochs=10)
    ev = evaluate_embeddings(Z, y, metrics=["silhouette_c1", "silhouette_gt"], config=cfg)
    alone = {"silhouette_c1": {"Z": Z, "C1": ev.C1}, "silhouette_gt": {"Z": Z, "labels": y}}
    for key, values in alone.items():
        assert ev.metrics[key] == pytest.approx(METRICS[key].compute(values, cfg), abs=1e-12)


# --------------------------------------------------------------------------- cluster learnability, DSE, LiDAR


def _prequential_by_loop(Z: np.ndarray, y: np.ndarray, k: int, temperature: float, seed: int) -> float:
    """Cluster learnability written out: one row at a time, a vote over the most similar earlier rows."""
    order = np.random.default_rng(seed).permutation(len(Z))
    X = Z[order] / np.linalg.norm(Z[order], axis=1, keepdims=True)
    labels = y[order]
    hits = 0
    for t in range(1, len(X)):
        sims = X[:t] @ X[t]
        near = np.argsort(-sims, kind="stable")[:k]
        votes: dict[int, float] = {}
        for j in near:
            votes[labels[j]] = votes.get(labels[j], 0.0) + math.exp(sims[j] / temperature)
        best = max(votes.values())
        hits += min(c for c, v in votes.items() if v == best) == labels[t]
    return hits / (len(X) - 1)


def test_cluster_learnability_of_separated_clusters_by_hand():
    # three tight clusters along orthogonal axes, sizes 4, 5, 6 (n = 15): a row is predicted wrongly exactly when
    # no row of its own cluster came before it; that happens to the first row of each cluster, and the first row
    # of all is not predicted: 15 - 1 predictions, 3 - 1 wrong, whatever the order -> 12 / 14
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], [4, 5, 6])
    Z = np.eye(3)[y] * 5 + rng.normal(scale=0.01, size=(15, 3))
    for seed in (0, 1, 2):
        assert M.cluster_learnability(Z, y, k=1, seed=seed) == pytest.approx(12 / 14)
        assert M.cluster_learnability(Z, y, seed=seed) == pytest.approx(12 / 14)  # k = 20, weighted: the same


@pytest.mark.parametrize("k, chunk", [(1, 1024), (3, 4), (20, 7)])
def test_cluster_learnability_matches_a_row_by_row_loop(k, chunk):
    rng = np.random.default_rng(4)
    Z = rng.normal(size=(60, 5))
    y = rng.integers(0, 3, 60)  # labels unrelated to Z: learnability near chance
    got = M.cluster_learnability(Z, y, k=k, temperature=0.5, seed=7, chunk=chunk)
    assert got == pytest.approx(_prequential_by_loop(Z, y, k, 0.5, 7))
    with pytest.raises(MetricUndefined):
        M.cluster_learnability(Z, np.zeros(60), k=k)  # a single pseudo-label


def test_dse_by_hand():
    # unit vectors at +-60 degrees from +x (cluster 0) and from -x (cluster 1), scaled by 3 (rows are normalised)
    c, s = 0.5, math.sqrt(3) / 2
    X = np.array([[c, s], [c, -s], [-c, s], [-c, -s]])
    y = np.array([0, 0, 1, 1])
    # centroids (+-0.5, 0); each row's squared distance to the other centroid: 1^2 + 3/4 -> M_inter = 1.75
    # centred cluster (0, +-s): singular values sqrt(2 s^2) = sqrt(1.5) and 0, / sqrt(2 - 1) -> M_intra = sqrt(1.5)
    # X^T X = diag(1, 3): singular values 1, sqrt(3); erank = exp(H(p)), p = (1, sqrt 3) / (1 + sqrt 3); / min(4, 2)
    p = np.array([1, math.sqrt(3)]) / (1 + math.sqrt(3))
    expected = 1.75 - math.sqrt(1.5) + math.exp(-(p * np.log(p)).sum()) / 2
    assert M.dse(3 * X, y) == pytest.approx(expected)


def test_dse_matches_per_cluster_svds():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 4, 80)
    y[:2] = 3  # at least two rows in the last cluster
    y[2] = 4  # a singleton: no radius, but a centroid others are measured against
    Z = rng.normal(size=(80, 6)) + 2 * np.eye(6)[y]
    X = Z / np.linalg.norm(Z, axis=1, keepdims=True)
    labels = np.unique(y)
    mus = np.array([X[y == c].mean(axis=0) for c in labels])
    inter = np.mean([np.mean([min(((x - mus[i]) ** 2).sum() for i in range(len(labels)) if labels[i] != c) for x in X[y == c]])
                     for c in labels])
    intra = np.mean([np.linalg.svd(X[y == c] - X[y == c].mean(axis=0), compute_uv=False).sum() / math.sqrt((y == c).sum() - 1)
                     for c in labels if (y == c).sum() >= 2])
    sv = np.linalg.svd(X, compute_uv=False)
    q = sv / sv.sum()
    assert M.dse(Z, y) == pytest.approx(inter - intra + math.exp(-(q * np.log(q)).sum()) / 6)


def test_lidar_by_hand():
    # 4 images, 4 views each at +-s along each axis around means (1,0), (-1,0), (0,2), (0,-2): within scatter
    # (2 s^2 / 3) I + delta I is isotropic, so the LDA eigenvalues are proportional to those of the between
    # scatter diag(2, 8) / 3: p = (0.2, 0.8) whatever s and delta
    means = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 2.0], [0.0, -2.0]])
    offsets = 0.3 * np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    views = means[:, None, :] + offsets[None, :, :]
    assert M.lidar(views) == pytest.approx(math.exp(-(0.2 * math.log(0.2) + 0.8 * math.log(0.8))), rel=1e-5)


def test_lidar_matches_the_generalised_eigenproblem():
    rng = np.random.default_rng(6)
    views = rng.normal(size=(7, 3, 4)) + 3 * rng.normal(size=(7, 1, 4))
    n, q, d = views.shape
    means = views.mean(axis=1)
    grand = means.mean(axis=0)
    S_b = sum(np.outer(m - grand, m - grand) for m in means) / (n - 1)
    S_w = sum(np.outer(e - means[i], e - means[i]) for i in range(n) for e in views[i]) / (n * (q - 1)) + 1e-4 * np.eye(d)
    lam = scipy.linalg.eigh(S_b, S_w, eigvals_only=True).clip(0)
    p = lam / lam.sum() + 1e-7
    assert M.lidar(views) == pytest.approx(math.exp(-(p * np.log(p)).sum()))
    assert 1 <= M.lidar(views) <= min(d, n - 1) + 1e-3
    with pytest.raises(MetricUndefined, match="same mean"):
        M.lidar(np.ones((5, 3, 4)))
    with pytest.raises(MetricUndefined, match="at least"):
        M.lidar(views[:, :1])  # one view per image: no within scatter


def test_pseudo_label_metrics_share_one_kmeans_of_z():
    rng = np.random.default_rng(7)
    y = rng.integers(0, 4, 300)
    Z = rng.normal(size=(300, 12)) + 3 * np.eye(12)[y]
    cfg = EvalConfig(k=4, seeds=(0, 1))
    ev = evaluate_embeddings(Z, config=cfg, metrics=["cluster_learnability", "dse"])
    assert ev.errors == {} and "kmeans_z" in ev.timings and ev.Z3 is None  # no UMAP
    CZ = spherical_kmeans(Z, 4, cfg.seed)
    assert ev.metrics["cluster_learnability"] == pytest.approx(M.cluster_learnability(Z, CZ, cfg.knn_k, cfg.knn_temperature, cfg.seed))
    assert ev.metrics["dse"] == pytest.approx(M.dse(Z, CZ))
    assert ev.metrics_std["dse"] == 0.0  # not seeded: the data seed, not the evaluation seeds
    assert ev.metrics["cluster_learnability"] > 0.9  # four well separated blobs are learned at once
    assert evaluate_embeddings(Z, config=EvalConfig(seeds=(0,)), metrics=["dse"]).metrics["dse"] is None  # no k


def test_lidar_needs_views_in_evaluate():
    rng = np.random.default_rng(8)
    Z = rng.normal(size=(80, 4))
    default = evaluate_embeddings(Z, config=EvalConfig(k=2, seeds=(0,), umap_epochs=5))
    assert "lidar" not in default.metrics and "lidar" not in default.errors  # left out, like label metrics without labels
    asked = evaluate_embeddings(Z, config=EvalConfig(k=2, seeds=(0,)), metrics=["lidar", "rankme"])
    assert asked.metrics["lidar"] is None and asked.errors["lidar"] == NO_VIEWS and asked.metrics["rankme"] is not None
    views = rng.normal(size=(10, 3, 4)) + rng.normal(size=(10, 1, 4))
    given = evaluate_embeddings(Z, config=EvalConfig(k=2, seeds=(0,)), metrics=["lidar"], views=views)
    assert given.metrics["lidar"] == pytest.approx(M.lidar(views))


def test_uint8_views_are_seeded_and_keep_shape():
    images = torch.randint(0, 256, (6, 3, 10, 10), dtype=torch.uint8)
    first = list(uint8_views(images, 3, seed=1, batch_size=4))
    again = list(uint8_views(images, 3, seed=1, batch_size=4))
    assert len(first) == 3 and all(v.shape == images.shape and v.dtype == torch.uint8 for v in first)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(first[0], first[1])


def test_score_model_embeds_views_for_lidar(monkeypatch):
    monkeypatch.setattr("sslmon.rules.LIDAR_IMAGES", 12)  # its home (sslmon.api re-exports it)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 5))
    images = torch.randint(0, 256, (30, 3, 8, 8), dtype=torch.uint8)
    cfg = EvalConfig(k=2, seeds=(0,), seed=3)
    result = api.score_model(model, images, config=cfg, metrics=["lidar", "rankme"], device="cpu", lidar_views=4)
    # the same views built by hand: the seeded subset of 12 images, 4 views, (x / 255 - 0.5) / 0.5, the model
    subset = np.sort(np.random.default_rng(3).permutation(30)[:12])
    with torch.no_grad():
        views = np.stack([model((v.float() / 255 - 0.5) / 0.5).numpy() for v in uint8_views(images[subset], 4, 3)], axis=1)
    assert views.shape == (12, 4, 5)
    assert result.metrics["lidar"] == pytest.approx(M.lidar(views), rel=1e-4) and "embed_views" in result.timings
    off = api.score_model(model, images, config=cfg, metrics=["lidar"], device="cpu")
    assert off.metrics["lidar"] is None and off.errors["lidar"] == NO_VIEWS and "embed_views" not in off.timings
    constant = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 5))
    nn.init.zeros_(constant[1].weight)
    flat = api.score_model(constant, images, config=cfg, metrics=["lidar"], device="cpu", lidar_views=2)
    assert flat.metrics["lidar"] is None and "same mean" in flat.errors["lidar"]


def test_lidar_views_option_and_flag(tmp_path):
    with pytest.raises(OptionsError, match="lidar_views"):
        api.Options(lidar_views=1)
    # lidar is added, after the collapse alarm's l2_std
    assert api.Options(lidar_views=5, metrics=("rankme",), rank_by="rankme").resolve("checkpoints").metrics == ("rankme", "l2_std", "lidar")
    path = tmp_path / "emb.npz"
    rng = np.random.default_rng(9)
    np.savez(path, embeddings=rng.normal(size=(60, 4)), labels=rng.integers(0, 2, 60))
    bad = CliRunner().invoke(app, ["score", str(path), "--metrics", "rankme", "--lidar-views", "1"])
    assert bad.exit_code == 2 and "must be 0 (off) or >= 2, got 1" in bad.output
    ok = CliRunner().invoke(app, ["score", str(path), "--metrics", "rankme", "--rank-by", "rankme", "--lidar-views", "4", "-f", "json"])
    assert ok.exit_code == 0, ok.output
    (record,) = json.loads(ok.stdout)["results"]
    assert record["metrics"]["lidar"] is None and record["errors"]["lidar"] == NO_VIEWS  # embedding files have no views


def test_lightning_callback_threads_lidar_views():
    lightning = pytest.importorskip("lightning", reason="needs the extra sslmon[lightning]")
    from sslmon.lightning import SSLMonitor

    with pytest.raises(ValueError, match="lidar_views"):
        SSLMonitor(lidar_views=1)

    class Module(lightning.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.backbone = nn.Sequential(nn.Flatten(), nn.Linear(3 * 28 * 28, 6))  # grayscale is repeated to RGB

    monitor = SSLMonitor(limit=40, metrics=["rankme"], seeds=1, lidar_views=3)
    assert monitor.metrics == ["rankme", "lidar"]
    result = monitor.score(Module(), epoch=1)
    assert result.metrics["lidar"] is not None and 1 <= result.metrics["lidar"] <= 6 and "embed_views" in result.timings
