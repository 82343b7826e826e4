"""Real embeddings for the benchmarks and studies: the sample checkpoints over the embedded test set.

Writes ``<out>/sample_<epoch>.npz`` (``embeddings`` (10000, d) float32, ``labels``) for each of the six
SimCLR milestones in ``sample_checkpoints/``, skipping files already there.
Usage: python bench/real_embeddings.py [--out out/embeddings] [--limit N]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from sslmon.io.datasets import load_dataset
from sslmon.models.embed import embed_images
from sslmon.models.encoders import find_checkpoints, load_checkpoint

ROOT = Path(__file__).resolve().parent.parent


def make(out: Path, limit: int | None = None) -> list[Path]:
    """Embed the evaluation images with every sample checkpoint; return the .npz paths in epoch order."""
    out.mkdir(parents=True, exist_ok=True)
    data = None
    paths = []
    for ckpt in find_checkpoints(ROOT / "sample_checkpoints"):
        enc = load_checkpoint(ckpt)
        path = out / f"sample_{enc.epoch:04d}{'' if limit is None else f'_n{limit}'}.npz"
        paths.append(path)
        if path.exists():
            continue
        data = data or load_dataset(None, limit=limit)
        Z = embed_images(enc.model, data.images, enc.mean or data.mean, enc.std or data.std, enc.input_size)
        np.savez(path, embeddings=Z, labels=data.labels)
        print(f"wrote {path} {Z.shape}", flush=True)
    return paths


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "embeddings")
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args()
    make(args.out, args.limit)
