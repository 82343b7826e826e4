"""Each metric against an independent computation: scikit-learn, or the formula by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import adjusted_mutual_info_score, silhouette_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import StandardScaler

from sslmon import metrics as M
from sslmon.metrics import METRICS, MetricUndefined


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
    # 1-d: x = 0, 0, 0, 1 -> sigma = sqrt(0.1875) = 0.433, width 0.4*sigma = 0.173: bins 0, 0, 0, 5
    x = np.array([0.0, 0.0, 0.0, 1.0])
    assert math.floor(1.0 / (0.4 * math.sqrt(0.1875))) == 5
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
    spec = M.spectrum(X32)
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
    np.testing.assert_allclose(M.silhouettes(X32, labelings), expected, atol=1e-6)
    stored = knn_graph(X32, 5, keep_distances=True).distances_full
    np.testing.assert_allclose(M.silhouettes(X32, labelings, distances=stored, block_bytes=4 * 600 * 11), expected, atol=1e-6)


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
    labels = M.spherical_kmeans(X3, 4, seed=0)
    assert adjusted_mutual_info_score(labels, M.spherical_kmeans(X3 * scale, 4, seed=0)) == pytest.approx(1.0)
    unit = X3 / np.linalg.norm(X3, axis=1, keepdims=True)
    ref = KMeans(4, random_state=0).fit_predict(unit)  # scikit-learn's defaults
    assert adjusted_mutual_info_score(labels, ref) == pytest.approx(1.0)


def test_degenerate_inputs_raise_metric_undefined():
    with pytest.raises(MetricUndefined, match="NaN or Inf"):
        M.rankme(np.array([[1.0, np.nan], [0.0, 1.0]]))
    with pytest.raises(MetricUndefined, match="2-D"):
        M.l2_std(np.zeros(5))
    with pytest.raises(MetricUndefined, match="distinct points"):
        M.spherical_kmeans(np.tile([[1.0, 2.0, 3.0]], (50, 1)), 3)
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
        assert spec.better in {"higher", "lower", "target"}
        assert spec.summary
    assert METRICS["alpha_req"].sort_key(1.1) < METRICS["alpha_req"].sort_key(2.0)
    assert METRICS["entropy_z3"].sort_key(1.0) < METRICS["entropy_z3"].sort_key(2.0)
