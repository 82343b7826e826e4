"""Checks and shapes of the arrays every metric and engine step takes (embeddings, labels, augmented views), and
what a computation reports besides a value: :class:`MetricUndefined` and notes.

Each check returns the array in the form the computations use or raises :class:`MetricUndefined`, whose
message says why there is no value (degenerate input never gives a made-up number). The round-off rule
(:data:`ROUNDOFF_ULPS`) decides when rows count as identical.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Iterator, Union
import warnings

import numpy as np

from sslmon._lazy import LazyModule

if TYPE_CHECKING:
    import torch
else:
    torch = LazyModule("torch")  # imported where first used: `sslmon --help` and `sslmon metrics` start without it

ArrayLike = Union[np.ndarray, "torch.Tensor", list]


class MetricUndefined(ValueError):
    """The metric has no value for this input; the message is the reason."""


class MetricNote(UserWarning):
    """Something to record beside a metric's value (e.g. the probe did not converge); the message says what.
    Issued by :func:`note` outside :func:`collect_notes`."""


_NOTES: ContextVar[list[str] | None] = ContextVar("sslmon_metric_notes", default=None)


def note(message: str) -> None:
    """Record ``message`` beside the value being computed: into the innermost :func:`collect_notes` list, else
    as a :class:`MetricNote` warning."""
    sink = _NOTES.get()
    if sink is None:
        warnings.warn(message, MetricNote, stacklevel=3)
    else:
        sink.append(message)


@contextmanager
def collect_notes() -> Iterator[list[str]]:
    """The notes (:func:`note`) made inside the block, in order (evaluate_embeddings keeps them per metric)."""
    token = _NOTES.set([])
    try:
        yield _NOTES.get()
    finally:
        _NOTES.reset(token)


# Differences below this many units in the last place (ulps) of the data's own scale count as round-off: rows whose
# total variance (centred) is at most noise = (ROUNDOFF_ULPS * eps)^2 * their mean squared norm (eps of the
# embeddings' dtype) are identical up to round-off (:func:`spread`); per-dimension spreads of L2-normalised rows
# below ROUNDOFF_ULPS * eps are 0.
ROUNDOFF_ULPS = 16
ZERO_VARIANCE = (f"zero variance: the rows are identical up to round-off (their spread is below {ROUNDOFF_ULPS} ulps "
                 "of their norm)")


MAX_MAGNITUDE = 1e100  # largest |value| accepted in embeddings; squared it stays far from float64's 1.8e308
FLOAT32_SAFE = 1e15  # float32 embeddings up to this magnitude: d * value^2 stays far from float32's 3.4e38
# Embeddings whose largest |value| is below this (but not 0) are refused by the metric functions: their squares and
# distances underflow (in float32 already below 1e-19). evaluate_embeddings first multiplies them by a power of two.
MIN_MAGNITUDE = 2.0**-32


def check_embeddings(Z: ArrayLike, name: str = "embeddings", min_samples: int = 2, tiny: bool = False) -> np.ndarray:
    """Return ``Z`` as a float (n, d) array, or raise MetricUndefined.

    float32 and float64 input keep their dtype (no copy); anything else becomes float64, and so
    does float32 input above FLOAT32_SAFE in magnitude (its squared distances would overflow float32).
    Rejects non-2-D input, fewer than ``min_samples`` rows, NaN/Inf values, and values above
    MAX_MAGNITUDE in absolute value (their squares, products and sums overflow float64), and, unless ``tiny``
    (the caller rescales them), values all below MIN_MAGNITUDE but not all 0 (their squares underflow).
    """
    if isinstance(Z, torch.Tensor):
        Z = Z.detach().cpu().numpy()
    Z = np.asarray(Z)
    if Z.dtype not in (np.float32, np.float64):
        Z = Z.astype(np.float64)
    if Z.ndim != 2:
        raise MetricUndefined(f"{name} must be 2-D (n, d), got shape {Z.shape}")
    if Z.shape[0] < min_samples:
        raise MetricUndefined(f"{name} has {Z.shape[0]} rows, needs at least {min_samples}")
    if not np.isfinite(Z).all():
        bad = int((~np.isfinite(Z)).any(axis=1).sum())
        raise MetricUndefined(f"{name} contain NaN or Inf ({bad} of {Z.shape[0]} rows)")
    peak = float(np.abs(Z).max()) if Z.size else 0.0
    if peak > MAX_MAGNITUDE:
        raise MetricUndefined(f"{name} reach {peak:.3g} in magnitude, above {MAX_MAGNITUDE:g}: distances and covariances would overflow")
    if 0 < peak < MIN_MAGNITUDE and not tiny:
        raise MetricUndefined(f"{name} reach only {peak:.3g} in magnitude, below {MIN_MAGNITUDE:.3g}: their squares "
                              "underflow (evaluate_embeddings and sslmon score rescale them first)")
    if Z.dtype == np.float32 and peak > FLOAT32_SAFE:
        Z = Z.astype(np.float64)
    return Z


def check_labels(labels: ArrayLike, n: int, name: str = "labels", min_classes: int = 2) -> np.ndarray:
    """Return ``labels`` as a 1-D array of length ``n`` with >= ``min_classes`` values."""
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu().numpy()
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.shape[0] != n:
        raise MetricUndefined(f"{name} must have shape ({n},), got {labels.shape}")
    n_classes = len(np.unique(labels))
    if n_classes < min_classes:
        raise MetricUndefined(f"{name} have {n_classes} distinct value(s), need at least {min_classes}")
    return labels


def l2_normalize(Z: np.ndarray) -> np.ndarray:
    """Rows divided by their Euclidean norm (rows of norm 0 stay 0)."""
    norms = np.linalg.norm(Z, axis=1, keepdims=True)
    return Z / np.maximum(norms, 1e-12).astype(Z.dtype)


def is_roundoff(total_variance: float, mean_sq_norm: float, dtype: np.dtype) -> tuple[bool, float]:
    """(collapsed, noise): the round-off rule of :data:`ROUNDOFF_ULPS`, in squared units of the rows."""
    noise = float((ROUNDOFF_ULPS * np.finfo(dtype).eps) ** 2 * mean_sq_norm)
    return not total_variance > noise, noise


def spread(Z: ArrayLike, block_rows: int = 8192) -> tuple[float, bool]:
    """(total variance, collapsed) of the rows of Z: the trace of their covariance (centred in float64, divided by
    n - 1) and whether it is round-off, at most (ROUNDOFF_ULPS * eps)^2 * the mean squared row norm. O(n d)."""
    Z = check_embeddings(Z)
    n = Z.shape[0]
    mu = Z.sum(axis=0, dtype=np.float64) / n
    total = sum(float(((Z[s : s + block_rows] - mu) ** 2).sum()) for s in range(0, n, block_rows)) / max(n - 1, 1)
    return total, is_roundoff(total, total * (n - 1) / n + float(mu @ mu), Z.dtype)[0]


def check_spread(Z: ArrayLike) -> None:
    """MetricUndefined(:data:`ZERO_VARIANCE`) when the rows of Z are identical up to round-off (:func:`spread`)."""
    if spread(Z)[1]:
        raise MetricUndefined(ZERO_VARIANCE)


def check_views(views: ArrayLike, min_images: int = 2, min_views: int = 2) -> np.ndarray:
    """Return augmented-view embeddings as a float64 (n_images, n_views, d) array, or raise MetricUndefined."""
    if isinstance(views, torch.Tensor):
        views = views.detach().cpu().numpy()
    views = np.asarray(views)
    if views.ndim != 3:
        raise MetricUndefined(f"views must be 3-D (n_images, n_views, d), got shape {views.shape}")
    n, q, d = views.shape
    if n < min_images or q < min_views:
        raise MetricUndefined(f"views need at least {min_images} images and {min_views} views each, got {n} x {q}")
    return check_embeddings(views.reshape(n * q, d), "views").astype(np.float64).reshape(n, q, d)

