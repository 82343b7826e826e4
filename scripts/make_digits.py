"""Write scikit-learn's bundled digits (1,797 8x8 grayscale images, 10 classes) as an sslmon ``npz:`` dataset.

No download: the images ship with scikit-learn. Pixel values 0..16 are scaled to 0..255 (uint8) and the
images are upsampled by bilinear interpolation to ``--size`` pixels (default 16) so that the crops of the
SimCLR augmentation and the two stride-2 blocks of ``convnet-small`` have pixels to work on. The split is
stratified: ``images``/``labels`` are the test split (what ``sslmon score`` evaluates), ``train_images``/
``train_labels`` the train split (what ``sslmon train`` trains on and the probe/kNN fit on).

    .venv/bin/python scripts/make_digits.py /tmp/sslmon-digits/digits.npz --size 16 --test 600 --seed 0
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy import ndimage
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split


def digits_arrays(size: int, test: int, seed: int) -> dict[str, np.ndarray]:
    """The npz arrays: uint8 (n, 1, size, size) images in 0..255, int64 labels, a stratified train/test split."""
    bunch = load_digits()
    x = bunch.images.astype(np.float64) / 16.0  # (1797, 8, 8), values 0..16 -> 0..1
    if size != x.shape[1]:
        zoom = size / x.shape[1]
        x = np.stack([ndimage.zoom(im, zoom, order=1, mode="nearest", grid_mode=True) for im in x])
    x = np.rint(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)[:, None]
    y = bunch.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=test, stratify=y, random_state=seed)
    return {"images": x_test, "labels": y_test, "train_images": x_train, "train_labels": y_train,
            "classes": np.array([str(c) for c in bunch.target_names])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, help="the .npz file to write (keep it out of git)")
    ap.add_argument("--size", type=int, default=16, help="image side in pixels after bilinear upsampling (8 = original)")
    ap.add_argument("--test", type=int, default=600, help="images in the stratified test split")
    ap.add_argument("--seed", type=int, default=0, help="seed of the train/test split")
    args = ap.parse_args()
    arrays = digits_arrays(args.size, args.test, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **arrays)
    print(f"{args.out}: {len(arrays['train_images'])} train + {len(arrays['images'])} test images of "
          f"{args.size}x{args.size}")


if __name__ == "__main__":
    main()
