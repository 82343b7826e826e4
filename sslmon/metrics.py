"""Metrics of an embedding space: pure functions over arrays, scikit-learn style.

Every function takes numpy arrays or torch tensors, validates them, and either returns a float or raises
:class:`MetricUndefined` whose message says why the metric has no value for this input (degenerate input never gives a
made-up number). Definitions follow Xu, Lowe & Trappenberg (2024), "Label-free Monitoring of Self-Supervised Learning
Progress", and the papers cited per function. Logarithms are natural (entropies in nats).

Notation: ``Z`` (n, d) embeddings, ``Z3`` (n, 3) their UMAP projection, ``C1``/``C2`` spherical k-means labels of Z3
with k1 and k2 = 2 k1 clusters.

:data:`METRICS`, at the end, is the registry: one :class:`MetricSpec` per metric key says how it ranks, what it is
computed from and how, and how tables and figures name it. The engine work (array checks, k-means, spectra,
silhouettes, neighbour searches) is in :mod:`sslmon.engine`; the intermediates that ``needs`` names, with their
builders, in :mod:`sslmon.engine.intermediates`.
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Literal, Mapping, Protocol
import warnings

import numpy as np
from threadpoolctl import threadpool_limits

from sslmon.engine.arrays import (ROUNDOFF_ULPS, ZERO_VARIANCE, ArrayLike, MetricNote as MetricNote, MetricUndefined as MetricUndefined,
                                  check_embeddings, check_labels, check_spread, check_views, collect_notes as collect_notes,
                                  l2_normalize, note)
from sslmon.engine.clustering import check_clustering, silhouettes
from sslmon.engine.clustering import Z3_KMEANS_VARIANTS as Z3_KMEANS_VARIANTS, spherical_kmeans as spherical_kmeans  # (as: re-exported)
from sslmon.engine.intermediates import SEED_DEPENDENT
from sslmon.engine.neighbors import TWONN_CANDIDATES, prequential_knn_correct, twonn_radii, weighted_knn_votes
from sslmon.engine.spectrum import Spectrum, spectrum

if TYPE_CHECKING:
    import torch  # annotations only: `sslmon --help` and `sslmon metrics` start without torch


class Settings(Protocol):
    """The evaluation settings a metric's ``compute`` reads (:class:`sslmon.evaluation.EvalConfig` has them all)."""

    seed: int
    device: str
    bin_factor: float
    knn_k: int
    knn_temperature: float


# alpha-ReQ's fit: over i = 1..min(n - 1, d), with eigenvalues below ALPHA_REQ_FLOOR * lambda_1 raised to it.
ALPHA_REQ_FLOOR = 1e-8
ALPHA_REQ_RANGE = "i = 1..min(n - 1, d)"


@dataclass(frozen=True)
class MetricSpec:
    """Everything about one metric key: direction, definition, display names, inputs and computation.

    ``better`` is ``"higher"``, ``"lower"``, ``"target"`` (closest to ``target`` is best) or ``"none"``: no supported
    direction, so the metric is shown but never ranked by nor part of a consensus (:attr:`ranked`). ``title``: a
    readable name (figure titles); ``symbol`` and ``unit`` (a unit or the range of values): axis labels. ``needs``:
    the names of :data:`sslmon.engine.intermediates.INTERMEDIATES` (or other metric keys) it is computed from;
    ``compute(values, config)`` returns its value from a mapping that holds them and the :class:`Settings` (an
    :class:`sslmon.evaluation.EvalConfig`), or raises :class:`MetricUndefined`. ``silhouette_of``: the labelling in
    ``needs`` whose silhouette on Z this is (evaluate computes all of those in one pass over the distances;
    ``compute`` gives the same number alone). ``uncertainty_of``: the metric this one is the standard error of (shown
    as value ± this, not as a column of its own). ``train_split``: fitted on the caller's train split when there is
    one (kNN, the probe), else on half of the evaluated set.
    """

    name: str
    better: Literal["higher", "lower", "target", "none"]
    needs_labels: bool
    summary: str
    target: float | None = None
    _: KW_ONLY
    title: str
    symbol: str
    unit: str
    needs: tuple[str, ...]
    compute: Callable[[Mapping[str, Any], Settings], float] = field(repr=False, compare=False)
    silhouette_of: str | None = None
    uncertainty_of: str | None = None
    train_split: bool = False

    @property
    def seeded(self) -> bool:
        """Whether the value depends on the evaluation seed: it needs Z3, C1 or C2, or a metric that does."""
        return any(n in SEED_DEPENDENT or (n in METRICS and METRICS[n].seeded) for n in self.needs)

    @property
    def ranked(self) -> bool:
        """Whether the metric has a direction to rank by (``better`` is not ``"none"``)."""
        return self.better != "none"

    @property
    def direction(self) -> str:
        """The direction in words: ``higher is better``, ``closest to 1 is better``, ``no direction: never ranked``."""
        if not self.ranked:
            return "no direction: never ranked"
        return f"{self.better if self.target is None else f'closest to {self.target:g}'} is better"

    @property
    def arrow(self) -> str:
        """The direction as the table shows it: ↑ higher, ↓ lower, →target is better, · no direction."""
        if not self.ranked:
            return "·"
        return {"higher": "↑", "lower": "↓"}.get(self.better) or f"→{self.target if self.target is not None else 0.0:g}"

    def sort_key(self, value: float) -> float:
        """A number that is smaller for a better value (for ascending sorts); ValueError without a direction."""
        if not self.ranked:
            raise ValueError(f"{self.name} has no direction: it is shown, never ranked")
        if self.better == "higher":
            return -value
        if self.better == "lower":
            return value
        return abs(value - (self.target if self.target is not None else 0.0))


