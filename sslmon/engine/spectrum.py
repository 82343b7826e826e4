"""The spectra of an embedding matrix: its centred scatter (Gram) matrix, singular values and covariance eigenvalues,
computed once per embedding set and shared by RankMe, alpha-ReQ, NESum, stable rank and coherence."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sslmon.engine.arrays import ArrayLike, check_embeddings, is_roundoff

def gram(Z: ArrayLike, block_rows: int = 8192) -> tuple[np.ndarray, np.ndarray, int]:
    """(C, mu, n): the centred scatter matrix C = (Z - mu)^T (Z - mu) and the column means mu, accumulated in
    float64 over row blocks (no float64 copy of Z). Centring before the product keeps the covariance of nearly
    identical rows free of the cancellation that Z^T Z - n mu mu^T suffers (identical rows give exactly 0)."""
    Z = check_embeddings(Z)
    n, d = Z.shape
    mu = Z.sum(axis=0, dtype=np.float64) / n
    C = np.zeros((d, d))
    for start in range(0, n, block_rows):
        block = Z[start : start + block_rows].astype(np.float64) - mu
        C += block.T @ block
    return C, mu, n


@dataclass(frozen=True)
class Spectrum:
    """The min(n, d) squared singular values of Z (uncentred, descending), the covariance eigenvalues
    (descending), and the right singular vectors of Z (d x min(n, d), columns in the same order).
    ``collapsed``: the rows are identical up to round-off (:func:`spread`'s rule; the covariance is then 0)."""

    singular_sq: np.ndarray
    covariance: np.ndarray
    n: int
    right_vectors: np.ndarray
    collapsed: bool = False


def spectrum(Z: ArrayLike) -> Spectrum:
    """Both spectra from one float64 centred scatter matrix C (:func:`gram`, d x d).

    The covariance eigenvalues are those of C / (n - 1); s_k^2 and the right singular vectors are the
    eigenpairs of G = Z^T Z = C + n mu mu^T. Eigenvalues are set to 0 below the round-off level of the
    eigensolver (d * float64 epsilon * the largest), as an SVD would find them, and below the round-off
    level of the data, relative to its own scale (noise = (ROUNDOFF_ULPS * eps)^2 * trace(G) / n, eps of Z's
    dtype, trace(G) / n the mean squared row norm): rows identical up to round-off (trace(C) / (n - 1) <=
    noise, :func:`spread`'s rule) get a covariance of exactly 0 and no eigenvalue of G but the first
    (below (n - 1) * noise), so the spectra of identical rows whatever the rounding; otherwise covariance
    eigenvalues below noise / d and eigenvalues of G below (n - 1) * noise / d are 0.
    """
    Z = check_embeddings(Z)
    C, mu, n = gram(Z)
    d = C.shape[0]
    k = min(n, d)  # Z has min(n, d) singular values; G's other d - n eigenvalues are structural zeros
    G = C + n * np.outer(mu, mu)
    collapsed, noise = is_roundoff(float(np.trace(C)) / max(n - 1, 1), float(np.trace(G)) / n, Z.dtype)
    noise = noise if collapsed else noise / d

    def floor(lam: np.ndarray, level: float) -> np.ndarray:
        lam[(lam < len(lam) * np.finfo(np.float64).eps * max(lam[0], 0.0)) | (lam <= level)] = 0.0
        return lam[:k]

    lam, vectors = np.linalg.eigh(G)
    covariance = np.zeros(d) if collapsed else np.linalg.eigvalsh(C / max(n - 1, 1))[::-1]
    return Spectrum(floor(lam[::-1].copy(), (n - 1) * noise), floor(covariance.copy(), noise), n,
                    vectors[:, ::-1][:, :k], collapsed)
