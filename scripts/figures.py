"""Figures for docs/results.md from `sslmon score --format json` results (and --save-z3 folders).

    .venv/bin/python scripts/figures.py docs/results/simclr.json docs/results/moco.json \
        docs/results/simsiam.json --z3 /tmp/sslmon-runs/z3 --out docs/figures

Writes metrics_vs_epoch.png, metrics_vs_lp.png and (with --z3) z3_scatter.png.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sslmon.metrics import METRICS  # noqa: E402
from sslmon.io.runfile import load_run  # noqa: E402
from sslmon.io.z3file import read_z3  # noqa: E402

KEYS = ["lp_acc", "knn_acc", "ami_c1_gt", "ami_c1_c2", "silhouette_gt", "silhouette_c1",
        "entropy_z3", "rankme", "alpha_req", "l2_std"]
NAMES = {"simclr": "SimCLR", "moco": "MoCo-v2", "simsiam": "SimSiam"}
COLORS = {"simclr": "tab:blue", "moco": "tab:orange", "simsiam": "tab:green"}


def load(path: Path) -> tuple[np.ndarray, dict[str, np.ndarray], list[str]]:
    rows = sorted(load_run(path).results, key=lambda r: r.epoch)
    epochs = np.array([r.epoch for r in rows])
    vals = {k: np.array([np.nan if r.metrics.get(k) is None else r.metrics[k] for r in rows], dtype=float) for k in KEYS}
    return epochs, vals, [Path(r.name).stem for r in rows]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("results", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--z3", type=Path, default=None)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    runs = {p.stem: load(p) for p in args.results}

    fig, axes = plt.subplots(2, 5, figsize=(17, 6.5))
    for ax, key in zip(axes.flat, KEYS):
        for name, (ep, vals, _) in runs.items():
            ax.plot(ep, vals[key], "o-", ms=3, color=COLORS.get(name), label=NAMES.get(name, name))
        ax.set_title(METRICS[key].symbol)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes.flat[0].legend()
    fig.suptitle("Metrics per milestone (epoch 0 = untrained), Fashion-MNIST, convnet-small, 2,000 test images")
    fig.tight_layout()
    fig.savefig(args.out / "metrics_vs_epoch.png", dpi=80)
    plt.close(fig)

    fig, axes = plt.subplots(2, 5, figsize=(17, 6.5))
    for ax, key in zip(axes.flat, KEYS[1:]):
        for name, (ep, vals, _) in runs.items():
            c = COLORS.get(name)
            ax.plot(vals["lp_acc"], vals[key], "-", color=c, alpha=0.3)
            ax.scatter(vals["lp_acc"][ep > 0], vals[key][ep > 0], s=14, color=c, label=NAMES.get(name, name))
            ax.scatter(vals["lp_acc"][ep == 0], vals[key][ep == 0], s=50, marker="x", color=c)
        ax.set_title(METRICS[key].symbol)
        ax.set_xlabel("LP accuracy")
        ax.grid(alpha=0.3)
    axes.flat[0].legend(title="x = untrained")
    axes.flat[-1].axis("off")
    fig.suptitle("Metric vs linear-probe accuracy across milestones (lines join consecutive epochs)")
    fig.tight_layout()
    fig.savefig(args.out / "metrics_vs_lp.png", dpi=80)
    plt.close(fig)

    if args.z3 is None:
        return
    names = [n for n in runs if (args.z3 / n).is_dir()]
    if not names:
        return
    fig = plt.figure(figsize=(12, 4 * len(names)))
    for i, name in enumerate(names):
        ep, vals, stems = runs[name]
        for j, idx in enumerate([0, len(ep) - 1]):
            f = args.z3 / name / f"{stems[idx]}.z3.npz"
            if not f.exists():
                continue
            saved = read_z3(f)
            z3, lab = saved.z3, saved.labels
            ax = fig.add_subplot(len(names), 2, 2 * i + j + 1, projection="3d")
            ax.scatter(*z3.T, c=lab, cmap="tab10", s=2, alpha=0.6, linewidths=0)
            ax.set_title(f"{NAMES.get(name, name)} epoch {ep[idx]}: H(Z3)={vals['entropy_z3'][idx]:.2f}, "
                         f"LP={vals['lp_acc'][idx]:.3f}", fontsize=9)
            ax.tick_params(labelsize=6)
    fig.suptitle("Z3 (3-d UMAP, n_neighbors=50) of 2,000 test images, coloured by true class")
    fig.tight_layout()
    fig.savefig(args.out / "z3_scatter.png", dpi=70)
    plt.close(fig)


if __name__ == "__main__":
    main()