# --------------------------------------------------------------------------- clustering metrics


def silhouette(Z: ArrayLike, labels: ArrayLike, **kwargs) -> float:
    """Mean silhouette coefficient of one labelling (see :func:`silhouettes`)."""
    return silhouettes(Z, [labels], **kwargs)[0]


def silhouette_c1(Z: ArrayLike, C1: ArrayLike, **kwargs) -> float:
    """S1: silhouette of the k-means clusters C1 measured on the raw embeddings Z."""
    return silhouette(Z, C1, **kwargs)


def silhouette_gt(Z: ArrayLike, labels: ArrayLike, **kwargs) -> float:
    """S_GT: silhouette of the ground-truth classes measured on the raw embeddings Z."""
    return silhouette(Z, labels, **kwargs)


def _ami(a: ArrayLike, b: ArrayLike, name_a: str, name_b: str) -> float:
    """Adjusted mutual information, arithmetic normalisation (scikit-learn)."""
    a = check_labels(a, len(a), name_a)
    b = check_labels(b, len(a), name_b)
    from sklearn.metrics import adjusted_mutual_info_score

    return float(adjusted_mutual_info_score(a, b, average_method="arithmetic"))


def ami_c1_c2(C1: ArrayLike, C2: ArrayLike) -> float:
    """AMI(C1;C2): clustering agreement between k-means with k1 and k2 = 2 k1 clusters.

    AMI = (I - E[I]) / (mean(H(C1), H(C2)) - E[I]) with E[I] under the hypergeometric model; 0 = chance agreement, 1 =
    identical partitions.
    """
    return _ami(C1, C2, "C1", "C2")


def ami_c1_gt(C1: ArrayLike, labels: ArrayLike) -> float:
    """AMI(C1;C_GT): how much the k-means clusters C1 tell about the true classes."""
    return _ami(C1, labels, "C1", "labels")


# --------------------------------------------------------------------------- distribution metrics


def entropy_z3(Z3: ArrayLike, bin_factor: float = 0.4) -> float:
    """H(Z3): Shannon entropy, in nats, of the histogram of Z3.

    Along each dimension i the bin width is ``bin_factor * sigma_i`` (sigma_i the population std of Z3[:, i]), bins
    start at the minimum; p = count / n over the occupied bins; H = -sum p ln p. The paper uses 0.4 for SSL encoders
    and 0.8 for supervised ImageNet models. Works for any number of dimensions.
    """
    Z3 = check_embeddings(Z3, "Z3")
    if bin_factor <= 0:
        raise MetricUndefined(f"bin_factor must be > 0, got {bin_factor}")
    sigma = Z3.std(axis=0)
    if (sigma == 0).any():
        raise MetricUndefined(f"Z3 has zero spread along dimension(s) {np.flatnonzero(sigma == 0).tolist()}")
    check_spread(Z3)  # identical up to round-off: their std is round-off, not 0 (e.g. float32 means)
    bins = np.floor((Z3 - Z3.min(axis=0)) / (bin_factor * sigma)).astype(np.int64)
    _, counts = np.unique(bins, axis=0, return_counts=True)
    p = counts / Z3.shape[0]
    return float(-(p * np.log(p)).sum())


def rankme(Z: ArrayLike | Spectrum, eps: float = 1e-7) -> float:
    """RankMe (Garrido et al., 2023): effective rank of the uncentred embedding matrix.

    s_k the singular values of Z, p_k = s_k / sum(s) + eps, RankMe = exp(-sum_k p_k ln p_k). Between 1 and min(n, d).
    Accepts a precomputed :class:`Spectrum`.
    """
    spec = Z if isinstance(Z, Spectrum) else spectrum(Z)
    s = np.sqrt(spec.singular_sq)
    if s.sum() <= 0:
        raise MetricUndefined("all embeddings are zero")
    p = s / s.sum() + eps
    return float(np.exp(-(p * np.log(p)).sum()))


