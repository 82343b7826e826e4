"""The intermediates: the quantities metrics name in ``MetricSpec.needs``, each with its registered builder.

:data:`INTERMEDIATES` maps each name to an :class:`Intermediate`: what it is computed from (``needs``: other
intermediates) and how (``build``). ``evaluate_embeddings`` walks this table: it builds, in table order, what the
wanted metrics need (transitively), those marked ``seeded`` once per evaluation seed, the others once per
embedding set. A builder gets the values built so far and a :class:`Step` (the raw inputs, the settings, the seed)
and returns the value or raises :class:`~sslmon.engine.arrays.MetricUndefined` with the reason; a builder whose
needs failed is not called (it takes the reason of its first failed need). Adding an intermediate is one entry
here (docs/layout.md#contributing-adding-a-metric).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from sslmon.engine import pool
from sslmon.engine.arrays import MIN_MAGNITUDE, MetricUndefined, check_embeddings, check_labels, check_spread, check_views
from sslmon.engine.clustering import kmeans_points, spherical_kmeans
from sslmon.engine.jit import cache_dir
from sslmon.engine.layout import fuzzy_graph
from sslmon.engine.neighbors import TWONN_CANDIDATES, KnnGraph, knn_graph
from sslmon.engine.spectrum import spectrum

# The reason of a label-based metric that was asked for by name on data without labels.
NO_LABELS = "no labels given"
# The reason of a metric of augmented views (LiDAR) asked for by name without views.
NO_VIEWS = "no augmented views: only computed where sslmon embeds the images itself, with lidar_views > 0 (--lidar-views)"


@dataclass
class Step:
    """What a builder sees besides the values: the caller's raw inputs (``Z``, ``labels``, ``views``,
    ``train_embeddings``, ``train_labels``), the settings (an :class:`sslmon.evaluation.EvalConfig`), the evaluation
    seed (seeded builders), whether the kNN pass keeps the distance matrix for the silhouettes, and ``add_time(key,
    seconds)`` for time spent elsewhere (a worker's layout)."""

    inputs: dict[str, Any]
    cfg: Any
    keep_distances: bool = False
    seed: int | None = None
    add_time: Callable[[str, float], None] = lambda key, seconds: None
    memo: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Intermediate:
    """One intermediate: ``needs`` (names in :data:`INTERMEDIATES`), ``build(values, step)``, ``doc``, ``seeded``
    (once per evaluation seed), ``timing`` (its key in ``Evaluation.timings``, summed over repeats; default its name;
    ``timed`` False: none), ``always`` (built whatever the metrics: the checks of the caller's inputs, which decide
    which metrics the inputs allow). ``given``: the caller's input it checks; when that input is None, the
    intermediate is undefined with the reason ``absent`` (its needs are not looked at)."""

    name: str
    needs: tuple[str, ...]
    build: Callable[[Mapping[str, Any], Step], Any] = field(repr=False, compare=False)
    doc: str
    seeded: bool = False
    timing: str | None = None
    timed: bool = True
    always: bool = False
    given: str | None = None
    absent: str = ""


def _rescaled(Z: np.ndarray, train: Any) -> tuple[np.ndarray, Any]:
    """``Z`` (and the train embeddings, by the same factor: the probe standardises them together) multiplied by
    a power of two (exact) that brings the largest |value| to [0.5, 1) when it is below
    :data:`sslmon.engine.arrays.MIN_MAGNITUDE` (their squares would underflow; every metric of Z is invariant to the
    scale of Z); else as given."""
    peaks = [float(np.abs(Z).max())]
    if train is not None:
        try:  # bad train input is left to its own check, which gives the reason
            array = np.asarray(train.detach().cpu() if hasattr(train, "detach") else train)
            peaks.append(float(np.abs(array).max()))
        except (TypeError, ValueError):
            return Z, train
    if not 0 < max(peaks) < MIN_MAGNITUDE:
        return Z, train
    exponent = -int(np.frexp(max(peaks))[1])
    return np.ldexp(Z, exponent).astype(Z.dtype), None if train is None else np.ldexp(array.astype(Z.dtype), exponent)


def _embeddings(v: Mapping[str, Any], step: Step) -> np.ndarray:
    """Z checked (tiny embeddings allowed) and rescaled; the train embeddings are rescaled by the same factor."""
    Z, step.inputs["train_embeddings"] = _rescaled(check_embeddings(step.inputs["Z"], tiny=True), step.inputs["train_embeddings"])
    return Z


def _k(v: Mapping[str, Any], step: Step) -> int:
    """k1: the settings' k, else the number of classes of the labels."""
    if step.cfg.k is not None:
        return step.cfg.k
    if "labels" in v:
        return len(np.unique(v["labels"]))
    raise MetricUndefined("k is unknown: give k or labels")


def distinct_rows(Z: np.ndarray) -> int:
    """Number of distinct rows of Z, counted on a projection onto a fixed random direction (float64).

    Equal rows project equally; distinct rows coincide only if their difference is orthogonal to
    the direction, which a random direction makes vanishingly unlikely. O(n d), no sort of the rows.
    """
    direction = np.random.default_rng(0).standard_normal(Z.shape[1])
    return len(np.unique(Z @ direction.astype(Z.dtype)))


def _knn(v: Mapping[str, Any], step: Step) -> KnnGraph:
    """The exact kNN graph UMAP is built on; undefined when there are too few distinct embeddings."""
    Z, cfg = v["Z"], step.cfg
    if Z.shape[0] <= cfg.n_neighbors:
        raise MetricUndefined(f"UMAP needs more than n_neighbors={cfg.n_neighbors} embeddings, got {Z.shape[0]}")
    check_spread(Z)  # rows identical up to round-off: the same reason as identical rows, whatever the rounding
    if distinct_rows(Z) <= cfg.n_neighbors:
        raise MetricUndefined(f"UMAP needs more than n_neighbors={cfg.n_neighbors} distinct embeddings")
    return knn_graph(Z, cfg.n_neighbors, cfg.device, keep_distances=step.keep_distances)


def _layouts(v: Mapping[str, Any], step: Step) -> dict[int, pool.Layout]:
    """Every seed's layout at once, the seeds side by side in worker processes (:func:`sslmon.engine.pool.layouts`)."""
    cfg = step.cfg
    workers = pool.worker_count(len(cfg.seeds), cfg.layout_workers)
    return pool.layouts(v["Z"], v["fuzzy"], cfg.seeds, cfg.umap_epochs, workers, cache_dir())


def _z3(v: Mapping[str, Any], step: Step) -> np.ndarray:
    """This seed's layout; its seconds (computed here or in a worker) count as ``umap_layout``."""
    layout = v["layouts"][step.seed]
    step.add_time("umap_layout", layout.seconds)
    return layout.get()


def _kmeans_z3(factor: int) -> Callable[[Mapping[str, Any], Step], np.ndarray]:
    """The builder of the cosine k-means of Z3 (the settings' z3_kmeans variant) with ``factor`` * k1 clusters."""
    return lambda v, step: spherical_kmeans(kmeans_points(v["Z3"], step.cfg.z3_kmeans), factor * v["k"], step.seed)


def _knn_indices(v: Mapping[str, Any], step: Step) -> np.ndarray:
    """The indices of UMAP's kNN graph when it was built, else of a graph with :data:`TWONN_CANDIDATES` neighbours."""
    if "knn" in v:
        return v["knn"].indices
    return knn_graph(v["Z"], min(len(v["Z"]), TWONN_CANDIDATES), step.cfg.device).indices


def reference_split(labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic stratified half split of indices 0..n-1: (fit half, score half)."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    counts = np.unique(labels, return_counts=True)[1]
    stratify = labels if counts.min() >= 2 else None
    fit, score = train_test_split(idx, test_size=0.5, random_state=seed, stratify=stratify)
    return np.sort(fit), np.sort(score)


def has_train_split(inputs: Mapping[str, Any]) -> bool:
    """Whether kNN and the probe are fitted on the caller's train arrays (else on a half split of Z)."""
    return inputs["train_embeddings"] is not None and inputs["train_labels"] is not None


def reference(inputs: Mapping[str, Any], seed: int) -> str:
    """Which split kNN and the probe are fitted on, in words (``Evaluation.reference``)."""
    return "train arrays" if has_train_split(inputs) else f"stratified half split of the evaluated set (seed {seed})"


def _split(part: int, array: str,
           train: Callable[[Mapping[str, Any], Step], Any] | None = None) -> Callable[[Mapping[str, Any], Step], np.ndarray]:
    """The builder of one side of the reference split: ``part`` 0 fit, 1 score; ``array`` "Z" or "labels" of the
    evaluated set. With train arrays, the fit side is ``train(values, step)`` and the score side the whole set."""
    def build(v: Mapping[str, Any], step: Step) -> np.ndarray:
        if has_train_split(step.inputs):
            return train(v, step) if part == 0 and train else v[array]
        if "halves" not in step.memo:
            step.memo["halves"] = reference_split(v["labels"], step.cfg.seed)
        return v[array][step.memo["halves"][part]]
    return build


INTERMEDIATES: dict[str, Intermediate] = {
    item.name: item
    for item in [
        Intermediate("Z", (), _embeddings, "the embeddings (n, d), validated (check_embeddings), tiny ones rescaled",
                     always=True),
        Intermediate("labels", ("Z",), lambda v, step: check_labels(step.inputs["labels"], len(v["Z"]), min_classes=1),
                     "class labels (n,)", always=True, given="labels", absent=NO_LABELS),
        Intermediate("views", (), lambda v, step: check_views(step.inputs["views"]),
                     "augmented views (n_images, n_views, d) of a subset of the images, when the caller embedded them",
                     always=True, given="views", absent=NO_VIEWS),
        Intermediate("k", (), _k, "k1 clusters: EvalConfig.k, else the number of classes (built after labels)",
                     timed=False, always=True),
        Intermediate("knn", ("Z",), _knn, "exact kNN graph of Z with UMAP's n_neighbors (sslmon.engine.neighbors)",
                     timing="knn_graph"),
        Intermediate("fuzzy", ("knn",), lambda v, step: fuzzy_graph(v["knn"]), "UMAP's fuzzy graph of the kNN graph",
                     timing="umap_graph"),
        Intermediate("knn_indices", ("Z",), _knn_indices,
                     "(n, >= 3) indices of each row's nearest rows, itself first, by ascending distance", timing="knn_graph"),
        Intermediate("layouts", ("Z", "fuzzy"), _layouts, "every seed's UMAP layout (sslmon.engine.pool; timed per seed, as Z3)",
                     timed=False),
        Intermediate("Z3", ("layouts",), _z3, "the 3-d UMAP layout, per seed", seeded=True, timing="umap_layout"),
        Intermediate("C1", ("Z3", "k"), _kmeans_z3(1), "spherical k-means labels of Z3 with k1 clusters, per seed",
                     seeded=True, timing="kmeans"),
        Intermediate("C2", ("Z3", "k"), _kmeans_z3(2), "the same with k2 = 2 k1 clusters, per seed",
                     seeded=True, timing="kmeans"),
        Intermediate("Z_fit", ("labels",),
                     _split(0, "Z", lambda v, step: check_embeddings(step.inputs["train_embeddings"], "train embeddings")),
                     "the reference split kNN and the probe are fitted on (train arrays or half of Z) ..."),
        Intermediate("y_fit", ("labels", "Z_fit"),
                     _split(0, "labels", lambda v, step: check_labels(step.inputs["train_labels"], len(v["Z_fit"]), "train labels")),
                     "... its labels ...", timed=False),
        Intermediate("Z_score", ("labels",), _split(1, "Z"), "... and the split they are scored on ...", timed=False),
        Intermediate("y_score", ("labels",), _split(1, "labels"), "... with its labels", timed=False),
        Intermediate("spectrum", ("Z",), lambda v, step: spectrum(v["Z"]),
                     "Spectrum: singular values, covariance eigenvalues, right singular vectors"),
        Intermediate("CZ", ("Z", "k"), lambda v, step: spherical_kmeans(v["Z"], v["k"], step.cfg.seed),
                     "spherical k-means labels of Z itself (not Z3) with k1 clusters, the data seed: pseudo-labels",
                     timing="kmeans_z"),
    ]
}
SEED_DEPENDENT = tuple(name for name, item in INTERMEDIATES.items() if item.seeded)  # change with the evaluation seed
