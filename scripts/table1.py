"""Table I of Xu, Lowe & Trappenberg (2024) from `sslmon score --format json` results.

Independent of `sslmon correlate`: Pearson r and two-sided p (scipy.stats.pearsonr) between
each metric and lp_acc over the milestones of one run, with and without the untrained
(epoch 0) milestone, printed as a Markdown table next to the paper's CIFAR-10 values.

    .venv/bin/python scripts/table1.py docs/results/simclr.json docs/results/moco.json \
        docs/results/simsiam.json --json docs/results/table1_scipy.json > docs/results/table1.md
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from scipy import stats

from sslmon.metrics import METRICS
from sslmon.io.runfile import load_run

ALPHA = 0.05
KEYS = ["ami_c1_gt", "ami_c1_c2", "silhouette_gt", "silhouette_c1", "entropy_z3", "rankme", "alpha_req", "l2_std", "knn_acc"]
# Paper Table I, CIFAR-10 columns, (w/ init, w/o init). The paper marks significance by colour,
# which the text version loses, so no p-values are given for these.
PAPER_C10 = {
    "simsiam": {"ami_c1_gt": (0.97, 0.96), "ami_c1_c2": (0.00, -0.21), "silhouette_gt": (0.93, 0.97),
                "silhouette_c1": (0.05, -0.59), "entropy_z3": (0.82, 0.92)},
    "simclr": {"ami_c1_gt": (0.93, 0.97), "ami_c1_c2": (0.71, 0.91), "silhouette_gt": (0.89, 0.62),
               "silhouette_c1": (0.59, -0.07), "entropy_z3": (-0.57, -0.83)},
    "moco": {"ami_c1_gt": (0.92, 0.95), "ami_c1_c2": (0.64, 0.80), "silhouette_gt": (0.37, -0.29),
             "silhouette_c1": (-0.09, -0.78), "entropy_z3": (-0.26, -0.62)},
}
NAMES = {"simclr": "SimCLR", "moco": "MoCo-v2", "simsiam": "SimSiam"}


def load(path: str) -> list[tuple[int, dict[str, float]]]:
    return sorted(((r.epoch, r.metrics) for r in load_run(path).results), key=lambda t: t[0])


def pearson(rows, key, against="lp_acc", with_init=True):
    pts = [(m.get(key), m.get(against)) for e, m in rows if with_init or e != 0]
    pts = [(x, y) for x, y in pts if x is not None and y is not None and np.isfinite(x) and np.isfinite(y)]
    if len(pts) < 3:
        return None
    x, y = np.array(pts).T
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    r, p = stats.pearsonr(x, y)
    return float(r), float(p), len(pts)


def cell(c) -> str:
    if c is None:
        return "n/a"
    r, p, _ = c
    s = f"{r:+.2f} (p={p:.2g})"
    return f"**{s}**" if p < ALPHA else s


def main(paths: list[str], json_path: str | None = None) -> None:
    out = {}
    print("| metric | label-free | method | ours w/ init | ours w/o init | paper C10 w/ init | paper C10 w/o |")
    print("|---|---|---|---|---|---|---|")
    runs = {Path(p).stem: load(p) for p in paths}
    for key in KEYS:
        label, free = METRICS[key].symbol, not METRICS[key].needs_labels  # row label and label-free? from the registry
        for name, rows in runs.items():
            w, wo = pearson(rows, key, with_init=True), pearson(rows, key, with_init=False)
            out.setdefault(name, {})[key] = {"with_init": w, "without_init": wo}
            paper = PAPER_C10.get(name, {}).get(key)
            pw, pwo = (f"{paper[0]:+.2f}", f"{paper[1]:+.2f}") if paper else ("-", "-")
            print(f"| {label} | {'yes' if free else 'no'} | {NAMES.get(name, name)} | {cell(w)} | {cell(wo)} | {pw} | {pwo} |")
    n = {name: (len(rows), len([1 for e, _ in rows if e != 0])) for name, rows in runs.items()}
    print()
    print("Milestones per run (with init, without): " + ", ".join(f"{NAMES.get(k, k)} {v}" for k, v in n.items()))
    if json_path:
        doc = {name: {k: {s: (None if c is None else {"r": c[0], "p": c[1], "n": c[2]}) for s, c in v.items()}
                      for k, v in d.items()} for name, d in out.items()}
        Path(json_path).write_text(json.dumps({"against": "lp_acc", "test": "scipy.stats.pearsonr, two-sided",
                                               "runs": doc}, indent=1) + "\n")


if __name__ == "__main__":
    args = sys.argv[1:]
    json_path = None
    if "--json" in args:
        i = args.index("--json")
        json_path = args[i + 1]
        del args[i : i + 2]
    main(args, json_path)