def alpha_req(Z: ArrayLike | Spectrum, floor: float = ALPHA_REQ_FLOOR) -> float:
    """alpha-ReQ (Agrawal et al., 2022): decay exponent of the covariance eigenspectrum.

    lambda_1 >= lambda_2 >= ... are the eigenvalues of the covariance of Z (centred, divided by n - 1). Least squares
    fit of ln max(lambda_i, floor * lambda_1) = c - alpha ln i over the fixed range i = 1..min(n - 1, d) (every
    eigenvalue the covariance can have; :data:`ALPHA_REQ_RANGE`): eigenvalues are floored at ``floor`` * lambda_1
    (:data:`ALPHA_REQ_FLOOR`), never dropped, so collapsed directions steepen the fit instead of leaving it, and every
    checkpoint with the same n and d is fitted over the same indices. alpha near 1 is the regime the paper links to
    good generalisation; much larger alpha means dimensional collapse, much smaller a noise-like spectrum. Undefined
    for rows identical up to round-off (:func:`spectrum`). Accepts a precomputed :class:`Spectrum`.
    """
    spec = Z if isinstance(Z, Spectrum) else spectrum(Z)
    if spec.n < 4:
        raise MetricUndefined(f"embeddings has {spec.n} rows, needs at least 4")
    if spec.collapsed:
        raise MetricUndefined(ZERO_VARIANCE)
    lam = spec.covariance[: min(spec.n - 1, len(spec.covariance))]
    if len(lam) < 3:
        raise MetricUndefined(f"only {len(lam)} covariance eigenvalue(s); the fit needs 3")
    x = np.log(np.arange(1, len(lam) + 1))
    slope = np.polyfit(x, np.log(np.maximum(lam, floor * lam[0])), 1)[0]
    return float(-slope)


def l2_std(Z: ArrayLike) -> float:
    """Collapse check (as in lightly): mean over dimensions of the std of L2-normalised rows.

    0 means every embedding points the same way (collapse); about 1/sqrt(d) means directions spread evenly over the
    sphere. A per-dimension std below ROUNDOFF_ULPS * eps (of Z's dtype; the rows have norm 1) is round-off and counts
    as 0. Unitless.
    """
    U = l2_normalize(check_embeddings(Z))
    U -= U.mean(axis=0, dtype=np.float64).astype(U.dtype)
    std = np.sqrt((U * U).mean(axis=0, dtype=np.float64))
    return float(np.where(std <= ROUNDOFF_ULPS * np.finfo(U.dtype).eps, 0.0, std).mean())


# --------------------------------------------------------------------------- label-based probes


def knn_acc(
    Z_train: ArrayLike,
    y_train: ArrayLike,
    Z_test: ArrayLike,
    y_test: ArrayLike,
    k: int = 20,
    temperature: float = 0.07,
    chunk: int = 1024,
    device: str | torch.device = "cpu",
) -> float:
    """Weighted kNN accuracy (Wu et al., 2018), a fraction in [0, 1].

    Each test embedding takes its k most cosine-similar train embeddings; each neighbour votes for its class with
    weight exp(sim / temperature); the class with the largest summed vote (lowest class index on ties) is the
    prediction.
    """
    Z_train = check_embeddings(Z_train, "train embeddings")
    Z_test = check_embeddings(Z_test, "test embeddings", min_samples=1)
    y_train = check_labels(y_train, Z_train.shape[0], "train labels")
    y_test = check_labels(y_test, Z_test.shape[0], "test labels", min_classes=1)
    if Z_train.shape[1] != Z_test.shape[1]:
        raise MetricUndefined(f"train and test dimensions differ ({Z_train.shape[1]} vs {Z_test.shape[1]})")
    if k > Z_train.shape[0]:
        raise MetricUndefined(f"k={k} exceeds the {Z_train.shape[0]} train samples")
    classes, y_idx = np.unique(y_train, return_inverse=True)
    predicted = classes[weighted_knn_votes(l2_normalize(Z_train), y_idx, l2_normalize(Z_test), k, temperature, chunk, device)]
    return float((predicted == y_test).mean())


