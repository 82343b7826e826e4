"""Train SimCLR (convnet-small) on Fashion-MNIST and write the milestones in sample_checkpoints/.

    python scripts/make_sample_checkpoints.py [--train-limit N] [--epochs E] [--check]
    python scripts/make_sample_checkpoints.py --check-only       # re-check existing milestones

``--check`` is a quick label-based sanity check of every milestone on the
Fashion-MNIST test split: weighted kNN accuracy (cosine, k=20, bank = a
stratified train subset) and AMI between KMeans(k=10) clusters of the
L2-normalised embeddings and the labels. Later milestones should beat init on both.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_mutual_info_score

from sslmon.archs import SmallConvNet
from sslmon.datasets import ImageSet, load_dataset, subset_indices
from sslmon.metrics import knn_acc
from sslmon.train import train

ROOT = Path(__file__).resolve().parent.parent


@torch.no_grad()
def embed(model: torch.nn.Module, images: torch.Tensor, mean: list[float], std: list[float], batch: int = 1000) -> np.ndarray:
    """Backbone embeddings (n, d) of uint8 images (n, C, H, W), normalised like the milestone."""
    m = torch.tensor(mean).view(1, 3, 1, 1)
    s = torch.tensor(std).view(1, 3, 1, 1)
    model.eval()
    out = [model((x.float() / 255).expand(-1, 3, -1, -1).sub(m).div(s)) for x in images.split(batch)]
    return torch.cat(out).numpy()


def check(out_dir: Path, data: ImageSet, bank_size: int, seed: int) -> list[dict[str, float]]:
    """kNN accuracy and AMI(KMeans(10); labels) on the test split for every milestone in ``out_dir``."""
    keep = subset_indices(len(data.train_images), data.train_labels, bank_size, seed)
    bank_x, bank_y = (data.train_images, data.train_labels) if keep is None else (
        data.train_images[torch.from_numpy(keep)], data.train_labels[keep])
    rows = []
    for path in sorted(out_dir.glob("epoch_*.pt")):
        ckpt = torch.load(path, weights_only=True)
        model = SmallConvNet()
        model.load_state_dict(ckpt["state_dict"])  # float16 milestones are copied into float32 params
        mean, std = ckpt["normalization"]["mean"], ckpt["normalization"]["std"]
        z_test = embed(model, data.images, mean, std)
        z_bank = embed(model, bank_x, mean, std)
        unit = z_test / np.linalg.norm(z_test, axis=1, keepdims=True).clip(min=1e-12)
        clusters = KMeans(n_clusters=10, n_init=10, random_state=seed).fit_predict(unit)
        rows.append({
            "epoch": ckpt["epoch"],
            "knn_acc": knn_acc(z_bank, bank_y, z_test, data.labels, k=20),
            "ami_kmeans_gt": float(adjusted_mutual_info_score(data.labels, clusters)),
        })
        print(f"epoch {ckpt['epoch']:4d}: kNN acc {rows[-1]['knn_acc']:.4f}  AMI(KMeans10; labels) {rows[-1]['ami_kmeans_gt']:.4f}",
              flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "sample_checkpoints")
    parser.add_argument("--dataset", default="fashion-mnist", help="sslmon.datasets spec (default: the Debian copy)")
    parser.add_argument("--train-limit", type=int, default=None, help="stratified subset of the 60k train images")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--every", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--head-width", type=int, default=2048)
    parser.add_argument("--lr", type=float, default=None, help="peak LR (default: SimCLR's 0.5)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--check", action="store_true", help="run the quality check after training")
    parser.add_argument("--check-only", action="store_true", help="only check the milestones already in --out")
    parser.add_argument("--bank-size", type=int, default=10000, help="train images in the kNN bank")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_dataset(args.dataset, train_limit=args.train_limit, seed=args.seed)
    if not args.check_only:
        start = time.perf_counter()
        train("simclr", data.train_images, "convnet-small", args.out, epochs=args.epochs, every=args.every,
              batch_size=args.batch_size, seed=args.seed, mean=data.mean, std=data.std, lr=args.lr,
              head_width=args.head_width, half=True, log=lambda s: print(s, flush=True))
        print(f"training took {time.perf_counter() - start:.0f}s on {len(data.train_images)} images", flush=True)
    if args.check or args.check_only:
        check(args.out, data, args.bank_size, args.seed)


if __name__ == "__main__":
    main()
