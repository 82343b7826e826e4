"""Does embedding the next checkpoint while the current one is scored pay on this machine?

Times, in one process: (a) embedding the evaluation images with one sample checkpoint, (b) scoring a
set of embeddings (sslmon defaults), (c) both at once, (a) in a background thread. Prints the three
wall times and the ratio (a + b) / c (> 1 means overlapping pays).
Usage: python bench/bench_overlap.py [--limit 10000]
"""

from __future__ import annotations

import argparse
from pathlib import Path
import threading
import time

from sslmon.io.datasets import load_dataset
from sslmon.models.embed import embed_images
from sslmon.models.encoders import find_checkpoints, load_checkpoint
from sslmon.evaluation import EvalConfig, evaluate_embeddings

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--limit", type=int, default=10000)
    args = parser.parse_args()
    data = load_dataset(None, limit=args.limit)
    first, second = (load_checkpoint(p) for p in find_checkpoints(ROOT / "sample_checkpoints")[-2:])

    def embed(enc):
        return embed_images(enc.model, data.images, data.mean, data.std, enc.input_size)

    def score(Z):
        return evaluate_embeddings(Z, data.labels, config=EvalConfig(seeds=(0,)), metrics=["ami_c1_c2", "silhouette_c1", "entropy_z3", "rankme"])

    Z = embed(first)
    score(Z)  # warm-up: kernels compiled or loaded
    t0 = time.perf_counter(); embed(second); t_embed = time.perf_counter() - t0
    t0 = time.perf_counter(); score(Z); t_score = time.perf_counter() - t0
    t0 = time.perf_counter()
    worker = threading.Thread(target=embed, args=(second,))
    worker.start()
    score(Z)
    worker.join()
    t_both = time.perf_counter() - t0
    print(f"embed {t_embed:.1f} s, score {t_score:.1f} s, sequential {t_embed + t_score:.1f} s, "
          f"overlapped {t_both:.1f} s, ratio {(t_embed + t_score) / t_both:.2f}")


if __name__ == "__main__":
    main()