def lp_acc(
    Z_train: ArrayLike,
    y_train: ArrayLike,
    Z_test: ArrayLike,
    y_test: ArrayLike,
    seed: int | None = 0,
    max_iter: int = 1000,
) -> float:
    """Linear-probe accuracy, a fraction in [0, 1].

    The fast variant: a multinomial logistic regression (L2, C = 1, lbfgs, one BLAS thread for reproducibility) on
    standardised frozen features of the train split, without augmentation, scored on the test split. (The paper's
    probe trains with Adam and AutoAugment for 20 epochs; numbers from the two are not interchangeable.) When lbfgs
    stops at ``max_iter`` without converging, a :func:`note` says so (the score is the last iterate's).
    """
    Z_train = check_embeddings(Z_train, "train embeddings").astype(np.float64)
    Z_test = check_embeddings(Z_test, "test embeddings", min_samples=1).astype(np.float64)
    y_train = check_labels(y_train, Z_train.shape[0], "train labels")
    y_test = check_labels(y_test, Z_test.shape[0], "test labels", min_classes=1)
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter, random_state=seed))
    # One BLAS thread: lbfgs then gives the same probe whatever the machine's thread count, and on
    # probe-sized problems it is faster than several threads competing for a small CPU.
    with warnings.catch_warnings(), threadpool_limits(limits=1, user_api="blas"):
        warnings.simplefilter("ignore")  # ConvergenceWarning at max_iter: the score is still the probe's
        probe.fit(Z_train, y_train)
    if int(np.max(probe[-1].n_iter_)) >= max_iter:
        note(f"the probe did not converge: lbfgs stopped at max_iter={max_iter} iterations "
             "(the accuracy is that of its last iterate)")
    return float(probe.score(Z_test, y_test))


# --------------------------------------------------------------------------- later additions


def lp_acc_se(accuracy: float | None, n_test: int) -> float:
    """Binomial standard error of an accuracy p measured on ``n_test`` samples: sqrt(p (1 - p) / n_test).

    The same unit as p (a fraction). Two probe accuracies closer than about 2 standard errors are not distinguishable
    from the test-set sampling alone.
    """
    if accuracy is None:
        raise MetricUndefined("lp_acc is undefined")
    if n_test < 1 or not 0 <= accuracy <= 1:
        raise MetricUndefined(f"needs an accuracy in [0, 1] and n_test >= 1 (got {accuracy}, {n_test})")
    return float(np.sqrt(accuracy * (1 - accuracy) / n_test))


def nesum(Z: ArrayLike | Spectrum) -> float:
    """NESum (He & Ozay, "Exploring the Gap between Collapsed and Whitened Features in Self-Supervised Learning", ICML
    2022, Definition 4.1): sum_i lambda_i / lambda_1 over the eigenvalues of the covariance of Z (centred, divided by
    n - 1), lambda_1 the largest.

    Between 1 (one direction carries all variance) and d (whitened). Undefined for rows identical up to round-off
    (:func:`spectrum`). Unitless. Accepts a :class:`Spectrum`.
    """
    spec = Z if isinstance(Z, Spectrum) else spectrum(Z)
    if spec.collapsed:
        raise MetricUndefined(ZERO_VARIANCE)
    return float(spec.covariance.sum() / spec.covariance[0])


def stable_rank(Z: ArrayLike | Spectrum) -> float:
    """Stable rank ||Z||_F^2 / ||Z||_2^2 = sum_k s_k^2 / s_1^2 of the uncentred embedding matrix (as in Tsitsulin,
    Munkhoeva & Perozzi, "Unsupervised Embedding Quality Evaluation", 2023).

    Between 1 and rank(Z). Unitless. Accepts a :class:`Spectrum`.
    """
    s2 = (Z if isinstance(Z, Spectrum) else spectrum(Z)).singular_sq
    if s2[0] <= 0:
        raise MetricUndefined("all embeddings are zero")
    return float(s2.sum() / s2[0])


def self_clustering(Z: ArrayLike) -> float:
    """Self-clustering (Tsitsulin, Munkhoeva & Perozzi, "Unsupervised Embedding Quality Evaluation", 2023).

    With X the L2-normalised rows of Z (n x d), A = sum_ij (x_i . x_j)^2 = ||X^T X||_F^2 and E = n + n (n - 1) / d its
    expectation for independent uniformly random directions: (A - E) / (n^2 - E). 1 when all rows point the same way
    (collapse), about 0 for random directions, negative when more spread than random. Unitless.
    """
    Z = check_embeddings(Z)
    if (np.linalg.norm(Z, axis=1) == 0).any():
        raise MetricUndefined("some embeddings are zero vectors (no direction)")
    X = l2_normalize(Z)
    n, d = X.shape
    actual = float((np.square(X.T @ X)).sum())
    expected = n + n * (n - 1) / d
    if n * n == expected:
        raise MetricUndefined("d = 1: every direction is the same up to sign")
    return float((actual - expected) / (n * n - expected))


