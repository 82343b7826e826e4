"""The time estimate said before a long CPU embedding (issue 20): from the first batch's throughput, injected here."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from sslmon import api
from sslmon.api import FirstBatchClock, embedding_estimate
from sslmon.models import embed as embed_module


def test_the_estimate_from_a_given_throughput():
    # 20,000 images at 50 images/s: 400 s, i.e. 6.67 minutes, said as 7
    assert embedding_estimate(20_000, 224, 50.0) == (
        "note: embedding 20,000 images at 224 px on the CPU: about 7 minutes; --limit 2000 for a quick look")
    assert embedding_estimate(1_500, 32, 20.0) == "note: embedding 1,500 images at 32 px on the CPU: about 2 minutes"
    assert embedding_estimate(20_000, 28, 20_000 / 59.0) is None  # under a minute: nothing said


def test_the_first_batch_is_timed_once_and_progress_still_goes_through():
    ticks = iter([10.0, 12.0])  # created at t=10 s, first batch done at t=12 s: 256 images in 2 s
    said: list[str] = []
    seen: list[tuple[str, int, int]] = []
    clock = FirstBatchClock(40_000, 224, said.append, lambda *a: seen.append(a), clock=lambda: next(ticks))
    for done in (256, 512, 768):
        clock("embedding m", done, 20_000)
    minutes = math.ceil(40_000 / (256 / 2.0) / 60)  # 312.5 s -> 6
    assert said == [f"note: embedding 40,000 images at 224 px on the CPU: about {minutes} minutes; --limit 2000 for a quick look"]
    assert seen == [("embedding m", d, 20_000) for d in (256, 512, 768)]


def test_score_model_announces_on_the_cpu_counting_the_train_split(monkeypatch):
    monkeypatch.setattr(embed_module, "LONG_EMBEDDING_S", 0.0)  # any embedding is "long": the wiring, not the timing, is tested
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.integers(0, 255, (40, 1, 12, 12), dtype=np.uint8))
    labels = np.arange(40) % 2
    model = nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(3 * 16, 8))
    said: list[str] = []
    api.score_model(model, images, labels, train_images=images[:30], train_labels=labels[:30], metrics=["rankme", "knn_acc"],
                    device="cpu", log=said.append)
    assert len(said) == 1 and said[0].startswith("note: embedding 70 images at 12 px on the CPU: about ")
    resized: list[str] = []
    api.score_model(model, images, metrics=["rankme"], device="cpu", log=resized.append, input_size=16)
    assert resized and "embedding 40 images at 16 px" in resized[0]
