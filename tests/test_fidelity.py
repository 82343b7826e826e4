"""The defects of the fidelity review (issue 16, item 5) and issue 21's made-up numbers, each against an
independent computation (numpy/scipy/scikit-learn by hand)."""

from __future__ import annotations

from dataclasses import replace
from importlib import metadata
import json

import numpy as np
import pytest
from scipy.spatial.distance import cdist
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs

from sslmon.engine.clustering import spherical_kmeans
from sslmon import api, evaluation
from sslmon import metrics as M
from sslmon.errors import OptionsError
from sslmon.evaluation import EvalConfig, evaluate_embeddings
from sslmon.io import cache
from sslmon.io.cache import cache_key
from sslmon.io.runfile import to_json
from sslmon.meta.correlate import select_run
from sslmon.metrics import METRICS, MetricNote, MetricUndefined
from sslmon.results import Result, Run

SPECTRUM = ["rankme", "alpha_req", "nesum", "stable_rank", "coherence", "l2_std"]


# --------------------------------------------------------------------------- alpha-ReQ: fixed range, floored


def alpha_by_hand(Z: np.ndarray, floor: float = 1e-8) -> float:
    """numpy's covariance eigenvalues, the first min(n - 1, d), floored at floor * the largest, log-log polyfit."""
    lam = np.sort(np.linalg.eigvalsh(np.cov(np.asarray(Z, dtype=np.float64), rowvar=False)))[::-1]
    lam = np.maximum(lam[: min(len(Z) - 1, lam.size)], floor * lam[0])
    return -np.polyfit(np.log(np.arange(1, len(lam) + 1)), np.log(lam), 1)[0]


@pytest.mark.parametrize("shape", [(400, 32), (20, 64)])  # n > d and n <= d (range 1..n - 1)
def test_alpha_req_matches_the_floored_fit_by_hand(shape):
    rng = np.random.default_rng(0)
    Z = rng.normal(size=shape) * np.arange(1, shape[1] + 1) ** -0.7  # a power-law-like spectrum
    assert M.alpha_req(Z) == pytest.approx(alpha_by_hand(Z), rel=1e-9)
    assert M.alpha_req(Z.astype(np.float32)) == pytest.approx(alpha_by_hand(Z.astype(np.float32)), rel=1e-6)


def test_a_rank_8_embedding_is_not_closer_to_1_than_an_isotropic_one():
    rng = np.random.default_rng(0)
    isotropic = rng.normal(size=(1000, 128))
    rank8 = rng.normal(size=(1000, 8)) @ rng.normal(size=(8, 128))
    a_iso, a_rank8 = M.alpha_req(isotropic), M.alpha_req(rank8)
    assert a_iso == pytest.approx(alpha_by_hand(isotropic), rel=1e-9)
    # 120 collapsed directions sit at the floor (numpy's eigenvalues there are round-off, raised to the same floor)
    assert a_rank8 == pytest.approx(alpha_by_hand(rank8), rel=1e-6)
    assert abs(a_rank8 - 1) > abs(a_iso - 1) and a_rank8 > 2  # collapse: a steep spectrum, far from 1


def test_the_alpha_req_range_floor_and_kmeans_n_init_are_in_the_config():
    config = EvalConfig().as_dict()
    assert config["alpha_req_range"] == "i = 1..min(n - 1, d)" and config["alpha_req_floor"] == 1e-8
    assert config["kmeans_n_init"] == 1
    X, _ = make_blobs(n_samples=300, centers=4, n_features=3, random_state=0)
    U = X / np.linalg.norm(X, axis=1, keepdims=True)
    by_hand = KMeans(n_clusters=4, n_init=1, random_state=5).fit_predict(U)
    assert np.array_equal(spherical_kmeans(X, 4, seed=5), by_hand)


# --------------------------------------------------------------------------- collapse and scale: no round-off values


def collapsed_rows(rounding: bool) -> np.ndarray:
    """300 identical float32 rows; with ``rounding``, each entry moved by up to 2 ulps (rows equal up to round-off)."""
    rng = np.random.default_rng(0)
    Z = np.tile(rng.normal(size=64).astype(np.float32), (300, 1))
    if rounding:
        Z = np.nextafter(Z, np.where(rng.random(Z.shape) < 0.5, -np.inf, np.inf).astype(np.float32))
        Z = np.nextafter(Z, np.where(rng.random(Z.shape) < 0.5, -np.inf, np.inf).astype(np.float32))
    return Z