def coherence(Z: ArrayLike, rel_tol: float = 1e-10, spec: Spectrum | None = None, block_rows: int = 8192) -> float:
    """Coherence of the uncentred embedding matrix (Tsitsulin, Munkhoeva & Perozzi, 2023; the matrix-completion coherence
    of Candes & Recht 2009): (n / r) max_i ||U_i||^2, U the n x r left singular vectors for the r singular values
    above ``rel_tol`` * s_1.

    U = Z V_r / s_r from the right singular vectors of ``spec`` (computed when not given), a block of rows at a time:
    no n x d float64 copy. Between 1 (every sample carries the same share of the space) and n / r (one sample spans a
    direction alone). Unitless. Undefined when n <= d (r <= n rows of full rank give exactly 1 whatever the data) and
    for rows identical up to round-off (also 1).
    """
    Z = check_embeddings(Z)
    if Z.shape[0] <= Z.shape[1]:
        raise MetricUndefined(f"n = {Z.shape[0]} rows <= d = {Z.shape[1]} dimensions: coherence is 1 for any such "
                              "embedding of full rank, so it says nothing")
    spec = spec or spectrum(Z)
    s = np.sqrt(spec.singular_sq)
    if s[0] <= 0:
        raise MetricUndefined("all embeddings are zero")
    if spec.collapsed:
        raise MetricUndefined(ZERO_VARIANCE + "; coherence would be 1, as for evenly spread rows")
    r = int((s > rel_tol * s[0]).sum())
    W = spec.right_vectors[:, :r] / s[:r]
    peak = max(float(((Z[i : i + block_rows] @ W) ** 2).sum(axis=1).max()) for i in range(0, Z.shape[0], block_rows))
    return float(Z.shape[0] / r * peak)


def twonn_id(Z: ArrayLike, discard: float = 0.1, neighbor_indices: np.ndarray | None = None) -> float:
    """TwoNN intrinsic dimension (Facco, d'Errico, Rodriguez & Laio, Sci. Rep. 7, 12140, 2017).

    For each point mu = r2 / r1, its Euclidean distances to the 2nd and 1st nearest neighbour, on the distinct rows
    (duplicates, also those equal up to round-off, count once: :func:`twonn_radii`). With mu sorted ascending and the
    empirical F(mu_(i)) = i / N, the fraction ``discard`` of largest mu is dropped and d is the least-squares slope
    through the origin of -ln(1 - F) against ln mu: d = sum x y / sum x^2. ``neighbor_indices``: each row's nearest
    rows, itself first, ascending (n, >= 3), e.g. from the kNN graph of the Z3 engine (the first
    :data:`TWONN_CANDIDATES` are searched); computed when not given. No direction: a higher ID has been read as both
    better (CLID) and worse (Ansuini et al. 2019).
    """
    Z = check_embeddings(Z, min_samples=3)
    check_spread(Z)
    if neighbor_indices is None:
        from sklearn.neighbors import NearestNeighbors

        k = min(Z.shape[0], TWONN_CANDIDATES)
        neighbor_indices = NearestNeighbors(n_neighbors=k).fit(Z).kneighbors(Z, return_distance=False)
    r1, r2 = twonn_radii(Z, np.asarray(neighbor_indices)[:, :TWONN_CANDIDATES])
    mu = np.sort(r2 / r1)
    n = len(mu)
    m = min(int(n * (1 - discard)), n - 1)  # F = 1 at the largest mu: -ln(0)
    if m < 2:
        raise MetricUndefined(f"only {n} distinct points with two distinct neighbours")
    x = np.log(mu[:m])
    y = -np.log(1 - np.arange(1, m + 1) / n)
    if (x**2).sum() == 0:
        raise MetricUndefined("every point is equidistant from its two nearest neighbours")
    return float((x * y).sum() / (x**2).sum())


