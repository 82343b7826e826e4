"""The evaluation pipeline: shared intermediates, label handling, degenerate input never crashes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_mutual_info_score, silhouette_score
from typer.testing import CliRunner

from sslmon.engine.clustering import kmeans_points, spherical_kmeans
from sslmon.api import Options
from sslmon.cli import app
from sslmon.errors import OptionsError

from sslmon.evaluation import EvalConfig, evaluate_embeddings, reference_split
from sslmon.metrics import LABEL_BASED, LABEL_FREE, METRICS, VIEW_BASED


@pytest.fixture(scope="module")
def blob_eval():
    X, y = make_blobs(n_samples=300, n_features=8, centers=4, cluster_std=1.0, random_state=3)
    return X, y, evaluate_embeddings(X, y, config=EvalConfig(seeds=(0,)))


def test_all_metrics_present_and_consistent_with_intermediates(blob_eval):
    X, y, ev = blob_eval
    assert set(ev.metrics) == set(METRICS) - set(VIEW_BASED)  # no augmented views given
    assert ev.errors == {}
    assert ev.k == 4 and ev.Z3.shape == (300, 3)
    # the reported clustering metrics are those of the returned C1/C2, recomputed by scikit-learn
    assert ev.metrics["silhouette_c1"] == pytest.approx(silhouette_score(X, ev.C1), abs=1e-6)
    assert ev.metrics["ami_c1_c2"] == pytest.approx(adjusted_mutual_info_score(ev.C1, ev.C2))
    assert len(np.unique(ev.C2)) == 8
    # C1 is spherical k-means of Z3
    unit = ev.Z3 / np.linalg.norm(ev.Z3, axis=1, keepdims=True)
    assert adjusted_mutual_info_score(ev.C1, KMeans(4, n_init=10, random_state=0).fit_predict(unit)) == pytest.approx(1.0)
    # well-separated blobs: clusters recover the classes, kNN and the probe are near perfect
    assert ev.metrics["ami_c1_gt"] > 0.9
    assert ev.metrics["knn_acc"] > 0.95 and ev.metrics["lp_acc"] > 0.95
    assert ev.reference.startswith("stratified half split")


def test_same_seed_same_numbers(blob_eval):
    X, y, ev = blob_eval
    again = evaluate_embeddings(X, y, config=EvalConfig(seeds=(0,)))
    assert again.metrics == ev.metrics


@pytest.fixture(scope="module")
def three_seeds(blob_eval):
    X, y, _ = blob_eval
    return evaluate_embeddings(X, y, config=EvalConfig(seeds=(0, 1, 2)))


def test_seeds_give_one_dict_each_whose_mean_and_std_are_reported(blob_eval, three_seeds):
    ev = three_seeds
    assert len(ev.per_seed) == 3
    for name in ev.metrics:  # every metric but LiDAR (no views): see the test above
        values = np.array([d[name] for d in ev.per_seed])
        assert ev.metrics[name] == pytest.approx(values.mean(), rel=1e-12)
        assert ev.metrics_std[name] == pytest.approx(values.std(ddof=1), abs=1e-12)
    # the first seed's values are those of a one-seed run with that seed; seed-free metrics repeat
    _, _, one = blob_eval
    assert ev.per_seed[0] == one.metrics
    assert ev.metrics_std["rankme"] == 0.0 and one.metrics_std["rankme"] is None


def test_each_seed_is_its_own_layout_and_kmeans(blob_eval, three_seeds):
    X, y, _ = blob_eval
    alone = evaluate_embeddings(X, y, config=EvalConfig(seeds=(2,)), metrics=["ami_c1_c2", "silhouette_c1", "entropy_z3"])
    assert {m: three_seeds.per_seed[2][m] for m in alone.metrics} == alone.metrics
    # the silhouettes of every seed's C1 come from one pass and equal scikit-learn's on that seed's C1
    assert alone.metrics["silhouette_c1"] == pytest.approx(silhouette_score(X, alone.C1), abs=1e-6)


def test_without_labels_label_metrics_are_null_with_reason():
    X, _ = make_blobs(n_samples=120, n_features=5, centers=3, random_state=0)
    ev = evaluate_embeddings(X, config=EvalConfig(k=3), metrics=["rankme", "l2_std", "ami_c1_gt", "knn_acc", "lp_acc", "silhouette_gt"])
    assert ev.metrics["rankme"] > 1 and ev.metrics["l2_std"] > 0
    for m in ["ami_c1_gt", "knn_acc", "lp_acc", "silhouette_gt"]:
        assert ev.metrics[m] is None and ev.errors[m] == "no labels given"


def test_unknown_k_makes_clustering_metrics_null():
    X, _ = make_blobs(n_samples=80, n_features=5, centers=3, random_state=0)
    ev = evaluate_embeddings(X, metrics=["entropy_z3", "silhouette_c1", "ami_c1_c2"], config=EvalConfig(n_neighbors=10))
    assert ev.metrics["entropy_z3"] is not None
    assert ev.metrics["silhouette_c1"] is None and "k is unknown" in ev.errors["silhouette_c1"]


def test_train_arrays_are_used_when_given():
    X, y = make_blobs(n_samples=200, n_features=6, centers=3, random_state=1)
    ev = evaluate_embeddings(X[:100], y[:100], X[100:], y[100:], metrics=["knn_acc", "lp_acc"])
    assert ev.reference == "train arrays"
    assert ev.metrics["knn_acc"] > 0.9


def test_reference_split_is_stratified_and_deterministic():
    y = np.repeat(np.arange(4), 50)
    fit, score = reference_split(y, seed=0)
    assert len(fit) == len(score) == 100 and not set(fit) & set(score)
    assert np.bincount(y[fit]).tolist() == [25, 25, 25, 25]
    assert np.array_equal(fit, reference_split(y, seed=0)[0])


@pytest.mark.parametrize(
    "case",
    ["nan", "identical", "few_distinct", "one_class"],
)
def test_degenerate_inputs_give_null_and_reason_never_a_crash(case):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(100, 6))
    y = rng.integers(0, 3, 100)
    if case == "nan":
        X[5, 2] = np.nan
    elif case == "identical":
        X[:] = 1.5
    elif case == "few_distinct":
        X = np.repeat(rng.normal(size=(2, 6)), 50, axis=0)
    elif case == "one_class":
        y[:] = 0
    ev = evaluate_embeddings(X, y, config=EvalConfig(k=3, n_neighbors=10))
    assert set(ev.metrics) == set(METRICS) - set(VIEW_BASED)  # no augmented views given
    for name, value in ev.metrics.items():
        assert (value is None) == (name in ev.errors), name
        if value is not None:
            assert np.isfinite(value), name
    if case == "nan":
        assert all(v is None for v in ev.metrics.values())
        assert all("NaN or Inf" in why for why in ev.errors.values())
    if case in ("identical", "few_distinct"):
        for m in ["ami_c1_c2", "silhouette_c1", "entropy_z3", "ami_c1_gt"]:
            assert ev.metrics[m] is None
    if case == "identical":
        assert ev.metrics["l2_std"] == pytest.approx(0.0)  # collapse is measured, not hidden
        assert ev.metrics["alpha_req"] is None
    if case == "one_class":
        assert ev.metrics["silhouette_gt"] is None and ev.metrics["rankme"] is not None
        assert all(ev.metrics[m] is None for m in ["knn_acc", "lp_acc"])
    # every label-based metric has a value, or None with its reason: never silently missing
    assert all(m in ev.metrics and (ev.metrics[m] is None) == (m in ev.errors) for m in LABEL_BASED)


def test_without_labels_label_metrics_are_left_out() -> None:
    X, _ = make_blobs(n_samples=120, n_features=5, centers=3, random_state=0)
    ev = evaluate_embeddings(X, config=EvalConfig(k=3, seeds=(0,), umap_epochs=5, n_neighbors=10))
    assert list(ev.metrics) == [m for m in LABEL_FREE if m not in VIEW_BASED]  # LiDAR also needs views
    assert not set(LABEL_BASED) & (set(ev.errors) | set(ev.per_seed[0]) | set(ev.metrics_std))
    assert ev.errors == {}


# --------------------------------------------------------------------------- Z3 k-means variants (z3_kmeans)


def _groups(n_per: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Three tight groups of 3-d points around A = (1, 0, 0), B = (3, 0, 0) and C = (0, 1, 0), and their labels.

    Seen from the origin, A and B point the same way; seen from the mean (4/3, 1/3, 0) the three point three ways.
    """
    rng = np.random.default_rng(0)
    centres = np.array([[1.0, 0.0, 0.0], [3.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    X = np.concatenate([c + 0.03 * rng.standard_normal((n_per, 3)) for c in centres])
    return X, np.repeat(np.arange(3), n_per)


def _cosine_kmeans_by_hand(X: np.ndarray, k: int) -> np.ndarray:
    """Cosine k-means written out independently: unit rows, then scikit-learn's k-means with 10 restarts."""
    return KMeans(k, n_init=10, random_state=0).fit_predict(X / np.linalg.norm(X, axis=1, keepdims=True))


def test_centred_clusters_do_not_move_when_z3_is_translated():
    X, y = _groups()
    shift = np.array([-2.0, 0.0, 0.0])  # puts the origin between A and B: now they point opposite ways
    # the paper's definition depends on where the origin is: A and B merge before the shift, not after it
    assert adjusted_mutual_info_score(y, spherical_kmeans(kmeans_points(X, "paper"), 3, seed=0)) < 0.8
    assert adjusted_mutual_info_score(y, spherical_kmeans(kmeans_points(X + shift, "paper"), 3, seed=0)) == pytest.approx(1.0)
    assert adjusted_mutual_info_score(y, _cosine_kmeans_by_hand(X, 3)) < 0.8
    # centred: the three groups, wherever Z3 sits
    for Z3 in (X, X + shift, X + np.array([40.0, -25.0, 60.0])):
        centred = spherical_kmeans(kmeans_points(Z3, "centred"), 3, seed=0)
        assert adjusted_mutual_info_score(y, centred) == pytest.approx(1.0)
        assert adjusted_mutual_info_score(centred, _cosine_kmeans_by_hand(X - [4 / 3, 1 / 3, 0.0], 3)) == pytest.approx(1.0)


def test_kmeans_points_are_z3_or_z3_minus_its_mean():
    Z3 = np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0], [2.0, 8.0, 2.0]])
    np.testing.assert_array_equal(kmeans_points(Z3, "paper"), Z3)
    np.testing.assert_allclose(kmeans_points(Z3, "centred"), [[-1.0, -2.0, 1.0], [1.0, -2.0, -1.0], [0.0, 4.0, 0.0]])
    with pytest.raises(ValueError, match="z3_kmeans"):
        kmeans_points(Z3, "median")


