"""Does scoring in a background thread let training go on (SSLMonitor, issue 11)?

Times, in one process after a warm-up: N training steps of a small conv net alone (the faster of
torch's default threads and 1 thread); one milestone's
scoring alone (score_embeddings, every metric, 2,000 Fashion-MNIST embeddings and 2,000 train
embeddings, seeds 0-2: the callback's defaults); then both at once, scoring in a thread while the
main thread trains. Overlap pays when "both" is clearly below "train + score".
"""

from __future__ import annotations

import statistics
import threading
import time

import torch
import torch.nn.functional as F
from torch import nn

from sslmon.api import score_embeddings
from sslmon.io.datasets import load_dataset
from sslmon.models.embed import embed_images
from sslmon.evaluation import EvalConfig

STEPS = 30
ROUNDS = 5


def main() -> None:
    data = load_dataset("default", limit=2000, train_limit=2000)
    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Conv2d(3, 32, 3, 2), nn.ReLU(), nn.Conv2d(32, 64, 3, 2), nn.ReLU(),
                             nn.Conv2d(64, 128, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    model = nn.Sequential(backbone, nn.Linear(128, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x_all = (data.train_images.float() / 255).expand(-1, 3, -1, -1).contiguous()
    y_all = torch.as_tensor(data.train_labels)
    embed = lambda im: embed_images(backbone, im, data.mean, data.std)  # noqa: E731
    Z, Z_train = embed(data.images), embed(data.train_images)
    backbone.train()

    def train(steps: int) -> float:
        t0 = time.perf_counter()
        for i in range(steps):
            j = (i * 128) % 1920
            loss = F.cross_entropy(model(x_all[j:j + 128]), y_all[j:j + 128])
            opt.zero_grad()
            loss.backward()
            opt.step()
        return time.perf_counter() - t0

    def score() -> float:
        t0 = time.perf_counter()
        score_embeddings(Z, data.labels, Z_train, data.train_labels, EvalConfig())
        return time.perf_counter() - t0

    train(5), score()  # warm-up: numba kernels, torch
    rows = []
    for _ in range(ROUNDS):  # interleaved, medians: the machine is shared
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # k-means's threadpool_limits(1) also limits torch's OpenMP pool while it runs:
        t_train_1 = train(STEPS)  # the fair sequential baseline is the faster of 1 and all threads
        torch.set_num_threads(threads)
        t_train, t_score = min(train(STEPS), t_train_1), score()
        box: dict[str, float] = {}
        t0 = time.perf_counter()
        worker = threading.Thread(target=lambda: box.update(score=score()))
        worker.start()
        t_overlapped = train(STEPS)
        worker.join()
        rows.append((t_train, t_score, time.perf_counter() - t0, t_overlapped, box["score"]))
        print("train {:.1f} s, score {:.1f} s; overlapped wall {:.1f} s (training {:.1f} s, scoring {:.1f} s)".format(*rows[-1]))
    t_train, t_score, t_both, t_overlapped, t_scored = (statistics.median(c) for c in zip(*rows))
    print(f"median of {ROUNDS}, torch threads {torch.get_num_threads()}: train {STEPS} steps {t_train:.1f} s + score "
          f"{t_score:.1f} s = {t_train + t_score:.1f} s in sequence; overlapped {t_both:.1f} s "
          f"(training itself {t_overlapped:.1f} s, {t_overlapped / t_train:.2f}x slower): {(t_train + t_score) / t_both:.2f}x")

if __name__ == "__main__":
    main()