def test_identical_rows_get_null_and_a_reason_whatever_the_rounding():
    exact, rounded = (evaluate_embeddings(collapsed_rows(r), config=EvalConfig(k=3, seeds=(0,)), metrics=SPECTRUM)
                      for r in (False, True))
    assert not np.array_equal(collapsed_rows(False), collapsed_rows(True))
    assert exact.metrics == rounded.metrics and exact.errors == rounded.errors  # the answer does not depend on rounding
    for key in ("alpha_req", "nesum", "coherence"):
        assert exact.metrics[key] is None and "zero variance" in exact.errors[key]
    # what is defined for a rank-1 matrix, by hand: one singular value; RankMe of p = (1, 0, ...) + 1e-7
    p = np.r_[1.0, np.zeros(63)] + 1e-7
    assert exact.metrics["rankme"] == pytest.approx(np.exp(-(p * np.log(p)).sum()), rel=1e-12)
    assert exact.metrics["stable_rank"] == 1.0 and exact.metrics["l2_std"] == 0.0


def test_an_exactly_collapsed_checkpoint_and_identical_rows_give_the_same_reason():
    ones = np.ones((300, 16))
    ev = evaluate_embeddings(ones, config=EvalConfig(k=3, seeds=(0,)), metrics=["alpha_req", "nesum"])
    ref = evaluate_embeddings(collapsed_rows(False), config=EvalConfig(k=3, seeds=(0,)), metrics=["alpha_req", "nesum"])
    assert ev.metrics == {"alpha_req": None, "nesum": None} and ev.errors == ref.errors


@pytest.mark.parametrize("factor", [2.0**-1000, 1e-300])
def test_tiny_embeddings_get_the_numbers_of_their_unscaled_selves(factor):
    X, y = make_blobs(n_samples=200, centers=3, n_features=8, random_state=0)
    wanted = ["l2_std", "rankme", "alpha_req", "nesum", "stable_rank", "coherence", "twonn_id", "silhouette_gt", "knn_acc",
              "lp_acc"]
    config = EvalConfig(seeds=(0,))
    ev = evaluate_embeddings(X * factor, y, config=config, metrics=wanted)
    assert ev.errors == {}
    # independent: numpy on the unscaled embeddings
    U = X / np.linalg.norm(X, axis=1, keepdims=True)
    assert ev.metrics["l2_std"] == pytest.approx(U.std(axis=0).mean(), rel=1e-9)
    s = np.linalg.svd(X, compute_uv=False)
    p = s / s.sum() + 1e-7
    assert ev.metrics["rankme"] == pytest.approx(np.exp(-(p * np.log(p)).sum()), rel=1e-9)
    assert ev.metrics["alpha_req"] == pytest.approx(alpha_by_hand(X), rel=1e-8)
    unscaled = evaluate_embeddings(X, y, config=config, metrics=wanted)
    for key in wanted:
        assert ev.metrics[key] == pytest.approx(unscaled.metrics[key], rel=1e-9), key


# --------------------------------------------------------------------------- TwoNN: duplicates on the evaluate path


def twonn_by_hand(X: np.ndarray, discard: float = 0.1) -> float:
    """TwoNN on the distinct rows: float64 brute-force distances (scipy), slope through the origin."""
    X = np.unique(np.asarray(X, dtype=np.float64), axis=0)
    D = cdist(X, X)
    np.fill_diagonal(D, np.inf)
    D.sort(axis=1)
    mu = np.sort(D[:, 1] / D[:, 0])
    n = len(mu)
    m = int(n * (1 - discard))
    x, y = np.log(mu[:m]), -np.log(1 - np.arange(1, m + 1) / n)
    return (x * y).sum() / (x * x).sum()


def test_five_percent_duplicated_rows_do_not_move_twonn():
    rng = np.random.default_rng(0)
    base = (np.tanh(rng.normal(size=(1000, 5)) @ rng.normal(size=(5, 20))) + 3).astype(np.float32)  # 5-d, off-centre
    copies, order = base[rng.choice(1000, 50, replace=False)], rng.permutation(1050)
    with_dups = np.concatenate([base, copies])[order]
    reference = twonn_by_hand(base)
    config = EvalConfig(k=3, seeds=(0,), n_neighbors=15, umap_epochs=5)
    for Z in (base, with_dups):
        alone = evaluate_embeddings(Z, config=config, metrics=["twonn_id"])  # its own 16-neighbour graph
        assert alone.metrics["twonn_id"] == pytest.approx(reference, rel=1e-6)
    with_umap = evaluate_embeddings(with_dups, config=config, metrics=["twonn_id", "entropy_z3"])  # UMAP's kNN graph
    assert with_umap.metrics["twonn_id"] == pytest.approx(reference, rel=1e-6)
    # the function alone (scikit-learn's neighbours), also with rows equal up to round-off
    assert M.twonn_id(with_dups) == pytest.approx(reference, rel=1e-6)
    nudged = np.concatenate([base, np.nextafter(copies, np.float32(np.inf))])[order]  # 1 ulp off: duplicates still
    assert len(np.unique(nudged, axis=0)) == 1050 and M.twonn_id(nudged) == pytest.approx(reference, rel=1e-6)