@pytest.fixture(scope="module")
def blobs():
    return make_blobs(n_samples=240, n_features=8, centers=4, cluster_std=1.0, random_state=5)


def test_default_is_the_paper_definition_and_is_recorded(blobs):
    X, y = blobs
    assert EvalConfig().z3_kmeans == "paper" and Options().z3_kmeans == "paper"
    assert Options().resolve("checkpoints").eval_config(4, "cpu").z3_kmeans == "paper"
    assert EvalConfig().as_dict()["z3_kmeans"] == "paper"
    assert EvalConfig(z3_kmeans="centred").as_dict()["z3_kmeans"] == "centred"
    ev = evaluate_embeddings(X, y, config=EvalConfig(seeds=(0,), umap_epochs=20))
    # the default C1/C2 are cosine k-means of Z3 itself, as before the variant existed
    assert adjusted_mutual_info_score(ev.C1, _cosine_kmeans_by_hand(ev.Z3, 4)) == pytest.approx(1.0)
    assert ev.metrics["ami_c1_c2"] == pytest.approx(adjusted_mutual_info_score(ev.C1, ev.C2))


def test_centred_variant_clusters_centred_z3_and_leaves_z3_alone(blobs):
    X, y = blobs
    paper = evaluate_embeddings(X, y, config=EvalConfig(seeds=(0,), umap_epochs=20))
    centred = evaluate_embeddings(X, y, config=EvalConfig(seeds=(0,), umap_epochs=20, z3_kmeans="centred"))
    np.testing.assert_array_equal(centred.Z3, paper.Z3)  # the layout and the entropy do not depend on the variant
    assert centred.metrics["entropy_z3"] == paper.metrics["entropy_z3"]
    expected = spherical_kmeans(centred.Z3 - centred.Z3.mean(axis=0), 4, seed=0)
    np.testing.assert_array_equal(centred.C1, expected)
    assert centred.metrics["ami_c1_c2"] == pytest.approx(adjusted_mutual_info_score(centred.C1, centred.C2))


