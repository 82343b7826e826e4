"""Issue 17's study runs (docs/evidence/protocol.md): train, score and probe each run of the grid, one at a time.

For each run not yet done: ``sslmon train`` into RUNS/<dataset>/<name>/, ``sslmon score`` of every milestone at the
default (paper-faithful) settings into docs/evidence/runs/<dataset>/<name>.json, then the label-based references
of the protocol into <name>.probes.json: the linear probe (sslmon's ``lp_acc``) fitted on the whole train
split and scored on test halves A and B (stratified, seed 0), and the same probe fitted on 10 train images per
class. A run whose results and probes exist is skipped, so the script resumes where it stopped.

Usage: python scripts/evidence_study.py [--dataset d1|d2] [--only NAME,...] [--list]
  d1: scikit-learn digits at 16x16 (36 runs; squeezenet1_1 dropped: protocol amendment of 2026-12-07); d2: the embedded Fashion-MNIST (9 runs), as the protocol says.
Environment: SSLMON (default .venv/bin/sslmon), RUNS (default /tmp/sslmon-evidence; checkpoints stay out of git).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import subprocess
import sys
import time

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "evidence" / "runs"
SSLMON = os.environ.get("SSLMON", str(ROOT / ".venv" / "bin" / "sslmon"))
RUNS = Path(os.environ.get("RUNS", "/tmp/sslmon-evidence"))
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
LABELS_PER_CLASS = 10

# The grid of the protocol, in its order (the index decides the threshold-selection half of Q2): name -> (method,
# extra `sslmon train` arguments). Every run: convnet-small, batch 64, 30 epochs, a milestone every 3, --half.
D1: dict[str, tuple[str, list[str]]] = {
    "simclr_s0": ("simclr", []), "simclr_s1": ("simclr", ["--seed", "1"]), "simclr_s2": ("simclr", ["--seed", "2"]),
    "simclr_lr0.05": ("simclr", ["--lr", "0.05"]), "simclr_lr5": ("simclr", ["--lr", "5.0"]),
    "simclr_t0.1": ("simclr", ["--temperature", "0.1"]), "simclr_t1": ("simclr", ["--temperature", "1.0"]),
    "simclr_wd5e-3": ("simclr", ["--weight-decay", "5e-3"]), "simclr_weakaug": ("simclr", ["--crop-min", "0.6", "--jitter", "0"]),
    "simclr_head256": ("simclr", ["--head-width", "256"]), "simclr_b32": ("simclr", ["--batch-size", "32"]),
    "simclr_b128": ("simclr", ["--batch-size", "128"]), "simclr_e90": ("simclr", ["--epochs", "90", "--every", "9"]),
    "moco_s0": ("moco", []), "moco_s1": ("moco", ["--seed", "1"]), "moco_s2": ("moco", ["--seed", "2"]),
    "moco_lr0.006": ("moco", ["--lr", "0.006"]), "moco_lr0.6": ("moco", ["--lr", "0.6"]),
    "moco_t0.2": ("moco", ["--temperature", "0.2"]), "moco_wd5e-3": ("moco", ["--weight-decay", "5e-3"]),
    "moco_weakaug": ("moco", ["--crop-min", "0.6", "--jitter", "0"]), "moco_head256": ("moco", ["--head-width", "256"]),
    "moco_e90": ("moco", ["--epochs", "90", "--every", "9"]),
    "simsiam_s0": ("simsiam", []), "simsiam_s1": ("simsiam", ["--seed", "1"]), "simsiam_s2": ("simsiam", ["--seed", "2"]),
    "simsiam_lr0.006": ("simsiam", ["--lr", "0.006"]), "simsiam_lr0.6": ("simsiam", ["--lr", "0.6"]),
    "simsiam_wd5e-3": ("simsiam", ["--weight-decay", "5e-3"]), "simsiam_weakaug": ("simsiam", ["--crop-min", "0.6", "--jitter", "0"]),
    "simsiam_head256": ("simsiam", ["--head-width", "256"]), "simsiam_nosg": ("simsiam-no-sg", []),
    "simsiam_nopred": ("simsiam-no-pred", []),
    "arch_resnet18-cifar": ("simclr", ["--arch", "resnet18-cifar"]), "arch_mobilenet_v3_small": ("simclr", ["--arch", "mobilenet_v3_small"]),
    "arch_shufflenet_v2_x0_5": ("simclr", ["--arch", "shufflenet_v2_x0_5"]),
}
# D2 (Fashion-MNIST, embedded): the protocol's subset; 3,000 train images, 20 epochs with a milestone every 2
# (the long run 60 epochs, every 6); 2,000 test images scored.
D2: dict[str, tuple[str, list[str]]] = {
    "simclr_s0": ("simclr", []), "simclr_s1": ("simclr", ["--seed", "1"]), "moco_s0": ("moco", []),
    "moco_s1": ("moco", ["--seed", "1"]), "simsiam_s0": ("simsiam", []), "simsiam_s1": ("simsiam", ["--seed", "1"]),
    "simsiam_nosg": ("simsiam-no-sg", []), "simclr_lr5": ("simclr", ["--lr", "5.0"]),
    "moco_e60": ("moco", ["--epochs", "60", "--every", "6"]),
}
# Per data set: the grid, the data spec (None: made by make_digits.py; "": sslmon's embedded Fashion-MNIST), `train`
# settings, `score` image limits.
DATASETS = {
    "d1": (D1, None, {"--epochs": "30", "--every": "3", "--batch-size": "64", "--arch": "convnet-small"}, []),
    "d2": (D2, "", {"--epochs": "20", "--every": "2", "--batch-size": "64", "--arch": "convnet-small",
                                 "--train-limit": "3000"}, ["--limit", "2000", "--train-limit", "3000"]),
}
# The order runs are trained in: the ones most questions need first (defaults, deliberate failures), then sweeps.
PRIORITY = ["simclr_s0", "moco_s0", "simsiam_s0", "simsiam_nosg", "simclr_lr5", "simsiam_nopred", "simclr_s1", "moco_s1",
            "simsiam_s1", "moco_lr0.6", "simsiam_lr0.6"]


def run_order(grid: dict[str, tuple[str, list[str]]]) -> list[str]:
    return [n for n in PRIORITY if n in grid] + [n for n in grid if n not in PRIORITY]


def sh(args: list[str], log: Path) -> None:
    """Run a command niced and on one thread, appending its output to ``log``; exit on failure."""
    with log.open("a") as f:
        f.write(f"$ {' '.join(args)}\n")
        f.flush()
        rc = subprocess.call(["nice", "-n", "10", *args], stdout=f, stderr=subprocess.STDOUT, env={**os.environ, **ONE_THREAD})
    if rc != 0:
        sys.exit(f"failed ({rc}): {' '.join(args)}; see {log}")


def probes(folder: Path, spec: str, limits: list[str]) -> dict:
    """Probe accuracies of every milestone in ``folder`` on test halves A and B: full train split and 10 per class."""
    import numpy as np

    from sslmon.api import embed
    from sslmon.io.datasets import load_dataset
    from sslmon.metrics import lp_acc as linear_probe
    from sslmon.models.encoders import find_checkpoints, load_checkpoint

    opts = dict(zip(limits[::2], limits[1::2]))
    data = load_dataset(spec or None, limit=int(opts.get("--limit", 0)) or None, train_limit=int(opts.get("--train-limit", 0)) or None)
    y, y_train = data.labels, data.train_labels
    rng = np.random.default_rng(0)
    half_a = np.zeros(len(y), dtype=bool)
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        half_a[idx[: len(idx) // 2]] = True
    few = np.concatenate([rng.permutation(np.flatnonzero(y_train == c))[:LABELS_PER_CLASS] for c in np.unique(y_train)])
    out = {"halves": {"seed": 0, "a": int(half_a.sum()), "b": int((~half_a).sum())}, "labels_per_class": LABELS_PER_CLASS,
           "milestones": []}
    for path in find_checkpoints(folder):
        enc = load_checkpoint(path)
        run = dict(mean=enc.mean or data.mean, std=enc.std or data.std, device="cpu")
        Z, Zt = embed(enc.model, data.images, **run), embed(enc.model, data.train_images, **run)
        row = {"name": path.name, "epoch": enc.epoch, **enc.training}
        for half, mask in (("a", half_a), ("b", ~half_a)):
            row[f"lp_acc_{half}"] = linear_probe(Zt, y_train, Z[mask], y[mask])
            row[f"lp10_acc_{half}"] = linear_probe(Zt[few], y_train[few], Z[mask], y[mask])
        out["milestones"].append(row)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="d1", choices=sorted(DATASETS))
    parser.add_argument("--only", help="comma-separated run names")
    parser.add_argument("--list", action="store_true")
    parser.add_argument("--rescore", action="store_true", help="score the finished runs again (after a metric changed); probes are kept")
    args = parser.parse_args()
    grid, spec, settings_default, limits = DATASETS[args.dataset]
    names = args.only.split(",") if args.only else run_order(grid)
    if args.list:
        print("\n".join(f"{i:2d} {n}: {grid[n][0]} {' '.join(grid[n][1])}" for i, n in enumerate(grid)))
        return
    runs, out = RUNS / args.dataset, OUT / args.dataset
    runs.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    if spec is None:
        data = runs / "digits16.npz"
        spec = f"npz:{data}"
        if not data.exists():
            subprocess.check_call([sys.executable, str(ROOT / "scripts" / "make_digits.py"), str(data), "--size", "16", "--test", "600", "--seed", "0"])
    data_args = ["--dataset", spec] if spec else []

    def score_args(folder: Path) -> list[str]:
        return [SSLMON, "score", str(folder), *data_args, *limits, "--no-cache", "-f", "json", "-o", str(out / f"{folder.name}.json"), "-q"]

    for name in names:
        method, extra = grid[name]
        result, probe_file, log = out / f"{name}.json", out / f"{name}.probes.json", runs / f"{name}.log"
        if args.rescore:
            if (runs / name / "done").exists():
                sh(score_args(runs / name), log)
                print(f"{name}: rescored", flush=True)
            continue
        if result.exists() and probe_file.exists():
            continue
        t0 = time.time()
        folder = runs / name
        if not (folder / "done").exists():
            settings = {k: v for k, v in settings_default.items() if k not in extra}
            sh([SSLMON, "train", method, *data_args, "--half", "--out", str(folder), "-q",
                *[x for kv in settings.items() for x in kv], *extra], log)
            (folder / "done").write_text("")
        t1 = time.time()
        if not result.exists():
            sh(score_args(folder), log)
        t2 = time.time()
        doc = probes(folder, spec, limits)
        doc["run"] = {"name": name, "method": method, "train_args": extra, "train_s": round(t1 - t0, 1), "score_s": round(t2 - t1, 1),
                      "probe_s": round(time.time() - t2, 1), "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        probe_file.write_text(json.dumps(doc, indent=1) + "\n")
        print(f"{name}: train {t1 - t0:.0f} s, score {t2 - t1:.0f} s, probes {time.time() - t2:.0f} s", flush=True)


if __name__ == "__main__":
    main()
