"""Evidence for the default UMAP layout epochs and evaluation-seed count (docs/speed.md).

For each embedding file: the exact kNN graph and UMAP's fuzzy graph once, then for every
(epochs, seed) a layout, spherical k-means with k and 2k, and the four seed-dependent metrics
(ami_c1_c2, silhouette_c1, entropy_z3, ami_c1_gt), plus the layout's seconds. One JSON line per
(file, epochs, seed) is appended to ``--out`` as it finishes (a re-run skips lines already there).
``--summarise`` prints the tables of docs/speed.md from that file.
Usage: python bench/study_epochs_seeds.py FILE.npz ... [--epochs 50,100,200,500] [--seeds 5] [--out F]
       python bench/study_epochs_seeds.py --summarise [--out F]
"""

from __future__ import annotations

import argparse
from itertools import combinations
import json
from pathlib import Path
import time

import numpy as np
from scipy.stats import kendalltau

from sslmon import metrics as M
from sslmon.engine.layout import fuzzy_graph, umap_layout
from sslmon.engine.neighbors import knn_graph
from sslmon.evaluation import SEEDED

ROOT = Path(__file__).resolve().parent.parent


def run(files: list[Path], epochs: list[int], seeds: list[int], out: Path) -> None:
    done = set()
    if out.exists():
        done = {(r["file"], r["epochs"], r["seed"]) for r in map(json.loads, out.read_text().splitlines())}
    out.parent.mkdir(parents=True, exist_ok=True)
    for path in files:
        todo = [(e, s) for e in epochs for s in seeds if (path.name, e, s) not in done]
        if not todo:
            continue
        data = np.load(path)
        Z, y = data["embeddings"], data["labels"]
        k = len(np.unique(y))
        knn = knn_graph(Z, 50, keep_distances=True)
        fuzzy = fuzzy_graph(knn)
        for e, s in todo:
            t0 = time.perf_counter()
            Z3 = umap_layout(Z, fuzzy, s, e)
            t_layout = time.perf_counter() - t0
            C1, C2 = M.spherical_kmeans(Z3, k, s), M.spherical_kmeans(Z3, 2 * k, s)
            record = {"file": path.name, "epochs": e, "seed": s, "layout_s": round(t_layout, 3),
                      "ami_c1_c2": M.ami_c1_c2(C1, C2), "entropy_z3": M.entropy_z3(Z3),
                      "ami_c1_gt": M.ami_c1_gt(C1, y),
                      "silhouette_c1": M.silhouette(Z, C1, distances=knn.distances_full)}
            with out.open("a") as f:
                f.write(json.dumps(record) + "\n")
            print(json.dumps(record), flush=True)


def summarise(out: Path) -> None:
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    files = sorted({r["file"] for r in rows})
    epochs = sorted({r["epochs"] for r in rows})
    ref_e = max(epochs)

    def values(f: str, e: int, m: str, seeds: list[int] | None = None) -> np.ndarray:
        return np.array([r[m] for r in rows if r["file"] == f and r["epochs"] == e and (seeds is None or r["seed"] in seeds)])

    print(f"## Layout epochs against {ref_e}: per metric, the largest |mean(E) - mean({ref_e})| over the "
          f"{len(files)} files (in seed standard deviations at {ref_e} epochs), and Kendall tau between the "
          f"files' order at E and at {ref_e} epochs (means over seeds)\n")
    print("| epochs | layout s (mean) | " + " | ".join(SEEDED) + " |")
    print("|---|---|" + "---|" * len(SEEDED))
    for e in epochs:
        t = np.mean([r["layout_s"] for r in rows if r["epochs"] == e])
        cells = []
        for m in SEEDED:
            diffs = [abs(values(f, e, m).mean() - values(f, ref_e, m).mean()) for f in files]
            sds = [diffs[i] / max(values(f, ref_e, m).std(ddof=1), 1e-12) for i, f in enumerate(files)]
            tau = kendalltau([values(f, e, m).mean() for f in files], [values(f, ref_e, m).mean() for f in files]).statistic
            cells.append(f"{max(diffs):.3f} ({max(sds):.1f} sd), tau {tau:+.2f}")
        print(f"| {e} | {t:.1f} | " + " | ".join(cells) + " |")

    for e in epochs:
        seeds = sorted({r["seed"] for r in rows if r["epochs"] == e})
        if len(seeds) < 4:
            continue
        print(f"\n## Seed count at {e} epochs: ranking of the {len(files)} files by the mean of S seeds, "
              f"Kendall tau between disjoint seed subsets (mean over pairs of subsets; min over metrics)\n")
        print("| S | " + " | ".join(SEEDED) + " | min |")
        print("|---|" + "---|" * len(SEEDED) + "---|")
        for S in range(1, len(seeds) // 2 + 1):
            subsets = [seeds[i:i + S] for i in range(0, len(seeds) - S + 1, S)]
            cells = []
            for m in SEEDED:
                taus = [kendalltau([values(f, e, m, a).mean() for f in files], [values(f, e, m, b).mean() for f in files]).statistic
                        for a, b in combinations(subsets, 2)]
                cells.append(float(np.mean(taus)))
            print(f"| {S} | " + " | ".join(f"{c:+.2f}" for c in cells) + f" | {min(cells):+.2f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("files", nargs="*", type=Path)
    parser.add_argument("--epochs", default="50,100,200,500")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "speed" / "epochs_seeds.jsonl")
    parser.add_argument("--summarise", action="store_true")
    args = parser.parse_args()
    if args.summarise:
        summarise(args.out)
    else:
        run(args.files, [int(e) for e in args.epochs.split(",")],
            list(range(args.first_seed, args.first_seed + args.seeds)), args.out)
