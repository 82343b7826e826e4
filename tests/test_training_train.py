"""Tests of sslmon.training.train: losses against their formulas, MoCo parts, augmentation, milestone files."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from sslmon.models.archs import SmallConvNet
from sslmon.io.milestones import stored_training
from sslmon.training.train import METHODS, MoCo, MoCoQueue, SimSiam, ema_update, info_nce, moco_loss, simsiam_loss, train

MEAN, STD = [0.3, 0.3, 0.3], [0.35, 0.35, 0.35]


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach(), b.detach()
    return float(a @ b / (a.norm() * b.norm()))


def test_info_nce_matches_explicit_formula() -> None:
    g = torch.Generator().manual_seed(0)
    n, t = 3, 0.5
    z1, z2 = torch.randn(n, 4, generator=g), torch.randn(n, 4, generator=g)
    u = torch.cat([z1, z2])
    total = 0.0
    for i in range(2 * n):
        pos = (i + n) % (2 * n)
        denom = sum(math.exp(_cos(u[i], u[k]) / t) for k in range(2 * n) if k != i)
        total += -math.log(math.exp(_cos(u[i], u[pos]) / t) / denom)
    assert info_nce(z1, z2, t).item() == pytest.approx(total / (2 * n), rel=1e-5)


def test_moco_loss_matches_explicit_formula_and_stops_key_gradient() -> None:
    g = torch.Generator().manual_seed(1)
    q = torch.randn(2, 4, generator=g, requires_grad=True)
    k = torch.randn(2, 4, generator=g, requires_grad=True)
    queue, t = torch.randn(5, 4, generator=g), 0.1
    total = 0.0
    for i in range(2):
        pos = math.exp(_cos(q[i], k[i]) / t)
        total += -math.log(pos / (pos + sum(math.exp(_cos(q[i], queue[j]) / t) for j in range(5))))
    loss = moco_loss(q, k, queue, t)
    assert loss.item() == pytest.approx(total / 2, rel=1e-5)
    loss.backward()
    assert q.grad is not None and k.grad is None


def test_simsiam_stop_gradient() -> None:
    g = torch.Generator().manual_seed(2)
    z1 = torch.randn(4, 8, generator=g, requires_grad=True)
    z2 = torch.randn(4, 8, generator=g, requires_grad=True)
    p1, p2 = torch.randn(4, 8, generator=g, requires_grad=True), torch.randn(4, 8, generator=g, requires_grad=True)
    loss = simsiam_loss(p1, p2, z1, z2)
    expected = -(torch.cosine_similarity(p1, z2).mean() + torch.cosine_similarity(p2, z1).mean()) / 2
    assert loss.item() == pytest.approx(expected.item())
    loss.backward()
    assert z1.grad is None and z2.grad is None
    assert p1.grad is not None and p1.grad.abs().sum() > 0
    # through a predictor, gradient reaches z only via p
    z = torch.randn(4, 8, generator=g, requires_grad=True)
    pred = nn.Linear(8, 8)
    simsiam_loss(pred(z), pred(z), z, z).backward()
    via_p = torch.autograd.grad(simsiam_loss(pred(z), pred(z), z.detach(), z.detach()), z)[0]
    assert torch.allclose(z.grad, via_p)


def test_moco_queue_fifo_with_wraparound() -> None:
    queue = MoCoQueue(size=5, dim=2, generator=torch.Generator().manual_seed(0))
    initial = queue.ordered().clone()
    batches = [torch.full((2, 2), float(v)) for v in (1, 2, 3)]
    assert torch.equal(queue.enqueue(batches[0]), initial[:2])
    assert torch.equal(queue.enqueue(batches[1]), initial[2:4])
    # the third batch wraps: it evicts the last initial key and the first key of batch 1
    evicted = queue.enqueue(batches[2])
    assert torch.equal(evicted, torch.stack([initial[4], batches[0][0]]))
    assert torch.equal(queue.ordered(), torch.tensor([[1.0, 1], [2, 2], [2, 2], [3, 3], [3, 3]]))
    assert int(queue.ptr) == 1
    with pytest.raises(ValueError):
        queue.enqueue(torch.zeros(6, 2))


def test_ema_update_formula_and_buffers() -> None:
    torch.manual_seed(0)
    source, target = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2)), nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    source(torch.randn(8, 3))  # moves the source's running statistics
    expected = [0.9 * t + 0.1 * s for t, s in zip(target.parameters(), source.parameters())]
    ema_update(target, source, 0.9)
    for p, e in zip(target.parameters(), expected):
        assert torch.allclose(p, e)
    for t, s in zip(target.buffers(), source.buffers()):
        assert torch.equal(t, s)


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.randint(0, 256, (64, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("method", ["simclr", "moco", "simsiam"])
def test_two_epoch_run_writes_loadable_milestones(method: str, images: torch.Tensor, tmp_path) -> None:
    paths = train(method, images, "convnet-small", tmp_path, epochs=2, every=1, batch_size=32, seed=0,
                  mean=MEAN, std=STD, head_width=64, half=method == "simclr", log=lambda s: None)
    assert [p.name for p in paths] == ["epoch_0000.pt", "epoch_0001.pt", "epoch_0002.pt"]
    states = []
    for epoch, path in enumerate(paths):
        ckpt = torch.load(path, weights_only=True)
        assert (ckpt["epoch"], ckpt["arch"], ckpt["method"]) == (epoch, "convnet-small", method)
        assert ckpt["normalization"] == {"mean": MEAN, "std": STD}
        model = SmallConvNet()
        model.load_state_dict(ckpt["state_dict"], strict=True)
        assert all(p.dtype == torch.float32 for p in model.parameters())
        states.append(model.state_dict())
    assert not torch.equal(states[0]["features.0.weight"], states[2]["features.0.weight"])


def test_training_is_deterministic(images: torch.Tensor, tmp_path) -> None:
    runs = [
        train("simclr", images[:32], "convnet-small", tmp_path / str(i), epochs=1, every=1, batch_size=16, seed=3,
              mean=MEAN, std=STD, head_width=32, log=lambda s: None)[-1]
        for i in range(2)
    ]
    a, b = (torch.load(p, weights_only=True)["state_dict"] for p in runs)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_simsiam_ablations_without_stop_gradient_or_predictor() -> None:
    g = torch.Generator().manual_seed(4)
    z1, z2 = torch.randn(4, 8, generator=g, requires_grad=True), torch.randn(4, 8, generator=g, requires_grad=True)
    simsiam_loss(z1, z2, z1, z2, stop_gradient=False).backward()
    # without stop-gradient both terms pull on z: d/dz1 of -(cos(z1, z2) + cos(z2, z1)) / 2 = -d cos(z1, z2)/dz1
    ref = z1.detach().clone().requires_grad_(True)
    (-torch.cosine_similarity(ref, z2.detach()).mean()).backward()
    assert torch.allclose(z1.grad, ref.grad, atol=1e-6)
    assert isinstance(SimSiam(SmallConvNet(), 128, 16, predictor=False).predictor, nn.Identity)
    assert METHODS["simsiam-no-sg"].build(SmallConvNet(), 128, 16, g, None).stop_gradient is False


def test_milestones_record_the_training_and_held_out_losses(images: torch.Tensor, tmp_path) -> None:
    """train_loss is the mean loss of the epoch's steps (recomputed here from the log line), heldout_loss the loss
    on images not trained on; both recorded per milestone and read back by stored_training."""
    lines: list[str] = []
    paths = train("simclr", images[:32], "convnet-small", tmp_path, epochs=2, every=1, batch_size=16, seed=1,
                  mean=MEAN, std=STD, head_width=32, heldout=images[32:], log=lines.append)
    stored = [torch.load(p, weights_only=True)["training"] for p in paths]
    assert stored[0]["train_loss"] is None and all(math.isfinite(s["heldout_loss"]) for s in stored)
    logged = [float(line.split("loss ")[1].split(",")[0]) for line in lines if " epoch " in line]
    assert [round(s["train_loss"], 4) for s in stored[1:]] == logged
    # InfoNCE of 2 x 16 views is near log(31) for an untrained network and never above log(2N - 1) + a margin
    assert 0 < stored[0]["heldout_loss"] < math.log(31) + 1
    assert stored_training(torch.load(paths[1], weights_only=True)) == {k: v for k, v in stored[1].items()}
    assert stored_training({"training": {"train_loss": float("nan"), "heldout_loss": "x"}}) == {}
    assert stored_training({"training": [1, 2]}) == {} and stored_training(None) == {}


def test_moco_held_out_loss_changes_no_state() -> None:
    """MoCo's held-out loss leaves the queue, its pointer and the key encoder as they were, and equals moco_loss of
    the current encoders by hand."""
    g = torch.Generator().manual_seed(0)
    model = MoCo(SmallConvNet(), 128, 32, queue_size=64, generator=g).eval()
    x1, x2 = torch.randn(8, 3, 16, 16, generator=g), torch.randn(8, 3, 16, 16, generator=g)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    loss = model.heldout_loss(x1, x2)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with torch.no_grad():
        q = torch.nn.functional.normalize(model.query_encoder(x1), dim=1)
        k = torch.nn.functional.normalize(model.key_encoder(x2), dim=1)
        queue = torch.nn.functional.normalize(model.queue.keys, dim=1)
        logits = torch.cat([(q * k).sum(1, keepdim=True), q @ queue.T], dim=1) / model.temperature
        expected = torch.nn.functional.cross_entropy(logits, torch.zeros(8, dtype=torch.long))
    assert float(loss) == pytest.approx(float(expected), rel=1e-5)
