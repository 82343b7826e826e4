"""sslmon's label-free metrics against the plain pipeline a user would write, side by side in one run.

Plain pipeline: umap-learn defaults (n_neighbors 50, 3-d, random_state = seed; pynndescent kNN,
500 layout epochs up to 10k points), scikit-learn KMeans with k and 2k on the L2-normalised Z3,
scikit-learn silhouette_score on Z, numpy RankMe, the entropy formula by hand. sslmon: its
default settings with umap-learn's layout epochs (``--umap-epochs none``: 500 up to 10,000 points, 200
above, as the plain pipeline), with one evaluation seed per checkpoint (``--seeds 1``, the ratios) and
with the default seeds (their cost against one seed).

Each pipeline runs in a new process (after a warm-up process, so numba's on-disk caches are as they
are on the second run on a machine) and scores the same embeddings three times with seeds 0, 1, 2,
as three "checkpoints". Printed per data set: new process to first result, seconds per further
checkpoint (and its CPU seconds, user + system, of the scoring process: a busy machine moves them less than
the wall clock; with the default seeds the layout workers' CPU is not in it), peak memory (max RSS), their
ratios against the targets (>= 2x per further checkpoint,
>= 3x new process), the load average (1 min) before and after, and |difference| of every metric from
the plain pipeline's mean over its three seeds next to that pipeline's own spread (std over the seeds);
H(Z3) is within tolerance when the difference is at most max(0.05, 2 x that spread).

Usage: python bench/bench_pipeline.py [--data synthetic,real] [--umap-epochs none|N] [--big]
  --big adds a 50,000 x 2,048 memory check of sslmon alone (several minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
PAPER_METRICS = ["ami_c1_c2", "silhouette_c1", "entropy_z3", "ami_c1_gt", "silhouette_gt", "rankme"]
SEEDS = [0, 1, 2]


# --------------------------------------------------------------------------- workers (run in new processes)


def plain_metrics(Z: np.ndarray, y: np.ndarray, seed: int) -> dict[str, float]:
    """The six paper metrics as a user would compute them with umap-learn and scikit-learn."""
    import umap
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_mutual_info_score as ami, silhouette_score
    from sklearn.preprocessing import normalize

    k = len(np.unique(y))
    Z3 = umap.UMAP(n_components=3, n_neighbors=50, random_state=seed).fit_transform(Z)
    unit = normalize(Z3)
    C1 = KMeans(k, random_state=seed).fit_predict(unit)
    C2 = KMeans(2 * k, random_state=seed).fit_predict(unit)
    bins = np.floor((Z3 - Z3.min(0)) / (0.4 * Z3.std(0))).astype(np.int64)
    p = np.unique(bins, axis=0, return_counts=True)[1] / len(Z3)
    s = np.linalg.svd(Z.astype(np.float64), compute_uv=False)
    q = s / s.sum() + 1e-7
    return {"ami_c1_c2": ami(C1, C2), "silhouette_c1": float(silhouette_score(Z, C1)),
            "entropy_z3": float(-(p * np.log(p)).sum()), "ami_c1_gt": ami(C1, y),
            "silhouette_gt": float(silhouette_score(Z, y)), "rankme": float(np.exp(-(q * np.log(q)).sum()))}


def sslmon_metrics(Z: np.ndarray, y: np.ndarray, seeds: list[int], epochs: int | None) -> dict[str, float]:
    from sslmon.evaluation import EvalConfig, evaluate_embeddings

    ev = evaluate_embeddings(Z, y, config=EvalConfig(seeds=tuple(seeds), umap_epochs=epochs), metrics=PAPER_METRICS)
    if ev.errors:
        raise SystemExit(f"sslmon: undefined metrics {ev.errors}")
    return ev.metrics


def worker(kind: str, path: Path, seed_groups: list[list[int]], epochs: int | None) -> None:
    """Score the file once per seed group, printing a JSON line with the wall clock after each."""
    import resource

    data = np.load(path)
    Z, y = data["embeddings"], data["labels"]
    for seeds in seed_groups:
        values = plain_metrics(Z, y, seeds[0]) if kind == "plain" else sslmon_metrics(Z, y, seeds, epochs)
        print(json.dumps({"t": time.time(), "cpu": time.process_time(), "seeds": seeds, "metrics": values}), flush=True)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"max_rss": rss}), flush=True)


# --------------------------------------------------------------------------- driver


def spawn(kind: str, path: Path, seed_groups: list[list[int]], epochs: int | None = None) -> dict:
    """Run a worker in a new process; seconds to its first result, per further result, peak RSS, metrics."""
    t0 = time.time()
    out = subprocess.run([sys.executable, __file__, "--worker", kind, "--file", str(path), "--groups", json.dumps(seed_groups),
                          "--umap-epochs", str(epochs).lower()],
                         check=True, capture_output=True, text=True)
    lines = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    times = [t0] + [line["t"] for line in lines if "t" in line]
    steps = np.diff(times)
    cpu = np.diff([line["cpu"] for line in lines if "cpu" in line])
    return {"first": float(steps[0]), "further": float(steps[1:].mean()) if len(steps) > 1 else None,
            "further_cpu": float(cpu.mean()) if len(cpu) else None,
            "rss": lines[-1]["max_rss"], "metrics": [line["metrics"] for line in lines if "metrics" in line]}


def data_sets(names: list[str], tmp: Path) -> dict[str, tuple[Path, Path]]:
    """name -> (file to score, small warm-up file)."""
    from sklearn.datasets import make_blobs

    sets = {}
    if "synthetic" in names:
        X, y = make_blobs(n_samples=10000, n_features=512, centers=10, cluster_std=8.0, random_state=0)
        np.savez(tmp / "synthetic.npz", embeddings=X.astype(np.float32), labels=y)
        sets["synthetic 10,000 x 512 (10 blobs)"] = tmp / "synthetic.npz"
    if "real" in names:
        sys.path.insert(0, str(ROOT / "bench"))
        from real_embeddings import make

        last = make(ROOT / "out" / "embeddings")[-1]
        d = np.load(last)["embeddings"].shape[1]
        sets[f"real 10,000 x {d} (sample checkpoint {last.stem}, Fashion-MNIST test)"] = last
    warm = tmp / "warm.npz"
    X, y = make_blobs(n_samples=300, n_features=16, centers=3, random_state=0)
    np.savez(warm, embeddings=X.astype(np.float32), labels=y)
    return {name: (path, warm) for name, path in sets.items()}


def report(name: str, plain: dict, ours: dict, ours_default: dict, default_seeds: list[int], load: tuple[float, float]) -> None:
    gb = 1024**3
    first, further = plain["first"] / ours["first"], plain["further"] / ours["further"]
    print(f"\n### {name}\n")
    print(f"Load average (1 min) before / after: {load[0]:.2f} / {load[1]:.2f}\n")
    print("| one run, side by side | plain pipeline | sslmon --seeds 1 | ratio (plain / sslmon) | target |")
    print("|---|---|---|---|---|")
    print(f"| new process to first result | {plain['first']:.1f} s | {ours['first']:.1f} s | {first:.2f} | "
          f">= 3: {'reached' if first >= 3 else 'NOT reached'} |")
    print(f"| each further checkpoint | {plain['further']:.1f} s | {ours['further']:.1f} s | {further:.2f} | "
          f">= 2: {'reached' if further >= 2 else 'NOT reached'} |")
    print(f"| each further checkpoint, CPU seconds of the scoring process (less moved by other jobs) | "
          f"{plain['further_cpu']:.1f} s | {ours['further_cpu']:.1f} s | {plain['further_cpu'] / ours['further_cpu']:.2f} | |")
    print(f"| peak memory (max RSS) | {plain['rss'] / gb:.2f} GB | {ours['rss'] / gb:.2f} GB | {plain['rss'] / ours['rss']:.1f} | |")
    n = len(default_seeds)
    print(f"| sslmon default, {n} seeds: new process to first result | | {ours_default['first']:.1f} s | "
          f"{plain['first'] / ours_default['first']:.2f} | |")
    print(f"| sslmon default, {n} seeds: each further checkpoint | | {ours_default['further']:.1f} s | "
          f"{plain['further'] / ours_default['further']:.2f} | |")
    print(f"| {n} seeds against 1 seed, each further checkpoint | | | {ours_default['further'] / ours['further']:.2f}x the time | |")
    print("\n| metric | plain mean ± std (3 seeds) | sslmon mean (3 single-seed runs) | sslmon default | abs diff | tolerance | within |")
    print("|---|---|---|---|---|---|---|")
    for m in PAPER_METRICS:
        ref = np.array([r[m] for r in plain["metrics"]])
        got = np.array([r[m] for r in ours["metrics"]])
        default = np.mean([r[m] for r in ours_default["metrics"]])
        diff = abs(got.mean() - ref.mean())
        tol = {"silhouette_gt": 1e-3, "rankme": 1e-3 * abs(ref.mean()),
               "entropy_z3": max(0.05, 2 * ref.std(ddof=1))}.get(m, max(0.03, 2 * ref.std(ddof=1)))
        print(f"| {m} | {ref.mean():.4f} ± {ref.std(ddof=1):.4f} | {got.mean():.4f} ± {got.std(ddof=1):.4f} | {default:.4f} | "
              f"{diff:.4f} | {tol:.4f} | {'yes' if diff <= tol else 'NO'} |")


def big_memory_check(tmp: Path, epochs: int | None) -> None:
    rng = np.random.default_rng(0)
    centers = rng.normal(scale=4.0, size=(10, 2048)).astype(np.float32)
    y = rng.integers(0, 10, 50000)
    X = centers[y] + rng.normal(size=(50000, 2048)).astype(np.float32)
    np.savez(tmp / "big.npz", embeddings=X, labels=y)
    del X
    r = spawn("sslmon", tmp / "big.npz", [[0]], epochs)
    print(f"\n### 50,000 x 2,048, sslmon --seeds 1: {r['first']:.0f} s, peak memory (max RSS) {r['rss'] / 1024**3:.2f} GB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="synthetic,real")
    parser.add_argument("--big", action="store_true")
    parser.add_argument("--umap-epochs", default="none", help="sslmon's layout epochs: none = umap-learn's rule (default)")
    parser.add_argument("--worker", choices=["plain", "sslmon"])
    parser.add_argument("--file", type=Path)
    parser.add_argument("--groups")
    args = parser.parse_args()
    epochs = None if args.umap_epochs == "none" else int(args.umap_epochs)
    if args.worker:
        worker(args.worker, args.file, json.loads(args.groups), epochs)
        return
    import torch

    from sslmon.engine import pool
    from sslmon.evaluation import DEFAULT_SEEDS, DEFAULT_UMAP_EPOCHS

    print(f"## bench_pipeline: {time.strftime('%Y-%m-%d %H:%M %Z')}, {platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads); sslmon umap_epochs={epochs} "
          f"(None = umap-learn's rule; sslmon's default: {DEFAULT_UMAP_EPOCHS}), default seeds {list(DEFAULT_SEEDS)}, "
          f"layout workers with them: {pool.worker_count(len(DEFAULT_SEEDS))}")
    with tempfile.TemporaryDirectory() as tmp:
        for name, (path, warm) in data_sets(args.data.split(","), Path(tmp)).items():
            spawn("plain", warm, [[0]])  # warm-up: numba caches as on a second run
            spawn("sslmon", warm, [[0]])
            before = os.getloadavg()[0]
            plain = spawn("plain", path, [[s] for s in SEEDS])
            ours = spawn("sslmon", path, [[s] for s in SEEDS], epochs)
            ours_default = spawn("sslmon", path, [list(DEFAULT_SEEDS)] * 2, epochs)
            report(name, plain, ours, ours_default, list(DEFAULT_SEEDS), (before, os.getloadavg()[0]))
        if args.big:
            big_memory_check(Path(tmp), epochs)


if __name__ == "__main__":
    main()