def test_unknown_variant_is_refused():
    with pytest.raises(ValueError, match="z3_kmeans"):
        EvalConfig(z3_kmeans="centered")
    with pytest.raises(OptionsError, match="z3_kmeans"):
        Options(z3_kmeans="centered")


def test_cli_flag_reaches_the_evaluation_and_the_config(blobs, tmp_path):
    X, y = blobs
    path = tmp_path / "blobs.npz"
    np.savez(path, embeddings=X, labels=y)
    docs = {}
    for variant in ("paper", "centred"):
        args = ["score", str(path), "--metrics", "ami_c1_c2", "--seeds", "0,", "--umap-epochs", "20", "--no-cache", "-f", "json", "-q"]
        out = CliRunner().invoke(app, args + ([] if variant == "paper" else ["--z3-kmeans", variant]))
        assert out.exit_code == 0, out.output
        docs[variant] = json.loads(out.stdout)
    for variant, doc in docs.items():
        assert doc["config"]["z3_kmeans"] == variant
        expected = evaluate_embeddings(X, y, config=EvalConfig(seeds=(0,), umap_epochs=20, z3_kmeans=variant), metrics=["ami_c1_c2"])
        assert doc["results"][0]["metrics"]["ami_c1_c2"] == pytest.approx(expected.metrics["ami_c1_c2"])
    bad = CliRunner().invoke(app, ["score", str(path), "--z3-kmeans", "centered"])
    assert bad.exit_code == 2



