"""Evaluation-seed robustness of Table I (docs/results.md, section 3).

The same 33 milestones scored with `sslmon score --seed S` for several S (other stratified image
subsets, UMAP and k-means seeds). Prints, as Markdown, (a) Pearson r against lp_acc per seed and
(b) how much each metric moves between seeds compared with its range over training.

    .venv/bin/python scripts/seeds.py docs/results docs/results/seed1 docs/results/seed2 > docs/results/seeds.md
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from scipy import stats

from sslmon.io.runfile import load_run

METHODS = {"simclr": "SimCLR", "moco": "MoCo-v2", "simsiam": "SimSiam"}
KEYS = ["ami_c1_gt", "ami_c1_c2", "silhouette_gt", "silhouette_c1", "entropy_z3", "rankme",
        "alpha_req", "l2_std", "knn_acc", "lp_acc"]


def load(folder: Path, method: str) -> dict[int, dict[str, float]]:
    return {r.epoch: r.metrics for r in load_run(folder / f"{method}.json").results}


def r_p(rows: dict[int, dict[str, float]], key: str, with_init: bool) -> tuple[float, float]:
    epochs = sorted(e for e in rows if with_init or e != 0)
    x = np.array([rows[e][key] for e in epochs])
    y = np.array([rows[e]["lp_acc"] for e in epochs])
    r, p = stats.pearsonr(x, y)
    return float(r), float(p)


def fmt(r: float, p: float) -> str:
    return f"**{r:+.2f}**" if p < 0.05 else f"{r:+.2f}"


def main(folders: list[Path]) -> None:
    runs = {m: [load(f, m) for f in folders] for m in METHODS}
    print(f"Pearson r against lp_acc for evaluation seeds {', '.join(str(i) for i in range(len(folders)))} "
          "(bold: p < 0.05; each seed's lp_acc is its own probe).\n")
    print("| metric | method | w/ init, per seed | w/o init, per seed |")
    print("|---|---|---|---|")
    for key in KEYS[:-1]:
        for m, name in METHODS.items():
            w = " / ".join(fmt(*r_p(rows, key, True)) for rows in runs[m])
            wo = " / ".join(fmt(*r_p(rows, key, False)) for rows in runs[m])
            print(f"| {key} | {name} | {w} | {wo} |")
    print("\nSpread between seeds vs change over training (seed 0 is the reference).\n")
    print("| metric | mean abs. difference to seed 0 (all milestones, all other seeds) | max | "
          "range over trained milestones, seed 0 (SimCLR / MoCo-v2 / SimSiam) |")
    print("|---|---|---|---|")
    for key in KEYS:
        diffs, spans = [], []
        for m in METHODS:
            ref = runs[m][0]
            for other in runs[m][1:]:
                diffs += [abs(other[e][key] - ref[e][key]) for e in ref]
            trained = [ref[e][key] for e in ref if e != 0]
            spans.append(max(trained) - min(trained))
        print(f"| {key} | {np.mean(diffs):.4f} | {np.max(diffs):.4f} | " + " / ".join(f"{s:.4f}" for s in spans) + " |")


if __name__ == "__main__":
    main([Path(a) for a in sys.argv[1:]])
