"""sslmon.engine.neighbors: the exact kNN graph against brute force."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import pairwise_distances

from sslmon.engine.neighbors import knn_graph


@pytest.mark.parametrize("block_bytes", [2**27, 4 * 700 * 13, 1])
def test_knn_graph_equals_brute_force(float_blobs, block_bytes):
    D = pairwise_distances(float_blobs.astype(np.float64))
    np.fill_diagonal(D, -1.0)  # the point itself first
    expected = np.argsort(D, axis=1, kind="stable")[:, :15]
    g = knn_graph(float_blobs, 15, block_bytes=block_bytes)
    assert g.indices.shape == (700, 15) and g.indices.dtype == np.int64
    assert (g.indices == expected).mean() > 0.999  # float32 vs float64 may swap near-ties
    np.fill_diagonal(D, 0.0)
    np.testing.assert_allclose(g.distances, np.take_along_axis(D, g.indices, axis=1), atol=2e-4)
    assert (g.indices[:, 0] == np.arange(700)).all() and (g.distances[:, 0] == 0).all()


def test_knn_graph_keeps_the_distance_matrix_on_request(float_blobs):
    g = knn_graph(float_blobs, 5, keep_distances=True)
    np.testing.assert_allclose(g.distances_full.numpy(), pairwise_distances(float_blobs.astype(np.float64)), atol=2e-4)
    assert knn_graph(float_blobs, 5).distances_full is None


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

