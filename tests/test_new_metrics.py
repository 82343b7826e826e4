"""The later label-free metrics (and LiDAR's views) and lp_acc's standard error against hand computations on tiny cases."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn
from typer.testing import CliRunner

from sslmon import api
from sslmon import metrics as M
from sslmon.cli import app
from sslmon.errors import OptionsError
from sslmon.evaluation import NO_VIEWS, EvalConfig, evaluate_embeddings
from sslmon.metrics import METRICS, MetricUndefined
from sslmon.models.augment import uint8_views

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
    CZ = M.spherical_kmeans(Z, 4, cfg.seed)
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
    monkeypatch.setattr(api, "LIDAR_IMAGES", 12)
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
    assert api.Options(lidar_views=5, metrics=("rankme",), rank_by="rankme").resolve("checkpoints").metrics == ("rankme", "lidar")
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
