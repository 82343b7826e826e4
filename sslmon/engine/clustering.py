"""Clusterings of the Z3 engine and the metrics: cosine k-means (C1, C2 on Z3; CZ on Z) and the silhouettes of
several labellings in one pass over the distances."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from threadpoolctl import threadpool_limits

from sslmon._lazy import LazyModule
from sslmon.engine.arrays import ArrayLike, MetricUndefined, check_embeddings, check_labels, check_spread, l2_normalize
from sslmon.engine.neighbors import distance_blocks

if TYPE_CHECKING:
    import torch
else:
    torch = LazyModule("torch")

# k-means initialisations (k-means++), fixed rather than scikit-learn's "auto" (which is 1 for k-means++ today).
KMEANS_N_INIT = 1


def spherical_kmeans(X: ArrayLike, k: int, seed: int | None = 0, n_init: int | str = KMEANS_N_INIT) -> np.ndarray:
    """Cluster labels of k-means with the cosine metric: L2-normalise rows, then k-means.

    scikit-learn's KMeans with k-means++ and ``n_init`` = :data:`KMEANS_N_INIT` (1: what its default ``"auto"``
    gives for k-means++, fixed so that a scikit-learn release cannot change it),
    on one thread (the points are 3-d: threads only add overhead). Raises MetricUndefined when
    there are fewer distinct directions than ``k`` (or the directions are identical up to round-off, :func:`spread`)
    or k-means ends with a single cluster.
    """
    X = l2_normalize(check_embeddings(X, "points"))
    check_spread(X)
    if k < 2:
        raise MetricUndefined(f"k={k}: k-means needs k >= 2")
    distinct = len(np.unique(np.round(X, 12), axis=0))
    if distinct < k:
        raise MetricUndefined(f"only {distinct} distinct points for k={k} clusters")
    from sklearn.cluster import KMeans

    with threadpool_limits(limits=1):
        labels = KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit_predict(X)
    if len(np.unique(labels)) < 2:
        raise MetricUndefined(f"k-means with k={k} found a single cluster")
    return labels


# The points that cosine k-means clusters into C1 and C2, by variant (EvalConfig.z3_kmeans). "paper": Z3 as UMAP
# lays it out (Xu, Lowe & Trappenberg 2024), so the clusters depend on where the layout puts the origin, which
# is arbitrary. "centred": Z3 minus its mean, so the clusters are the same wherever UMAP translates Z3 to.
Z3_KMEANS_VARIANTS = ("paper", "centred")


def kmeans_points(Z3: ArrayLike, variant: str = "paper") -> np.ndarray:
    """The points the cosine k-means of C1/C2 clusters: ``Z3`` itself ("paper") or ``Z3 - mean(Z3)`` ("centred")."""
    if variant not in Z3_KMEANS_VARIANTS:
        raise ValueError(f"z3_kmeans: {variant!r} is not one of {', '.join(Z3_KMEANS_VARIANTS)}")
    Z3 = check_embeddings(Z3, "points")
    return Z3 - Z3.mean(axis=0, dtype=np.float64).astype(Z3.dtype) if variant == "centred" else Z3


def check_clustering(labels: ArrayLike, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(inverse, counts) of a labelling valid for a silhouette (2 <= clusters < n), else MetricUndefined."""
    labels = check_labels(labels, n)
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    if len(counts) >= n:
        raise MetricUndefined(f"silhouette needs fewer clusters than samples ({len(counts)} clusters for {n} samples)")
    return inverse, counts


def silhouettes(
    Z: ArrayLike,
    labelings: list[ArrayLike],
    distances: torch.Tensor | None = None,
    device: str | torch.device = "cpu",
    block_bytes: int = 2**27,
) -> list[float]:
    """Mean silhouette coefficient (Rousseeuw 1987) of each labelling, Euclidean distance on Z, in one pass.

    s_i = (b_i - a_i) / max(a_i, b_i), a_i the mean distance from i to the other members of its
    cluster, b_i the smallest mean distance from i to another cluster; s_i = 0 for members of
    singleton clusters. Same definition as ``sklearn.metrics.silhouette_score``. Distances are in
    Z's precision (float32 embeddings: float32; from ``distances``, the (n, n) matrix, when given,
    else recomputed in row blocks of at most ``block_bytes``: never n x n); their per-cluster sums
    accumulate in float64. Unitless, in [-1, 1]. Undefined for rows identical up to round-off (:func:`spread`).
    """
    Z = check_embeddings(Z)
    check_spread(Z)
    n = Z.shape[0]
    dev = torch.device(device) if distances is None else distances.device
    acc = torch.float64 if dev.type != "mps" else torch.float32
    parts = [check_clustering(labels, n) for labels in labelings]
    # one one-hot block per labelling, side by side: a single product gives every labelling's sums
    offsets = np.cumsum([0] + [len(c) for _, c in parts])
    onehot = torch.zeros(n, int(offsets[-1]), dtype=acc, device=dev)
    rows = torch.arange(n, device=dev)
    for (inverse, _), off in zip(parts, offsets):
        onehot[rows, torch.as_tensor(inverse, device=dev) + int(off)] = 1.0
    if distances is not None:
        step = max(1, block_bytes // (distances.element_size() * n))
        blocks = ((s, distances[s : s + step]) for s in range(0, n, step))
    else:
        blocks = distance_blocks(Z, dev, block_bytes)
    totals = torch.zeros(len(parts), dtype=acc, device=dev)
    for start, D in blocks:
        sums_all = D.to(acc) @ onehot  # (block, all clusters): summed distance to each cluster
        idx = torch.arange(D.shape[0], device=dev)
        for j, ((inverse, counts), off) in enumerate(zip(parts, offsets)):
            sums = sums_all[:, off : off + len(counts)]
            cnt = torch.as_tensor(counts, dtype=acc, device=dev)
            own = torch.as_tensor(inverse[start : start + D.shape[0]], device=dev)
            own_count = cnt[own]
            a = sums[idx, own] / torch.clamp(own_count - 1, min=1)
            means = sums / cnt
            means[idx, own] = torch.inf
            b = means.min(dim=1).values
            s = (b - a) / torch.maximum(a, b)
            totals[j] += torch.where((own_count > 1) & torch.isfinite(s), s, torch.zeros_like(s)).sum()
    return [float(t / n) for t in totals]

