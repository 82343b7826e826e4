"""Print every number sslmon reports for eight fixed cases, as one JSON document, so that a restructuring can be
checked to change no number: run it before and after, then ``diff`` the two outputs (they must be identical).

The cases go through the command line (the interface that a restructuring must keep): sample checkpoints with and
without a train split and with LiDAR views, embedding files with and without labels, a collapsed embedding file,
``select`` of a run, and ``sslmon.api.evaluate`` from Python. Timings and timestamps are left out; everything else
(values, spreads, nulls and their reasons, notes, config, ranks, recommendation) is kept.

Usage: python scripts/numbers_unchanged.py > before.json   (SSLMON: the command to run, default .venv/bin/sslmon)
"""

from __future__ import annotations

import json
import os
from pathlib import Path
import subprocess
import sys
import tempfile

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SSLMON = os.environ.get("SSLMON", str(ROOT / ".venv" / "bin" / "sslmon"))
VOLATILE = {"timings", "time", "started", "finished", "cache_dir", "elapsed_s", "path"}
FAST = ["--preset", "fast", "--seeds", "0,1", "--no-cache", "-q"]


def stable(doc: object) -> object:
    """``doc`` without timings, timestamps and machine paths (recursively)."""
    if isinstance(doc, dict):
        return {k: stable(v) for k, v in doc.items() if k not in VOLATILE}
    if isinstance(doc, list):
        return [stable(v) for v in doc]
    return doc


def cli(*args: str) -> object:
    """The JSON document of ``sslmon ARGS -f json`` (its exit code kept beside it)."""
    proc = subprocess.run([SSLMON, *args, "-f", "json"], capture_output=True, text=True, env={**os.environ, "NO_COLOR": "1"})
    try:
        doc = json.loads(proc.stdout)
    except json.JSONDecodeError:
        doc = {"stdout": proc.stdout}
    return {"exit": proc.returncode, "stderr": proc.stderr.strip().splitlines()[-3:], "doc": stable(doc)}


def main() -> None:
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        from sklearn.datasets import load_digits

        X, y = load_digits(return_X_y=True)
        X, y = X[:400] / 16.0, y[:400]
        np.savez(folder / "digits.npz", embeddings=X, labels=y)
        np.save(folder / "digits_nolabels.npy", X)
        np.savez(folder / "collapsed.npz", embeddings=np.ones((200, 16)) + 1e-12 * rng.standard_normal((200, 16)),
                 labels=np.arange(200) % 4)
        ckpts = str(ROOT / "sample_checkpoints")
        cases = {
            "checkpoints": cli("score", ckpts, "--limit", "300", *FAST),
            "checkpoints_train_split": cli("score", ckpts, "--limit", "300", "--train-limit", "300", *FAST),
            "checkpoints_lidar": cli("score", ckpts, "--limit", "200", "--lidar-views", "2", "--metrics", "lidar,rankme,entropy_z3", *FAST),
            "embedding_files": cli("score", str(folder / "digits.npz"), str(folder / "collapsed.npz"), *FAST),
            "embedding_no_labels": cli("score", str(folder / "digits_nolabels.npy"), "--k", "10", *FAST),
            "select": cli("select", ckpts, "--limit", "300", *FAST),
        }
        from sslmon.api import evaluate
        from sslmon.evaluation import EvalConfig

        ev = evaluate(X, y, config=EvalConfig(seeds=(0,), umap_epochs=100))
        cases["api_evaluate"] = stable({k: v for k, v in vars(ev).items() if k not in ("Z3", "C1", "C2")})
        cases["api_evaluate"]["Z3_sum"] = float(np.asarray(ev.Z3, dtype=np.float64).sum())
    json.dump(cases, sys.stdout, indent=1, sort_keys=True, default=str)
    print()


if __name__ == "__main__":
    main()