PAPER_SIX = ["ami_c1_c2", "silhouette_c1", "entropy_z3", "ami_c1_gt", "silhouette_gt", "rankme"]


def _digits(n: int = 700, noise: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn digits, with a little noise so that no two kNN distances tie (integer pixels tie often)."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = X[:n].astype(np.float32) + np.random.default_rng(0).normal(0, noise, (n, X.shape[1])).astype(np.float32)
    return X, y[:n]


def _plain_metrics(X: np.ndarray, y: np.ndarray, Z3: np.ndarray, seed: int) -> dict[str, float]:
    """The six paper metrics of a layout Z3 as a user would compute them: scikit-learn KMeans (k, 2k) on the
    L2-normalised Z3, scikit-learn AMI and silhouettes, the entropy histogram and RankMe by hand."""
    from sklearn.preprocessing import normalize

    k = len(np.unique(y))
    unit = normalize(Z3)
    C1 = KMeans(k, random_state=seed).fit_predict(unit)
    C2 = KMeans(2 * k, random_state=seed).fit_predict(unit)
    bins = np.floor((Z3 - Z3.min(0)) / (0.4 * Z3.std(0))).astype(np.int64)
    p = np.unique(bins, axis=0, return_counts=True)[1] / len(Z3)
    s = np.linalg.svd(X.astype(np.float64), compute_uv=False)
    q = s / s.sum() + 1e-7
    return {"ami_c1_c2": adjusted_mutual_info_score(C1, C2), "silhouette_c1": silhouette_score(X, C1),
            "entropy_z3": -(p * np.log(p)).sum(), "ami_c1_gt": adjusted_mutual_info_score(C1, y),
            "silhouette_gt": silhouette_score(X, y), "rankme": np.exp(-(q * np.log(q)).sum())}


def test_default_evaluation_is_the_papers_pipeline_step_by_step():
    """Issue 16: by default sslmon runs the paper's pipeline. (a) its exact kNN is scikit-learn's, and its fuzzy
    graph is umap-learn's own (umap.UMAP on the raw data) up to float32 distance round-off; (b) the default layout
    is umap.UMAP(n_neighbors=50, n_components=3, random_state=s) with umap-learn's own epochs on that graph, bit
    for bit; (c) every paper metric of that layout equals the plain scikit-learn computation."""
    import umap
    from sklearn.neighbors import NearestNeighbors

    from sslmon.engine.layout import fuzzy_graph, umap_layout
    from sslmon.engine.neighbors import knn_graph

    X, y = _digits()
    seed = 3
    assert EvalConfig().umap_epochs is None and EvalConfig().as_dict()["preset"] == "paper"
    g = knn_graph(X, 50)
    ref_dist, ref_idx = NearestNeighbors(n_neighbors=50).fit(X).kneighbors(X)
    assert np.array_equal(g.indices, ref_idx) and np.allclose(g.distances, ref_dist, atol=1e-3)
    plain = umap.UMAP(n_components=3, n_neighbors=50, random_state=seed).fit(X)
    fuzzy = fuzzy_graph(g)
    assert fuzzy.graph.nnz == plain.graph_.nnz and abs(fuzzy.graph - plain.graph_).max() < 5e-3
    ours = umap_layout(X, fuzzy, seed)
    same_graph = umap.UMAP(n_components=3, n_neighbors=50, random_state=seed,
                           precomputed_knn=(g.indices, g.distances, None)).fit_transform(X)
    assert np.array_equal(ours.astype(np.float32), same_graph)

    ev = evaluate_embeddings(X, y, config=EvalConfig(seeds=(seed,)), metrics=PAPER_SIX)
    assert np.array_equal(ev.Z3, ours)
    for name, value in _plain_metrics(X, y, ev.Z3, seed).items():
        assert ev.metrics[name] == pytest.approx(float(value), rel=1e-6, abs=1e-9), name


@pytest.mark.slow
def test_default_evaluation_has_the_distribution_of_plain_umap_learn():
    """Issue 16: over 5 seeds, the mean of every Z3 metric of sslmon's default evaluation is within
    max(0.05, 2 x seed std) of umap.UMAP(n_neighbors=50, n_components=3, random_state=s) + scikit-learn's
    (the agreement rule of bench/bench_pipeline.py); the plain pipeline computes its own kNN graph."""
    import umap

    X, y = _digits()
    seeds = tuple(range(5))
    ev = evaluate_embeddings(X, y, config=EvalConfig(seeds=seeds), metrics=PAPER_SIX)
    plain = [_plain_metrics(X, y, umap.UMAP(n_components=3, n_neighbors=50, random_state=s).fit_transform(X), s)
             for s in seeds]
    for name in ("entropy_z3", "ami_c1_c2", "silhouette_c1", "ami_c1_gt"):
        ref = np.array([p[name] for p in plain])
        tolerance = max(0.05, 2 * ref.std(ddof=1))
        assert abs(ev.metrics[name] - ref.mean()) <= tolerance, (name, ev.metrics[name], ref)
