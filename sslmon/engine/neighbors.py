"""Exact Euclidean k-nearest neighbours by blocked matrix products (torch, any device).

Squared distances come from ``|x|^2 + |y|^2 - 2 x.y`` on the mean-centred embeddings (centring
removes most of the cancellation error of the formula) in the embeddings' own precision (float32
embeddings stay float32: no float64 copy), a block of rows at a time, so
memory is ``block x n`` and never ``n x n`` unless the caller asks to keep the distance matrix
(which the silhouettes then reuse instead of a second pass over ``Z``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from sslmon._lazy import LazyModule
from sslmon.engine.arrays import ROUNDOFF_ULPS

if TYPE_CHECKING:
    import torch
else:
    torch = LazyModule("torch")  # imported at the first kNN graph, not with sslmon.metrics


@dataclass(frozen=True)
class KnnGraph:
    """``indices``/``distances`` (n, k): each row's k nearest rows, itself first, Euclidean distance ascending.

    ``distances_full`` is the (n, n) distance matrix when it was kept, else None.
    """

    indices: np.ndarray
    distances: np.ndarray
    distances_full: torch.Tensor | None = None


def _centred(Z: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    """``Z`` minus its column means (accumulated in float64) on ``device``; float64 stays float64, else float32."""
    Zt = torch.as_tensor(Z, device=device)
    dtype = torch.float64 if Zt.dtype == torch.float64 and device.type != "mps" else torch.float32
    return Zt.to(dtype) - Zt.mean(dim=0, dtype=torch.float64).to(dtype)


def distance_blocks(Z: np.ndarray | torch.Tensor, device: str | torch.device = "cpu", block_bytes: int = 2**27):
    """Yield ``(start, D_block)``: Euclidean distances of rows ``start:start+b`` to all rows.

    The diagonal entries are exactly 0. ``block_bytes`` bounds one block's size.
    """
    dev = torch.device(device)
    X = _centred(Z, dev)
    n = X.shape[0]
    sq = (X * X).sum(dim=1)
    rows = max(1, block_bytes // (X.element_size() * n))
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        d2 = torch.addmm(sq[start:stop, None] + sq[None, :], X[start:stop], X.T, alpha=-2.0)
        D = d2.clamp_(min=0.0).sqrt_()
        idx = torch.arange(stop - start, device=dev)
        D[idx, idx + start] = 0.0
        yield start, D


def knn_graph(
    Z: np.ndarray | torch.Tensor,
    k: int,
    device: str | torch.device = "cpu",
    keep_distances: bool = False,
    block_bytes: int = 2**27,
) -> KnnGraph:
    """Exact k nearest neighbours of every row of ``Z`` (n, d), the row itself included as the first.

    With ``keep_distances`` the full (n, n) distance matrix is
    returned too (4 n^2 bytes for float32 embeddings).
    """
    n = Z.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"k={k} must be between 1 and the number of rows ({n})")
    indices, distances = [], []
    full = None
    for start, D in distance_blocks(Z, device, block_bytes):
        if keep_distances:
            if full is None:
                full = torch.empty((n, n), dtype=D.dtype, device=D.device)
            full[start : start + D.shape[0]] = D
        idx = torch.arange(D.shape[0], device=D.device)
        D_self_first = D.clone() if keep_distances else D
        D_self_first[idx, idx + start] = -1.0  # the row itself first, even when duplicates tie at 0
        values, nn = torch.topk(D_self_first, k, dim=1, largest=False, sorted=True)
        values[:, 0] = 0.0
        indices.append(nn.cpu())
        distances.append(values.cpu())
    return KnnGraph(torch.cat(indices).numpy().astype(np.int64), torch.cat(distances).float().numpy(), full)


TWONN_CANDIDATES = 16  # nearest rows (the row itself included) searched for a row's two nearest distinct neighbours


def twonn_radii(Z: np.ndarray, candidates: np.ndarray, first: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """(r1, r2) of the rows that count in TwoNN: the distances of each row to its nearest and second-nearest
    distinct neighbour, both > 0, for one row per group of duplicates.

    ``candidates`` (n, m): each row's m nearest rows (itself may be among them), e.g. from a kNN graph whose
    distances carry the round-off of |x|^2 + |y|^2 - 2 x.y; the distances are recomputed here as
    ||z_i - z_j|| (differences first, sums of squares in float64), so a duplicate is at distance 0.
    Rows closer than tol = ROUNDOFF_ULPS * eps (Z's dtype) * the largest row norm are duplicates: one
    point, kept once (the lowest index), and r1, r2 skip them (r2 also skips the duplicates of r1's
    row), as if TwoNN ran on the distinct rows. The ``first`` candidates are searched, all of them for
    the rows that need more; a row without two distinct neighbours among its candidates is left out.
    """
    tol = ROUNDOFF_ULPS * np.finfo(Z.dtype).eps * float(np.sqrt(np.einsum("ij,ij->i", Z, Z, dtype=np.float64).max()))
    rows = np.arange(len(Z))
    r1, r2, state = _twonn_radii(Z, rows, candidates[:, :first], tol)
    redo = np.flatnonzero(state == 0)
    if len(redo) and candidates.shape[1] > first:
        r1[redo], r2[redo], state[redo] = _twonn_radii(Z, redo, candidates[redo], tol)
    keep = state == 1
    return r1[keep], r2[keep]


def _twonn_radii(Z: np.ndarray, rows: np.ndarray, C: np.ndarray, tol: float,
                 block_rows: int = 256) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`twonn_radii` for ``rows`` with candidates ``C``: (r1, r2, state), state 1 = counts, -1 = a duplicate
    of a lower row (left out), 0 = fewer than two distinct neighbours among the candidates."""
    n, m = C.shape
    D = np.empty((n, m))
    for start in range(0, n, block_rows):
        diff = Z[C[start : start + block_rows]] - Z[rows[start : start + block_rows], None, :]
        D[start : start + block_rows] = np.sqrt(np.einsum("bkd,bkd->bk", diff, diff, dtype=np.float64))
    order = np.argsort(D, axis=1, kind="stable")
    D, C = np.take_along_axis(D, order, axis=1), np.take_along_axis(C, order, axis=1)
    near = D <= tol
    at = np.arange(n)
    first = (~near).argmax(axis=1)  # D ascending: the first candidate beyond tol
    r1, a = D[at, first], C[at, first]
    later = ~near & (np.arange(m)[None, :] > first[:, None])
    for i, j in zip(*np.nonzero(later & (D - r1[:, None] <= tol))):  # may be a duplicate of a[i] (triangle inequality)
        gap = Z[C[i, j]].astype(np.float64) - Z[a[i]]
        later[i, j] = np.sqrt(gap @ gap) > tol
    state = np.where(later.any(axis=1), 1, 0)
    state[(near & (C < rows[:, None])).any(axis=1)] = -1  # a duplicate with a lower index stands for this row
    return r1, D[at, later.argmax(axis=1)], state


def weighted_knn_votes(train: np.ndarray, y_idx: np.ndarray, test: np.ndarray, k: int, temperature: float,
                       chunk: int = 1024, device: str | torch.device = "cpu") -> np.ndarray:
    """The class index (into 0..max(y_idx)) each row of ``test`` gets from its k most similar rows of ``train``
    (rows L2-normalised by the caller: dot products are cosine similarities, in float32), each voting for its
    class ``y_idx`` with weight exp(sim / temperature) summed in float64; ties go to the lowest index."""
    dev = torch.device(device)
    train_t = torch.as_tensor(train, dtype=torch.float32, device=dev)
    test_t = torch.as_tensor(test, dtype=torch.float32, device=dev)
    y_t = torch.as_tensor(y_idx, device=dev)
    preds = []
    for start in range(0, test_t.shape[0], chunk):
        sim = test_t[start : start + chunk] @ train_t.T
        top_sim, top_idx = sim.topk(k, dim=1)
        weights = torch.exp(top_sim.double() / temperature)
        votes = torch.zeros(sim.shape[0], int(y_idx.max()) + 1, dtype=torch.float64, device=dev)
        votes.scatter_add_(1, y_t[top_idx], weights)
        preds.append(votes.argmax(dim=1).cpu().numpy())
    return np.concatenate(preds)


def prequential_knn_correct(X: np.ndarray, y_idx: np.ndarray, k: int, temperature: float, chunk: int = 1024,
                            device: str | torch.device = "cpu") -> int:
    """How many of the rows 1..n-1 of ``X`` (L2-normalised, in stream order) :func:`weighted_knn_votes` gives their
    own class ``y_idx``, each voted on by the min(k, rows before) most similar rows before it only."""
    dev = torch.device(device)
    n = X.shape[0]
    X_t = torch.as_tensor(X, dtype=torch.float32, device=dev)
    y_t = torch.as_tensor(y_idx, device=dev)
    correct = 0
    for start in range(1, n, chunk):
        stop = min(start + chunk, n)
        sim = X_t[start:stop] @ X_t[:stop].T  # row t sees columns 0..t-1 only: the rows before it
        later = torch.arange(stop, device=dev)[None, :] >= torch.arange(start, stop, device=dev)[:, None]
        top_sim, top_idx = sim.masked_fill(later, -torch.inf).topk(min(k, stop - 1), dim=1)
        weights = torch.exp(top_sim.double() / temperature)  # exp(-inf) = 0: fewer than k earlier rows
        votes = torch.zeros(stop - start, int(y_idx.max()) + 1, dtype=torch.float64, device=dev)
        votes.scatter_add_(1, y_t[top_idx], weights)
        correct += int((votes.argmax(dim=1) == y_t[start:stop]).sum())
    return correct
