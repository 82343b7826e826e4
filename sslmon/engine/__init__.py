"""The Z3 engine: one exact kNN graph per embedding set, UMAP layouts on it, numba kernel cache.

``neighbors``: blocked exact kNN (and, when it fits, the distance matrix the silhouettes reuse).
``layout``: the fuzzy graph built once from that kNN, then one UMAP layout per seed.
``jit``: persists umap-learn's compiled numba kernels under sslmon's cache folder.
"""