def cluster_learnability(
    Z: ArrayLike,
    pseudo_labels: ArrayLike,
    k: int = 20,
    temperature: float = 0.07,
    seed: int | None = 0,
    chunk: int = 1024,
    device: str | torch.device = "cpu",
) -> float:
    """Cluster learnability CL (Lu, Liu, Baratin, Laroche, Courville & Sordoni, "Using Representation Expressiveness and
    Learnability to Evaluate Self-Supervised Learning Methods", arXiv:2206.01251, 2022): how fast a kNN classifier
    learns the k-means pseudo-labels of the embeddings.

    What is computed: the rows of Z in a random order (``numpy.random.default_rng(seed).permutation``); each row from
    the second on is predicted from the rows before it, then joins them (prequential, online learning): the weighted
    kNN of :func:`knn_acc` (cosine similarity, the min(k, rows before) most similar earlier rows, votes exp(sim /
    temperature), ties to the lowest label). CL is the fraction of the n - 1 predictions equal to the row's
    pseudo-label: the mean accuracy over the stream, i.e. the area under the classifier's learning curve. A fraction
    in [0, 1]; about 1 / (number of clusters) when the pseudo-labels cannot be learned.

    The number of clusters (k1), the k-means (cosine, of Z, shared with :func:`dse`), the classifier (knn_acc's) and
    the stream (every row once, one seeded order) are sslmon's choices, where the paper's text fixes none; CLID (CL
    with the intrinsic dimension, z-scored over models) has no counterpart (docs/metrics.md#later-label-free-metrics).
    """
    Z = check_embeddings(Z)
    y = check_labels(pseudo_labels, Z.shape[0], "pseudo-labels")
    if k < 1 or temperature <= 0:
        raise MetricUndefined(f"needs k >= 1 and temperature > 0 (got {k}, {temperature})")
    order = np.random.default_rng(seed).permutation(Z.shape[0])
    y_idx = np.unique(y[order], return_inverse=True)[1]
    return prequential_knn_correct(l2_normalize(Z[order]), y_idx, k, temperature, chunk, device) / (Z.shape[0] - 1)


def dse(Z: ArrayLike, pseudo_labels: ArrayLike) -> float:
    """DSE, the dense representation structure estimator (Dai, Xu, Wen, Liu & Huang, "Exploring Structural Degradation in
    Dense Representations for Self-supervised Learning", NeurIPS 2025, arXiv:2510.17299), here on image embeddings:
    M_inter - M_intra + M_dim, higher is better.

    X = the L2-normalised rows of Z, grouped by the k-means pseudo-labels into clusters X_j (N_j rows, mean mu_j).
    M_inter = mean over clusters of the mean over x in X_j of min_{i != j} ||x - mu_i||^2 (separation). M_intra = mean
    over clusters with N_j >= 2 of sum_i sigma_i(X_j - mu_j) / sqrt(N_j - 1), sigma_i the singular values of the
    centred cluster: the sum of its standard deviations along its principal axes (a radius; singletons are left out).
    M_dim = erank(X) / min(n, d), erank = exp(-sum p_i ln p_i), p_i = s_i / sum(s) over the singular values s of X
    (the effective rank, scaled to [0, 1]).

    Adapted to one row per image, lambda = 1 with M_dim / min(n, d) (the authors' code), M_intra over sqrt(N_j - 1):
    values are not comparable with published ones (docs/metrics.md#later-label-free-metrics). Unitless.
    """
    with threadpool_limits(limits=1, user_api="blas"):  # k + 1 small eigenproblems: threads only contend
        return _dse(l2_normalize(check_embeddings(Z)).astype(np.float64), pseudo_labels)


def _dse(X: np.ndarray, pseudo_labels: ArrayLike) -> float:
    """:func:`dse` of the L2-normalised float64 rows X."""
    n = X.shape[0]
    inverse, counts = check_clustering(pseudo_labels, n)
    k = len(counts)
    centroids = np.zeros((k, X.shape[1]))
    np.add.at(centroids, inverse, X)
    centroids /= counts[:, None]
    sq = (X * X).sum(axis=1)[:, None] - 2 * X @ centroids.T + (centroids * centroids).sum(axis=1)[None, :]
    sq[np.arange(n), inverse] = np.inf
    nearest_other = np.maximum(sq.min(axis=1), 0.0)
    inter = float((np.bincount(inverse, nearest_other, minlength=k) / counts).mean())
    radii = [np.sqrt(spectrum(X[inverse == j]).covariance).sum() for j in range(k) if counts[j] >= 2]
    intra = float(np.mean(radii))
    s = np.sqrt(spectrum(X).singular_sq)
    p = s[s > 0] / s.sum()
    return inter - intra + float(np.exp(-(p * np.log(p)).sum())) / min(X.shape)


