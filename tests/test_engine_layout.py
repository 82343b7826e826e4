"""sslmon.engine.layout: UMAP on the shared kNN graph equals umap-learn given that graph."""

from __future__ import annotations

import numpy as np

from sslmon.engine.neighbors import knn_graph


def test_layout_on_the_shared_graph_equals_umap_learn_with_that_knn(float_blobs):
    import umap

    from sslmon.engine.layout import fuzzy_graph, umap_layout

    g = knn_graph(float_blobs, 15)
    fuzzy = fuzzy_graph(g)
    for seed in (0, 7):
        ours = umap_layout(float_blobs, fuzzy, seed, n_epochs=30)
        ref = umap.UMAP(n_components=3, n_neighbors=15, random_state=seed, n_epochs=30,
                        precomputed_knn=(g.indices, g.distances, None)).fit_transform(float_blobs)
        assert np.array_equal(ours.astype(np.float32), ref)