# --------------------------------------------------------------------------- coherence where n <= d


def test_coherence_is_undefined_when_n_is_at_most_d():
    rng = np.random.default_rng(0)
    for n in (5, 8):
        Z = rng.normal(size=(n, 8))
        U = np.linalg.svd(Z, full_matrices=False)[0]
        assert n / U.shape[1] * (U**2).sum(axis=1).max() == pytest.approx(1.0)  # why: U is n x n orthogonal
        with pytest.raises(MetricUndefined, match="n = .* <= d"):
            M.coherence(Z)
    Z = rng.normal(size=(9, 8))
    U = np.linalg.svd(Z, full_matrices=False)[0]
    assert M.coherence(Z) == pytest.approx(9 / 8 * (U**2).sum(axis=1).max())
    ev = evaluate_embeddings(rng.normal(size=(20, 32)), config=EvalConfig(k=2, seeds=(0,)), metrics=["coherence"])
    assert ev.metrics["coherence"] is None and "<= d" in ev.errors["coherence"]


# --------------------------------------------------------------------------- twonn_id has no direction


def test_twonn_id_is_never_ranked(cli, tmp_path):
    assert not METRICS["twonn_id"].ranked and METRICS["twonn_id"].arrow == "·"
    with pytest.raises(OptionsError, match="no direction"):
        api.Options(rank_by="twonn_id")
    emb = tmp_path / "e.npz"
    np.savez(emb, embeddings=np.random.default_rng(0).normal(size=(60, 4)))
    code, out, err = cli("score", str(emb), "--k", "2", "--rank-by", "twonn_id")
    assert code == 2 and out == "" and len(err.splitlines()) == 1 and "no direction" in err
    results = [Result(f"e{e}", None, {"twonn_id": 3.0 + e, "rankme": 10.0 - e, "lp_acc": 0.5 + e / 10}, epoch=e)
               for e in range(4)]
    path = tmp_path / "run.json"
    path.write_text(to_json(Run({}, results), "lp_acc"))
    code, out, err = cli("correlate", str(path), "--consensus", "rankme,twonn_id")
    assert code == 2 and out == "" and len(err.splitlines()) == 1 and "twonn_id" in err and "no direction" in err
    rows = select_run(Run({}, results))
    assert "twonn_id" not in rows and "rankme" in rows  # shown in Table I, never a selection row
    code, out, err = cli("correlate", str(path))
    assert code == 0 and "twonn_id ·" in out


# --------------------------------------------------------------------------- what determines the numbers


def test_library_versions_are_in_the_config_and_the_cache_key(monkeypatch):
    versions = EvalConfig().as_dict()["versions"]
    for name in ("umap-learn", "pynndescent", "scikit-learn", "numba", "torch"):
        assert versions[name] == metadata.version(name)
    options = api.Options()
    settings = api.cache_settings(EvalConfig(), options, "cpu")
    assert settings["versions"] == versions
    key = cache_key("content", "data", settings)
    other = {**versions, "umap-learn": "0.0.1"}
    monkeypatch.setattr(evaluation, "library_versions", lambda: other)
    monkeypatch.setattr(cache, "library_versions", lambda: other)
    assert api.cache_settings(EvalConfig(), options, "cpu")["versions"] == other
    assert cache_key("content", "data", api.cache_settings(EvalConfig(), options, "cpu")) != key
    assert cache_key("content", "data", settings) != key  # the key's own version list changed too


