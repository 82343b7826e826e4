"""The evaluation seeds' UMAP layouts: serial, side by side in worker processes, and umap-learn's parallel SGD.

On one fuzzy graph (synthetic 10,000 x 512, 10 blobs, as bench_pipeline.py; or ``--file`` an .npz of
``embeddings``) at umap-learn's own epoch rule (``--umap-epochs none``, the faithful setting):
- the three default seeds laid out one after another in this process (``layout_workers=0``);
- the same with the worker pool (sslmon.engine.pool), its first call (workers start) and a later one
  (workers reused, as for every further checkpoint), checked bit-identical to the serial layouts;
- a worker's start cost: from starting it to its first answer (a 200-point layout);
- umap-learn's ``parallel=True`` layout (numba threads, Hogwild SGD) of seed 0, twice: its time against the
  serial layout, and how far two runs with the same seed differ (it is not reproducible; reported, not used).
Prints a markdown table with the load average (1 min) before and after.

Usage: python bench/bench_layout_pool.py [--file EMB.npz] [--umap-epochs none|N] [--skip-parallel]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
import time
import warnings

import numpy as np


def entropy(Z3: np.ndarray) -> float:
    """H(Z3) in nats, bins 0.4 std wide (the paper's, as sslmon.metrics.entropy_z3)."""
    from sslmon.metrics import entropy_z3

    return entropy_z3(Z3)


def umap_parallel_layout(Z: np.ndarray, fuzzy, seed: int, epochs: int | None) -> np.ndarray:
    """umap-learn's layout with its numba-parallel SGD (not reproducible)."""
    import umap.umap_ as U
    from sklearn.utils import check_random_state

    from sslmon.engine.layout import LEARNING_RATE, NEGATIVE_SAMPLE_RATE, REPULSION

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        Z3, _ = U.simplicial_set_embedding(
            Z, fuzzy.graph.copy(), 3, LEARNING_RATE, fuzzy.a, fuzzy.b, REPULSION, NEGATIVE_SAMPLE_RATE,
            epochs, "spectral", check_random_state(seed), "euclidean", {}, False, {}, False, parallel=True,
        )
    return np.asarray(Z3, dtype=np.float64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--file", type=Path)
    parser.add_argument("--umap-epochs", default="none")
    parser.add_argument("--skip-parallel", action="store_true")
    args = parser.parse_args()
    epochs = None if args.umap_epochs == "none" else int(args.umap_epochs)

    from sklearn.datasets import make_blobs

    from sslmon.engine import pool
    from sslmon.engine.jit import cache_dir
    from sslmon.engine.layout import fuzzy_graph
    from sslmon.engine.neighbors import knn_graph

    if args.file:
        Z = np.load(args.file)["embeddings"]
        name = f"{args.file.name} {Z.shape[0]:,} x {Z.shape[1]:,}"
    else:
        X, _ = make_blobs(n_samples=10000, n_features=512, centers=10, cluster_std=8.0, random_state=0)
        Z, name = X.astype(np.float32), "synthetic 10,000 x 512 (10 blobs)"
    folder = cache_dir()
    load0 = os.getloadavg()[0]
    fuzzy = fuzzy_graph(knn_graph(Z, 50))
    seeds = (0, 1, 2)
    rows = []

    def timed(label: str, fn):
        t0 = time.perf_counter()
        value = fn()
        rows.append((label, time.perf_counter() - t0))
        return value

    serial = timed("3 seeds, serial (layout_workers=0)", lambda: pool.layouts(Z, fuzzy, seeds, epochs, 0, folder))
    one = rows[-1][1] / len(seeds)
    pool.shutdown()
    small = fuzzy_graph(knn_graph(Z[:200], 50))
    timed("worker start to its first answer (200-point layout)",
          lambda: pool.layouts(Z[:200], small, (0, 1), 5, 1, folder))
    pool.shutdown()
    cold = timed("3 seeds, 1 worker, first call (worker starts)", lambda: pool.layouts(Z, fuzzy, seeds, epochs, 1, folder))
    warm = timed("3 seeds, 1 worker, later call (worker reused)", lambda: pool.layouts(Z, fuzzy, seeds, epochs, 1, folder))
    same = all(np.array_equal(serial[s].get(), cold[s].get()) and np.array_equal(serial[s].get(), warm[s].get())
               for s in seeds)
    notes = [f"pool layouts bit-identical to the serial ones: {same}"]
    if not args.skip_parallel:
        import numba

        umap_parallel_layout(Z[:500], fuzzy_graph(knn_graph(Z[:500], 50)), 0, 5)  # compile (not cached)
        a = timed(f"1 seed, umap-learn parallel=True ({numba.get_num_threads()} numba threads)",
                  lambda: umap_parallel_layout(Z, fuzzy, 0, epochs))
        b = umap_parallel_layout(Z, fuzzy, 0, epochs)
        notes.append(f"parallel=True, two runs of seed 0: max |difference| {np.abs(a - b).max():.3g}, H(Z3) {entropy(a):.4f} "
                     f"and {entropy(b):.4f}; serial seed 0: H(Z3) {entropy(serial[0].get()):.4f} "
                     f"(seeds 0-2: {np.mean([entropy(serial[s].get()) for s in seeds]):.4f} ± "
                     f"{np.std([entropy(serial[s].get()) for s in seeds], ddof=1):.4f})")
    print(f"## bench_layout_pool: {time.strftime('%Y-%m-%d %H:%M %Z')}, {os.cpu_count()} CPUs, {name}, "
          f"umap_epochs={epochs} (None = umap-learn's rule)\n")
    print(f"Load average (1 min) before / after: {load0:.2f} / {os.getloadavg()[0]:.2f}\n")
    print("| what | wall s | against 3 seeds serial | against 1 serial seed |")
    print("|---|---|---|---|")
    base = rows[0][1]
    for label, seconds in rows:
        print(f"| {label} | {seconds:.1f} | {seconds / base:.2f} | {seconds / one:.2f} |")
    print()
    for note in notes:
        print(f"- {note}")


if __name__ == "__main__":
    main()