def lidar(views: ArrayLike, delta: float = 1e-4, eps: float = 1e-7) -> float:
    """LiDAR (Thilak, Huang, Saremi, Dinh, Goh, Nakkiran, Susskind & Littwin, "LiDAR: Sensing Linear Probing Performance
    in Joint Embedding SSL Architectures", arXiv:2312.04000, 2023): the effective rank of the linear discriminant
    analysis matrix in which every image is a class and its augmented views are the samples.

    ``views`` (n images, q views, d). With mu_i the mean of image i's views and mu the mean of the mu_i: between-class
    S_b = sum_i (mu_i - mu)(mu_i - mu)^T / (n - 1); within-class S_w = sum_ij (e_ij - mu_i)(e_ij - mu_i)^T / (n (q -
    1)) + delta I; the eigenvalues lambda of S_w^(-1/2) S_b S_w^(-1/2) (those of the generalised problem S_b v =
    lambda S_w v), p_k = lambda_k / sum(lambda) + eps, LiDAR = exp(-sum p_k ln p_k). Between 1 and min(d, n - 1) (plus
    eps's share). delta is in squared units of the embeddings. Unitless.
    """
    V = check_views(views)
    n, q, d = V.shape
    means = V.mean(axis=1)
    between = means - means.mean(axis=0)
    S_b = between.T @ between / (n - 1)
    within = (V - means[:, None, :]).reshape(n * q, d)
    S_w = within.T @ within / (n * (q - 1)) + delta * np.eye(d)
    w, U = np.linalg.eigh(S_w)
    whiten = (U / np.sqrt(w)) @ U.T
    lam = np.clip(np.linalg.eigvalsh(whiten @ S_b @ whiten), 0.0, None)
    if lam.sum() <= 0:
        raise MetricUndefined("every image has the same mean embedding over its views (no between-image scatter)")
    p = lam / lam.sum() + eps
    return float(np.exp(-(p * np.log(p)).sum()))


# --------------------------------------------------------------------------- the registry
# One entry per metric key, in display order (table columns, correlate rows, plots). Adding a metric
# is one entry here (see docs/layout.md#contributing-adding-a-metric).