def test_a_probe_that_did_not_converge_says_so_per_record(monkeypatch):
    X, y = make_blobs(n_samples=200, centers=3, n_features=8, random_state=0)
    with pytest.warns(MetricNote, match="did not converge"):
        M.lp_acc(X[:100], y[:100], X[100:], y[100:], max_iter=2)
    few = replace(METRICS["lp_acc"], compute=lambda v, cfg: M.lp_acc(v["Z_fit"], v["y_fit"], v["Z_score"], v["y_score"],
                                                                       max_iter=2))
    monkeypatch.setitem(METRICS, "lp_acc", few)  # the probe with 2 lbfgs iterations: it cannot converge
    result = api.score_embeddings(X, y, config=EvalConfig(seeds=(0,)), metrics=["lp_acc", "rankme"])
    assert result.metrics["lp_acc"] is not None and "did not converge" in result.notes["lp_acc"]
    assert set(result.notes) == {"lp_acc"}
    assert Result.from_dict(json.loads(json.dumps(result.to_dict()))).notes == result.notes
    monkeypatch.setitem(METRICS, "lp_acc", replace(few, compute=METRICS["knn_acc"].compute))
    assert api.score_embeddings(X, y, config=EvalConfig(seeds=(0,)), metrics=["lp_acc"]).notes == {}


# --------------------------------------------------------------------------- H(Z3) depends on the number of images


def write_run(path, n_samples: list[int]) -> str:
    results = [Result(f"e{e}", None, {"entropy_z3": 5.0 - e / 10, "lp_acc": 0.5 + e / 10}, epoch=e, n_samples=n)
               for e, n in enumerate(n_samples)]
    path.write_text(to_json(Run({}, results), "lp_acc"))
    return str(path)


def test_correlate_and_plot_warn_once_when_n_samples_differ(cli, tmp_path):
    same = write_run(tmp_path / "same.json", [1000] * 4)
    mixed = write_run(tmp_path / "mixed.json", [1000, 1000, 2000, 1000])
    other = write_run(tmp_path / "other.json", [5000] * 4)
    for args in (["correlate", mixed], ["correlate", same, other], ["plot", mixed, "--out", str(tmp_path / "fig")]):
        code, _, err = cli(*args)
        warnings = [line for line in err.splitlines() if line.startswith("warning:")]
        assert code == 0 and len(warnings) == 1 and "n_samples" in warnings[0] and "entropy_z3" in warnings[0], args
    code, _, err = cli("correlate", same)
    assert code == 0 and "warning" not in err


def test_score_of_tiny_and_of_collapsed_embedding_files(cli, tmp_path, cache_dir):
    X, y = make_blobs(n_samples=120, centers=3, n_features=8, random_state=0)
    np.savez(tmp_path / "tiny.npz", embeddings=X * 1e-300, labels=y)
    np.savez(tmp_path / "plain.npz", embeddings=X, labels=y)
    np.savez(tmp_path / "same.npz", embeddings=collapsed_rows(False)[:120], labels=y)
    np.savez(tmp_path / "rounded.npz", embeddings=collapsed_rows(True)[:120], labels=y)
    files = [str(tmp_path / f"{name}.npz") for name in ("tiny", "plain", "same", "rounded")]
    code, out, _ = cli("score", *files, "--metrics", "l2_std,silhouette_gt,rankme,nesum,alpha_req", "--rank-by", "rankme",
                       "--seeds", "1", "-f", "json")
    assert code == 0
    got = {r["name"]: r for r in json.loads(out)["results"]}
    U = X / np.linalg.norm(X, axis=1, keepdims=True)
    assert got["tiny"]["metrics"]["l2_std"] == pytest.approx(U.std(axis=0).mean(), rel=1e-9)
    assert got["plain"]["metrics"]["silhouette_gt"] > 0.3  # well separated blobs, not the made-up 0
    assert got["tiny"]["metrics"]["silhouette_gt"] == pytest.approx(got["plain"]["metrics"]["silhouette_gt"], rel=1e-9)
    assert got["tiny"]["errors"] == {} and "all embeddings are zero" not in out
    assert got["same"]["metrics"] == got["rounded"]["metrics"] and got["same"]["errors"] == got["rounded"]["errors"]
    assert got["same"]["metrics"]["nesum"] is None and "zero variance" in got["rounded"]["errors"]["alpha_req"]


def test_the_metric_functions_refuse_tiny_embeddings_with_a_reason():
    X, _ = make_blobs(n_samples=100, centers=3, n_features=8, random_state=0)
    for fn in (M.rankme, M.l2_std, M.nesum, M.twonn_id):
        with pytest.raises(MetricUndefined, match="underflow"):
            fn(X * 1e-300)  # not "all embeddings are zero", not l2_std 0
