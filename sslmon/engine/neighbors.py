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
