"""The Z3 k-means variants (EvalConfig.z3_kmeans): "paper" clusters Z3 as laid out, "centred" clusters Z3 minus its mean."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_mutual_info_score
from typer.testing import CliRunner

from sslmon import metrics as M
from sslmon.api import Options
from sslmon.cli import app
from sslmon.errors import OptionsError
from sslmon.evaluation import EvalConfig, evaluate_embeddings


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
    assert adjusted_mutual_info_score(y, M.spherical_kmeans(M.kmeans_points(X, "paper"), 3, seed=0)) < 0.8
    assert adjusted_mutual_info_score(y, M.spherical_kmeans(M.kmeans_points(X + shift, "paper"), 3, seed=0)) == pytest.approx(1.0)
    assert adjusted_mutual_info_score(y, _cosine_kmeans_by_hand(X, 3)) < 0.8
    # centred: the three groups, wherever Z3 sits
    for Z3 in (X, X + shift, X + np.array([40.0, -25.0, 60.0])):
        centred = M.spherical_kmeans(M.kmeans_points(Z3, "centred"), 3, seed=0)
        assert adjusted_mutual_info_score(y, centred) == pytest.approx(1.0)
        assert adjusted_mutual_info_score(centred, _cosine_kmeans_by_hand(X - [4 / 3, 1 / 3, 0.0], 3)) == pytest.approx(1.0)


def test_kmeans_points_are_z3_or_z3_minus_its_mean():
    Z3 = np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0], [2.0, 8.0, 2.0]])
    np.testing.assert_array_equal(M.kmeans_points(Z3, "paper"), Z3)
    np.testing.assert_allclose(M.kmeans_points(Z3, "centred"), [[-1.0, -2.0, 1.0], [1.0, -2.0, -1.0], [0.0, 4.0, 0.0]])
    with pytest.raises(ValueError, match="z3_kmeans"):
        M.kmeans_points(Z3, "median")


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
    expected = M.spherical_kmeans(centred.Z3 - centred.Z3.mean(axis=0), 4, seed=0)
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
