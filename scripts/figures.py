"""Figures for docs/results.md from `sslmon score --format json` results (and --save-z3 folders), drawn by sslmon.meta.plots.

    .venv/bin/python scripts/figures.py docs/results/{simclr,moco,simsiam}.json \
        --name SimCLR --name MoCo-v2 --name SimSiam --out docs/figures [--z3 /tmp/sslmon-runs/z3 --epochs 0,1,5,10]

Writes metrics_vs_epoch.png and metrics_vs_lp.png (a panel per metric), <key>_vs_lp_acc.png for the
three label-free metrics of the paper, and with --z3 (a folder per results file, named by its stem, as
examples/reproduce_table1.sh writes them) z3_panel_<stem>.png.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sslmon.io.runfile import load_run
from sslmon.meta.correlate import NamedRun, run_names
from sslmon.meta.plots import (load_z3_dir, plot_grid_vs_epoch, plot_grid_vs_reference, plot_metric_vs_reference, plot_z3_panel,
                               select_snapshots)

KEYS = ["lp_acc", "knn_acc", "ami_c1_gt", "ami_c1_c2", "silhouette_gt", "silhouette_c1",
        "entropy_z3", "rankme", "alpha_req", "l2_std"]
PAPER_KEYS = ["entropy_z3", "ami_c1_c2", "silhouette_c1"]  # the label-free metrics of Xu, Lowe & Trappenberg (2024)
SETTING = "Fashion-MNIST, convnet-small, 2,000 test images"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("results", nargs="+", type=Path)
    ap.add_argument("--name", action="append", help="legend name per results file (default: the file stems)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--z3", type=Path, default=None, help="folder of <stem>/ folders of NAME.z3.npz files")
    ap.add_argument("--epochs", default=None, help="comma-separated epochs of the Z3 panels (default: first, middle, last)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    runs = [NamedRun(name, str(p), load_run(p)) for p, name in zip(args.results, run_names(args.results, args.name))]

    written = [
        plot_grid_vs_epoch(runs, KEYS, args.out / "metrics_vs_epoch.png",
                           title=f"Metrics per milestone (epoch 0 = untrained), {SETTING}"),
        plot_grid_vs_reference(runs, KEYS[1:], "lp_acc", args.out / "metrics_vs_lp.png",
                               title=f"Metrics against linear-probe accuracy across milestones, {SETTING}"),
    ]
    written += [plot_metric_vs_reference(runs, key, "lp_acc", args.out) for key in PAPER_KEYS]
    if args.z3 is not None:
        epochs = [int(e) for e in args.epochs.split(",")] if args.epochs else None
        for path in args.results:
            snapshots = select_snapshots(load_z3_dir(args.z3 / path.stem), epochs)
            written.append(plot_z3_panel(snapshots, args.out, file_name=f"z3_panel_{path.stem}.png"))
    print("\n".join(map(str, written)))


if __name__ == "__main__":
    main()
