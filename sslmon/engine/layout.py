"""UMAP to 3-d on a precomputed exact kNN graph: the fuzzy graph once, one layout per seed.

This is umap-learn's own pipeline (``fuzzy_simplicial_set`` then ``simplicial_set_embedding``,
the two functions ``umap.UMAP.fit`` calls), split so that several seeds share the graph:
``umap_layout(graph, seed)`` equals ``umap.UMAP(n_components=3, n_neighbors=k, random_state=seed,
n_epochs=E, precomputed_knn=(indices, distances, None)).fit_transform(Z)`` (tested).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
import warnings

import numpy as np

from sslmon.engine.jit import run_with_jit_cache
from sslmon.engine.neighbors import KnnGraph

# umap.UMAP defaults (min_dist 0.1, spread 1, learning rate 1, repulsion 1, 5 negative samples).
MIN_DIST, SPREAD, LEARNING_RATE, REPULSION, NEGATIVE_SAMPLE_RATE = 0.1, 1.0, 1.0, 1.0, 5


@dataclass(frozen=True)
class FuzzyGraph:
    """UMAP's symmetric fuzzy simplicial set of the data (scipy sparse, n x n) and the curve parameters a, b."""

    graph: Any
    a: float
    b: float
    n: int


def fuzzy_graph(knn: KnnGraph) -> FuzzyGraph:
    """The fuzzy simplicial set of a kNN graph (umap-learn's ``fuzzy_simplicial_set``, Euclidean)."""
    from sklearn.utils import check_random_state

    def build() -> FuzzyGraph:
        import umap.umap_ as U

        n, k = knn.indices.shape
        graph, _, _ = U.fuzzy_simplicial_set(
            np.empty((n, 0), dtype=np.float32), k, check_random_state(0), "euclidean",
            knn_indices=knn.indices, knn_dists=knn.distances,
        )
        a, b = U.find_ab_params(SPREAD, MIN_DIST)
        return FuzzyGraph(graph, float(a), float(b), n)

    return run_with_jit_cache(build)


def umap_layout(Z: np.ndarray, fuzzy: FuzzyGraph, seed: int, n_epochs: int | None = None,
                jit_folder: Path | None = None) -> np.ndarray:
    """Z3 (n, 3) float64: umap-learn's spectral initialisation and SGD layout of ``fuzzy`` for ``seed``.

    ``n_epochs`` None is umap-learn's default (500 up to 10,000 points, 200 above). Single-threaded
    and reproducible for a given seed. ``Z`` is only used if the spectral initialisation falls back
    to umap-learn's handling of disconnected graphs. ``jit_folder``: numba's kernel cache (default
    :func:`sslmon.engine.jit.cache_dir`; a layout worker process is given its parent's).
    """
    from sklearn.utils import check_random_state

    def layout() -> np.ndarray:
        import umap.umap_ as U

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "graph is not fully connected" notes from the spectral init
            Z3, _ = U.simplicial_set_embedding(
                data=Z, graph=fuzzy.graph.copy(), n_components=3, initial_alpha=LEARNING_RATE, a=fuzzy.a, b=fuzzy.b,
                gamma=REPULSION, negative_sample_rate=NEGATIVE_SAMPLE_RATE, n_epochs=n_epochs, init="spectral",
                random_state=check_random_state(seed), metric="euclidean", metric_kwds={}, densmap=False,
                densmap_kwds={}, output_dens=False, parallel=False,
            )
        return np.asarray(Z3, dtype=np.float64)

    return run_with_jit_cache(layout, jit_folder)
