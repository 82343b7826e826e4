"""Regenerate sslmon/data/fashion_mnist.npz, the default dataset embedded in the package.

Contents: the full Fashion-MNIST test split (`images` uint8 (10000, 28, 28), `labels` int64), a
stratified 10,000-image subset of the train split (`train_images`, `train_labels`: 1000 per class,
drawn with seed 0, kept in original order) and the class names (`classes`), saved with
np.savez_compressed. The arrays are reproducible; the zip's member timestamps are not, so the file's
bytes change on every run.

Usage: python scripts/make_embedded_dataset.py [FASHION_MNIST_DIR]   (default: the Debian folder)
Licence: MIT, Zalando SE; see sslmon/data/LICENSE-fashion-mnist.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from sslmon.io.datasets import DEBIAN_FASHION_MNIST, load_dataset

TRAIN_SIZE = 10_000
SEED = 0
OUT = Path(__file__).resolve().parent.parent / "sslmon" / "data" / "fashion_mnist.npz"


def main(folder: str = str(DEBIAN_FASHION_MNIST)) -> None:
    ds = load_dataset(f"fashion-mnist:{folder}", train_limit=TRAIN_SIZE, seed=SEED)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        OUT,
        images=ds.images[:, 0].numpy(),
        labels=ds.labels,
        train_images=ds.train_images[:, 0].numpy(),
        train_labels=ds.train_labels,
        classes=np.array(ds.classes),
    )
    print(f"{OUT}: {OUT.stat().st_size / 1e6:.1f} MB, {len(ds.images)} test + {len(ds.train_images)} train images")


if __name__ == "__main__":
    main(*sys.argv[1:])
