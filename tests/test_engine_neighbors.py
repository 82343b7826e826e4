"""The Z3 engine: exact kNN graph, UMAP on it, numba kernel cache."""

from __future__ import annotations

import os
from pathlib import Path
import subprocess
import sys

import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.metrics import pairwise_distances

from sslmon.engine.neighbors import knn_graph


@pytest.fixture(scope="module")
def blobs():
    X, _ = make_blobs(n_samples=700, n_features=24, centers=6, cluster_std=3.0, random_state=0)
    return X.astype(np.float32)


@pytest.mark.parametrize("block_bytes", [2**27, 4 * 700 * 13, 1])
def test_knn_graph_equals_brute_force(blobs, block_bytes):
    D = pairwise_distances(blobs.astype(np.float64))
    np.fill_diagonal(D, -1.0)  # the point itself first
    expected = np.argsort(D, axis=1, kind="stable")[:, :15]
    g = knn_graph(blobs, 15, block_bytes=block_bytes)
    assert g.indices.shape == (700, 15) and g.indices.dtype == np.int64
    assert (g.indices == expected).mean() > 0.999  # float32 vs float64 may swap near-ties
    np.fill_diagonal(D, 0.0)
    np.testing.assert_allclose(g.distances, np.take_along_axis(D, g.indices, axis=1), atol=2e-4)
    assert (g.indices[:, 0] == np.arange(700)).all() and (g.distances[:, 0] == 0).all()


def test_knn_graph_keeps_the_distance_matrix_on_request(blobs):
    g = knn_graph(blobs, 5, keep_distances=True)
    np.testing.assert_allclose(g.distances_full.numpy(), pairwise_distances(blobs.astype(np.float64)), atol=2e-4)
    assert knn_graph(blobs, 5).distances_full is None


def test_knn_graph_puts_each_point_first_among_duplicates():
    X = np.repeat(np.arange(10, dtype=np.float32)[:, None], 4, axis=0)  # every point 4 times
    g = knn_graph(X, 4)
    assert (g.indices[:, 0] == np.arange(40)).all()
    assert set(g.indices[5].tolist()) == {4, 5, 6, 7}


def test_float64_input_stays_float64_and_exact():
    X = np.array([[0.0, 0.0], [3.0, 4.0], [6.0, 8.0]])
    g = knn_graph(X, 3, keep_distances=True)
    assert g.distances_full.dtype.is_floating_point and g.distances_full.dtype.itemsize == 8
    np.testing.assert_allclose(g.distances, [[0, 5, 10], [0, 5, 5], [0, 5, 10]], atol=1e-12)


def test_layout_on_the_shared_graph_equals_umap_learn_with_that_knn(blobs):
    import umap

    from sslmon.engine.layout import fuzzy_graph, umap_layout

    g = knn_graph(blobs, 15)
    fuzzy = fuzzy_graph(g)
    for seed in (0, 7):
        ours = umap_layout(blobs, fuzzy, seed, n_epochs=30)
        ref = umap.UMAP(n_components=3, n_neighbors=15, random_state=seed, n_epochs=30,
                        precomputed_knn=(g.indices, g.distances, None)).fit_transform(blobs)
        assert np.array_equal(ours.astype(np.float32), ref)


CACHE_SCRIPT = """
import numpy as np
from sklearn.datasets import make_blobs
from sslmon.engine.neighbors import knn_graph
from sslmon.engine.layout import fuzzy_graph, umap_layout
X, _ = make_blobs(n_samples=200, n_features=8, centers=3, random_state=0)
Z3 = umap_layout(X, fuzzy_graph(knn_graph(X, 10)), 0, n_epochs=20)
np.save(__import__("sys").argv[1], Z3)
"""


def _run_layout(cache: Path, out: Path) -> np.ndarray:
    env = {**os.environ, "SSLMON_CACHE_DIR": str(cache)}
    subprocess.run([sys.executable, "-c", CACHE_SCRIPT, str(out)], env=env, check=True, timeout=600)
    return np.load(out)


def test_numba_kernels_cached_under_sslmon_cache_and_a_corrupt_entry_is_recompiled(tmp_path):
    cache = tmp_path / "cache"
    first = _run_layout(cache, tmp_path / "a.npy")
    entries = list((cache / "numba").rglob("*.nbi"))
    layout_entries = [p for p in entries if "optimize_layout_euclidean" in p.name]
    assert layout_entries, "the layout kernel was not cached under $SSLMON_CACHE_DIR/numba"
    for p in (cache / "numba").rglob("*.nb*"):
        p.write_bytes(b"\x80\x04 not a pickle")
    again = _run_layout(cache, tmp_path / "b.npy")  # must recompile, not crash
    assert np.array_equal(first, again)
    assert any("optimize_layout_euclidean" in p.name for p in (cache / "numba").rglob("*.nbi"))


def test_parallel_umap_kernels_are_never_cached(tmp_path):
    """numba's cache key ignores compile flags: a parallel build must not stand in for the serial kernel."""
    import umap.layouts

    from sslmon.engine.jit import enable_numba_cache

    enable_numba_cache(tmp_path / "numba")
    assert umap.layouts._nb_optimize_layout_euclidean_single_epoch._cache.__class__.__name__ == "FunctionCache"
    assert umap.layouts._nb_optimize_layout_euclidean_single_epoch_parallel._cache.__class__.__name__ == "NullCache"
