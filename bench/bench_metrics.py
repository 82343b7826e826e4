"""Speed of sslmon's own kernels against the scikit-learn computations they replace.

Prints wall-clock seconds and the ratio sklearn / sslmon (> 1 means sslmon is faster),
and checks the values agree. Usage: python bench/bench_metrics.py [--n 10000] [--d 512] [--device cpu]
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch
from sklearn.datasets import make_blobs
from sklearn.metrics import silhouette_score
from sklearn.neighbors import KNeighborsClassifier

from sslmon import metrics as M


def timed(fn):
    t0 = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--d", type=int, default=512)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    X, y = make_blobs(n_samples=args.n, n_features=args.d, centers=10, cluster_std=8.0, random_state=0)
    X = X.astype(np.float32)
    half = args.n // 2
    print(f"n={args.n} d={args.d} device={args.device} torch threads={torch.get_num_threads()} "
          f"cpu={platform.processor() or platform.machine()}")
    print(f"{'kernel':<12}{'sslmon s':>10}{'sklearn s':>11}{'ratio':>8}  agreement")

    ours, t_ours = timed(lambda: M.silhouette(X, y, device=args.device))
    ref, t_ref = timed(lambda: silhouette_score(X, y))
    print(f"{'silhouette':<12}{t_ours:>10.2f}{t_ref:>11.2f}{t_ref / t_ours:>8.1f}  |diff|={abs(ours - ref):.1e}")

    tau = 0.07
    ours, t_ours = timed(lambda: M.knn_acc(X[:half], y[:half], X[half:], y[half:], device=args.device))
    knn = KNeighborsClassifier(20, metric="cosine", algorithm="brute", weights=lambda d: np.exp((1 - d) / tau))
    ref, t_ref = timed(lambda: knn.fit(X[:half], y[:half]).score(X[half:], y[half:]))
    print(f"{'knn_acc':<12}{t_ours:>10.2f}{t_ref:>11.2f}{t_ref / t_ours:>8.1f}  |diff|={abs(ours - ref):.1e}")


if __name__ == "__main__":
    main()