ACCURACY = "fraction of test images correct"
AGREEMENT = "0 = chance, 1 = same partition"
METRICS: dict[str, MetricSpec] = {
    spec.name: spec
    for spec in [
        MetricSpec("ami_c1_c2", "higher", False, "clustering agreement AMI(C1;C2) of k-means on Z3 with k1 and 2*k1 clusters",
            title="clustering agreement", symbol="AMI(C1; C2)", unit=AGREEMENT,
            needs=("C1", "C2"), compute=lambda v, cfg: ami_c1_c2(v["C1"], v["C2"])),
        MetricSpec("silhouette_c1", "higher", False, "S1: silhouette of C1 on the raw embeddings Z, Euclidean",
            title="silhouette of the clusters C1", symbol="S1", unit="-1 to 1", needs=("Z", "C1"), silhouette_of="C1",
            compute=lambda v, cfg: silhouette_c1(v["Z"], v["C1"], device=cfg.device)),
        MetricSpec("entropy_z3", "lower", False, "H(Z3): entropy (nats) of the 3-d histogram of Z3, bin width = factor * std",
            title="entropy of Z3", symbol="H(Z3)", unit="nats",
            needs=("Z3",), compute=lambda v, cfg: entropy_z3(v["Z3"], cfg.bin_factor)),
        MetricSpec("rankme", "higher", False, "RankMe: exp(entropy of the normalised singular values of Z)",
            title="effective rank", symbol="RankMe", unit="dimensions",
            needs=("spectrum",), compute=lambda v, cfg: rankme(v["spectrum"])),
        MetricSpec("alpha_req", "target", False, "alpha-ReQ: power-law decay exponent of the covariance eigenspectrum (best near 1)", 1.0,
            title="eigenspectrum decay", symbol="alpha-ReQ", unit="power-law exponent",
            needs=("spectrum",), compute=lambda v, cfg: alpha_req(v["spectrum"])),
        MetricSpec(
            "l2_std", "higher", False, "collapse check: mean per-dimension std of L2-normalised Z (0 = collapsed, ~1/sqrt(d) = spread)",
            title="collapse check", symbol="std of L2-normalised Z", unit="0 = collapsed",
            needs=("Z",), compute=lambda v, cfg: l2_std(v["Z"])),
        MetricSpec("ami_c1_gt", "higher", True, "AMI(C1;C_GT): agreement of C1 with the ground-truth classes",
            title="agreement of clusters and classes", symbol="AMI(C1; classes)", unit=AGREEMENT,
            needs=("C1", "labels"), compute=lambda v, cfg: ami_c1_gt(v["C1"], v["labels"])),
        MetricSpec("silhouette_gt", "higher", True, "S_GT: silhouette of the ground-truth classes on Z, Euclidean",
            title="silhouette of the classes", symbol="S_GT", unit="-1 to 1", needs=("Z", "labels"), silhouette_of="labels",
            compute=lambda v, cfg: silhouette_gt(v["Z"], v["labels"], device=cfg.device)),
        MetricSpec("knn_acc", "higher", True, "kNN accuracy: cosine similarity, k=20, exp(sim/0.07)-weighted votes",
            title="kNN accuracy", symbol="kNN accuracy", unit=ACCURACY, needs=("labels", "Z_fit", "y_fit", "Z_score", "y_score"),
            compute=lambda v, cfg: knn_acc(v["Z_fit"], v["y_fit"], v["Z_score"], v["y_score"], cfg.knn_k, cfg.knn_temperature,
                                           device=cfg.device), train_split=True),
        MetricSpec("lp_acc", "higher", True, "linear-probe accuracy: logistic regression on frozen standardised features",
            title="linear-probe accuracy", symbol="linear-probe accuracy", unit=ACCURACY,
            needs=("labels", "Z_fit", "y_fit", "Z_score", "y_score"),
            compute=lambda v, cfg: lp_acc(v["Z_fit"], v["y_fit"], v["Z_score"], v["y_score"], seed=cfg.seed), train_split=True),
        MetricSpec("lp_acc_se", "lower", True, "binomial standard error of lp_acc: sqrt(p(1-p)/n_test), n_test = scored samples",
            title="standard error of the linear-probe accuracy", symbol="SE(lp_acc)", unit="fraction",
            needs=("lp_acc", "y_score"), uncertainty_of="lp_acc", train_split=True,
            compute=lambda v, cfg: lp_acc_se(v["lp_acc"], len(v["y_score"]))),
        MetricSpec("nesum", "higher", False, "NESum (He & Ozay 2022): sum of the covariance eigenvalues divided by the largest",
            title="normalised eigenvalue sum", symbol="NESum", unit="1 to d",
            needs=("spectrum",), compute=lambda v, cfg: nesum(v["spectrum"])),
        MetricSpec("stable_rank", "higher", False, "stable rank: ||Z||_F^2 / ||Z||_2^2 of the uncentred embeddings",
            title="stable rank", symbol="||Z||_F² / ||Z||_2²", unit="1 to rank(Z)",
            needs=("spectrum",), compute=lambda v, cfg: stable_rank(v["spectrum"])),
        MetricSpec("self_clustering", "lower", False,
            "self-clustering (Tsitsulin et al. 2023): excess squared cosine similarity over random directions (1 = collapsed, ~0 = random)",
            title="self-clustering", symbol="self-clustering", unit="1 = collapsed, ~0 = random",
            needs=("Z",), compute=lambda v, cfg: self_clustering(v["Z"])),
        MetricSpec("coherence", "lower", False,
            "coherence (Tsitsulin et al. 2023): n/r * max row norm^2 of the left singular vectors (1 = spread evenly)",
            title="coherence", symbol="coherence", unit="1 = spread evenly",
            needs=("Z", "spectrum"), compute=lambda v, cfg: coherence(v["Z"], spec=v["spectrum"])),
        MetricSpec("twonn_id", "none", False,
            "TwoNN intrinsic dimension (Facco et al. 2017) from the ratio of 2nd to 1st neighbour distances; no direction: never ranked",
            title="intrinsic dimension (TwoNN)", symbol="TwoNN ID", unit="dimensions",
            needs=("Z", "knn_indices"), compute=lambda v, cfg: twonn_id(v["Z"], neighbor_indices=v["knn_indices"])),
        MetricSpec("cluster_learnability", "higher", False,
            "cluster learnability (Lu et al. 2022): prequential accuracy of a kNN learning cosine k-means pseudo-labels of Z (k1)",
            title="cluster learnability", symbol="CL", unit="fraction (1/k1 = chance)", needs=("Z", "CZ"),
            compute=lambda v, cfg: cluster_learnability(v["Z"], v["CZ"], cfg.knn_k, cfg.knn_temperature, cfg.seed, device=cfg.device)),
        MetricSpec("dse", "higher", False,
            "DSE (Dai et al. 2025) on image embeddings: pseudo-label separation - cluster radius + effective rank / min(n, d)",
            title="dense representation structure estimator", symbol="DSE", unit="unitless",
            needs=("Z", "CZ"), compute=lambda v, cfg: dse(v["Z"], v["CZ"])),
        MetricSpec("lidar", "higher", False,
            "LiDAR (Thilak et al. 2023): effective rank of the LDA matrix of augmented views, each image a class",
            title="LiDAR", symbol="LiDAR", unit="1 to min(d, images - 1)",
            needs=("views",), compute=lambda v, cfg: lidar(v["views"])),
    ]
}
LABEL_FREE = [name for name, spec in METRICS.items() if not spec.needs_labels]
LABEL_BASED = [name for name, spec in METRICS.items() if spec.needs_labels]
VIEW_BASED = [name for name, spec in METRICS.items() if "views" in spec.needs]  # need augmented views (LiDAR)
UNCERTAINTIES = {name: spec.uncertainty_of for name, spec in METRICS.items() if spec.uncertainty_of}  # standard error -> its metric
TRAIN_SPLIT = [name for name, spec in METRICS.items() if spec.train_split]  # fitted on the train split when there is one
