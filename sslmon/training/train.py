"""Self-supervised training (SimCLR, MoCo-v2, SimSiam) that writes milestones.

Follows Xu, Lowe & Trappenberg (2024), section III-B: an encoder backbone plus
method heads, trained with SGD (momentum 0.9) under a one-cycle learning-rate
schedule with cyclic momentum 0.85-0.95. Every ``every`` epochs (and before
training, and at the end) the backbone alone is written as a *milestone*
``epoch_{e:04d}.pt``: a dict of tensors, ints, strs and lists that
``torch.load(path, weights_only=True)`` reads (its keys: :mod:`sslmon.io.milestones`).

Augmentations (:mod:`sslmon.models.augment`) run batched on the training device with per-sample random
parameters; views are normalised as the scorer normalises images (:func:`sslmon.models.embed.normalize`).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sslmon.models.archs import build_arch, check_arch
from sslmon.models.embed import normalize
from sslmon.models.augment import AugmentConfig, augment
from sslmon.io.milestones import milestone, milestone_name

# --------------------------------------------------------------------------- losses


def info_nce(z1: Tensor, z2: Tensor, temperature: float) -> Tensor:
    """SimCLR NT-Xent loss over the 2N views, averaged over the 2N anchors.

    With u = L2-normalised cat(z1, z2) and positive pairs (i, i+N), the loss of
    anchor i is -log(exp(u_i.u_pos(i) / t) / sum_{k != i} exp(u_i.u_k / t)).
    """
    n = z1.shape[0]
    u = F.normalize(torch.cat([z1, z2]), dim=1)
    logits = (u @ u.T) / temperature
    logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=u.device), float("-inf"))
    positives = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(u.device)
    return F.cross_entropy(logits, positives)


def moco_loss(q: Tensor, k: Tensor, queue: Tensor, temperature: float) -> Tensor:
    """MoCo InfoNCE: each query q_i against its positive key k_i and the K queued negatives.

    Loss_i = -log(exp(q_i.k_i / t) / (exp(q_i.k_i / t) + sum_j exp(q_i.queue_j / t)))
    on L2-normalised vectors; no gradient flows into ``k`` or ``queue``.
    """
    q = F.normalize(q, dim=1)
    k = F.normalize(k.detach(), dim=1)
    negatives = F.normalize(queue.detach(), dim=1)
    logits = torch.cat([(q * k).sum(dim=1, keepdim=True), q @ negatives.T], dim=1) / temperature
    return F.cross_entropy(logits, torch.zeros(q.shape[0], dtype=torch.long, device=q.device))


def simsiam_loss(p1: Tensor, p2: Tensor, z1: Tensor, z2: Tensor, stop_gradient: bool = True) -> Tensor:
    """Symmetric SimSiam loss -(cos(p1, sg(z2)) + cos(p2, sg(z1))) / 2, batch mean.

    ``sg`` is stop-gradient (detach): gradients reach the projections only
    through the predictions ``p``. ``stop_gradient=False`` is the ablation that collapses (SimSiam's Fig. 2).
    """
    if stop_gradient:
        z1, z2 = z1.detach(), z2.detach()
    return -(F.cosine_similarity(p1, z2, dim=1).mean() + F.cosine_similarity(p2, z1, dim=1).mean()) / 2


# --------------------------------------------------------------------------- MoCo parts


class MoCoQueue(nn.Module):
    """Ring buffer of the K most recent keys (K x dim), first in first out.

    ``keys`` holds the buffer in storage order (the loss does not care about
    order); :meth:`ordered` gives it oldest first. It starts filled with random
    unit vectors, like MoCo's.
    """

    def __init__(self, size: int, dim: int, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.register_buffer("keys", F.normalize(torch.randn(size, dim, generator=generator), dim=1))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))

    def enqueue(self, keys: Tensor) -> Tensor:
        """Append ``keys`` (n x dim, n <= K) as the newest entries; return the n dequeued oldest ones."""
        size = self.keys.shape[0]
        if keys.shape[0] > size:
            raise ValueError(f"cannot enqueue {keys.shape[0]} keys into a queue of {size}")
        idx = (self.ptr + torch.arange(keys.shape[0], device=self.keys.device)) % size
        dequeued = self.keys[idx].clone()
        self.keys[idx] = keys.detach().to(self.keys.dtype)
        self.ptr.copy_((self.ptr + keys.shape[0]) % size)
        return dequeued

    def ordered(self) -> Tensor:
        """The queued keys, oldest first."""
        return torch.roll(self.keys, -int(self.ptr), dims=0)


@torch.no_grad()
def ema_update(target: nn.Module, source: nn.Module, m: float) -> None:
    """Exponential moving average: every target parameter becomes m*target + (1-m)*source.

    Buffers (BatchNorm running statistics and counters) are copied from the source.
    """
    for t, s in zip(target.parameters(), source.parameters(), strict=True):
        t.mul_(m).add_(s.detach(), alpha=1 - m)
    for t, s in zip(target.buffers(), source.buffers(), strict=True):
        t.copy_(s)


# --------------------------------------------------------------------------- heads and methods


def mlp(dims: Sequence[int], last_bn: bool = False) -> nn.Sequential:
    """MLP through ``dims``: Linear-BN-ReLU hidden layers, a linear output layer,
    and, if ``last_bn``, an affine-free BatchNorm on the output (SimSiam's projector)."""
    layers: list[nn.Module] = []
    for din, dout in zip(dims[:-2], dims[1:-1]):
        layers += [nn.Linear(din, dout, bias=False), nn.BatchNorm1d(dout), nn.ReLU(inplace=True)]
    layers.append(nn.Linear(dims[-2], dims[-1], bias=not last_bn))
    if last_bn:
        layers.append(nn.BatchNorm1d(dims[-1], affine=False))
    return nn.Sequential(*layers)


class SSLMethod(nn.Module):
    """A backbone plus the heads of one SSL method; :meth:`loss` maps two views to a scalar."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    def loss(self, x1: Tensor, x2: Tensor) -> Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def heldout_loss(self, x1: Tensor, x2: Tensor) -> Tensor:
        """The loss of two views without changing any state (no gradient, no queue or EMA update)."""
        return self.loss(x1, x2)


class SimCLR(SSLMethod):
    """SimCLR: 2-layer projector (embed -> width -> 128) and NT-Xent (:func:`info_nce`)."""

    def __init__(self, backbone: nn.Module, embed_dim: int, width: int, temperature: float = 0.5) -> None:
        super().__init__(backbone)
        self.projector = mlp([embed_dim, width, 128])
        self.temperature = temperature

    def loss(self, x1: Tensor, x2: Tensor) -> Tensor:
        z1, z2 = self.projector(self.backbone(torch.cat([x1, x2]))).chunk(2)
        return info_nce(z1, z2, self.temperature)


class MoCo(SSLMethod):
    """MoCo-v2: query = backbone + SimCLR projector; key encoder = its EMA copy; a queue of negatives.

    Each step first moves the key encoder towards the query encoder
    (:func:`ema_update`), encodes view 2 as keys without gradient, scores view-1
    queries with :func:`moco_loss`, then enqueues the keys.
    """

    def __init__(
        self,
        backbone: nn.Module,
        embed_dim: int,
        width: int,
        temperature: float = 0.1,
        queue_size: int = 4096,
        momentum: float = 0.99,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(backbone)
        self.query_encoder = nn.Sequential(backbone, mlp([embed_dim, width, 128]))
        self.key_encoder = copy.deepcopy(self.query_encoder).requires_grad_(False)
        self.queue = MoCoQueue(queue_size, 128, generator)
        self.temperature = temperature
        self.momentum = momentum

    def loss(self, x1: Tensor, x2: Tensor) -> Tensor:
        q = self.query_encoder(x1)
        with torch.no_grad():
            ema_update(self.key_encoder, self.query_encoder, self.momentum)
            k = F.normalize(self.key_encoder(x2), dim=1)
        loss = moco_loss(q, k, self.queue.keys.clone(), self.temperature)
        self.queue.enqueue(k)
        return loss

    @torch.no_grad()
    def heldout_loss(self, x1: Tensor, x2: Tensor) -> Tensor:
        """MoCo's loss against the current key encoder and queue, which stay as they are."""
        k = F.normalize(self.key_encoder(x2), dim=1)
        return moco_loss(self.query_encoder(x1), k, self.queue.keys, self.temperature)


class SimSiam(SSLMethod):
    """SimSiam: 3-layer projector (width throughout) and 2-layer predictor (bottleneck width/4).

    ``stop_gradient=False`` or ``predictor=False`` are the ablations that collapse (Chen & He 2021, Fig. 2 and
    Table 1): sslmon trains them only as known-bad runs for testing alarms."""

    def __init__(self, backbone: nn.Module, embed_dim: int, width: int, stop_gradient: bool = True,
                 predictor: bool = True) -> None:
        super().__init__(backbone)
        self.projector = mlp([embed_dim, width, width, width], last_bn=True)
        self.predictor = mlp([width, width // 4, width]) if predictor else nn.Identity()
        self.stop_gradient = stop_gradient

    def loss(self, x1: Tensor, x2: Tensor) -> Tensor:
        z1, z2 = self.projector(self.backbone(torch.cat([x1, x2]))).chunk(2)
        return simsiam_loss(self.predictor(z1), self.predictor(z2), z1, z2, self.stop_gradient)


@dataclass(frozen=True)
class MethodSpec:
    """How to build a method from (backbone, embed_dim, head width, generator, temperature) and its paper settings
    (peak learning rate, weight decay, InfoNCE temperature; None for SimSiam, which has none)."""

    build: Callable[[nn.Module, int, int, torch.Generator, float | None], SSLMethod]
    lr: float
    weight_decay: float
    temperature: float | None = None


METHODS: dict[str, MethodSpec] = {
    "simclr": MethodSpec(lambda bb, d, w, g, t: SimCLR(bb, d, w, t), lr=0.5, weight_decay=1e-4, temperature=0.5),
    "moco": MethodSpec(lambda bb, d, w, g, t: MoCo(bb, d, w, t, generator=g), lr=0.06, weight_decay=5e-4, temperature=0.1),
    "simsiam": MethodSpec(lambda bb, d, w, g, t: SimSiam(bb, d, w), lr=0.06, weight_decay=5e-4),
    # known-bad ablations (they collapse): for testing collapse alarms, never for real training
    "simsiam-no-sg": MethodSpec(lambda bb, d, w, g, t: SimSiam(bb, d, w, stop_gradient=False), lr=0.06, weight_decay=5e-4),
    "simsiam-no-pred": MethodSpec(lambda bb, d, w, g, t: SimSiam(bb, d, w, predictor=False), lr=0.06, weight_decay=5e-4),
}
# Held-out SSL loss: up to this many images (of the dataset's evaluation split), views drawn with this seed offset.
HELDOUT_IMAGES = 1000
HELDOUT_SEED_OFFSET = 10_007

# --------------------------------------------------------------------------- training


def save_milestone(
    path: Path,
    backbone: nn.Module,
    epoch: int,
    arch: str,
    method: str,
    mean: Sequence[float],
    std: Sequence[float],
    half: bool = False,
    training: dict[str, float | None] | None = None,
    input_size: int | None = None,
) -> None:
    """Write the backbone weights (float16 if ``half``; integer buffers unchanged) and metadata
    (:mod:`sslmon.io.milestones`), with the losses in ``training`` and the side of the training images
    ``input_size`` (pixels)."""
    state = {
        k: (v.half() if half and v.is_floating_point() else v).detach().cpu().clone()
        for k, v in backbone.state_dict().items()
    }
    torch.save(milestone(state, epoch, arch, method, mean, std, training, input_size), path)


def heldout_loss(model: SSLMethod, images: Tensor, batch_size: int, seed: int, view: Callable[[Tensor, torch.Generator], Tensor]) -> float:
    """Mean SSL loss of ``model`` (eval mode, no state change) over uint8 ``images`` in batches of ``batch_size``,
    two views each drawn with a generator seeded by ``seed`` (the same views at every milestone)."""
    generator = torch.Generator().manual_seed(seed)
    was_training = model.training
    model.eval()
    losses, weights = [], []
    try:
        for start in range(0, len(images), batch_size):
            x = images[start : start + batch_size].float() / 255
            if len(x) < 2:
                continue
            losses.append(float(model.heldout_loss(view(x, generator), view(x, generator))))
            weights.append(len(x))
    finally:
        model.train(was_training)
    return float(sum(l * w for l, w in zip(losses, weights)) / sum(weights)) if weights else float("nan")


def train(
    method: str,
    images: Tensor,
    arch: str,
    out_dir: str | Path,
    epochs: int,
    every: int,
    batch_size: int,
    seed: int,
    device: str | torch.device = "cpu",
    *,
    mean: Sequence[float],
    std: Sequence[float],
    lr: float | None = None,
    weight_decay: float | None = None,
    head_width: int = 2048,
    temperature: float | None = None,
    augment_cfg: AugmentConfig = AugmentConfig(),
    half: bool = False,
    heldout: Tensor | None = None,
    log: Callable[[str], None] = print,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
) -> list[Path]:
    """Train backbone ``arch`` (a :func:`sslmon.models.archs.build_arch` name) with ``method``
    ("simclr", "moco" for MoCo-v2, "simsiam") on uint8 ``images`` (n, C, H, W), C in {1, 3}.

    Writes ``out_dir/epoch_{e:04d}.pt`` for e = 0 (untrained), every ``every``
    epochs, and ``epochs``; returns their paths in order. One step = two
    augmented views of ``batch_size`` images (``min(batch_size, n)``; the last
    incomplete batch of an epoch is dropped). Grayscale views are repeated to
    3 channels; all views are normalised by ``mean``/``std`` (3 values each,
    [0, 1] units, e.g. ``ImageSet.mean``/``std``). ``lr`` and
    ``weight_decay`` (and ``temperature``, SimCLR/MoCo) default to the paper's
    values for the method; ``head_width`` is the projector/predictor width
    (paper: 2048). Every milestone records ``training``: ``train_loss`` (mean
    loss of the epoch's steps; None before training) and, with ``heldout``
    (uint8 images not trained on, e.g. the evaluation split), ``heldout_loss``
    (:func:`heldout_loss`, the same views at every milestone). Seeded: the
    same arguments give the same milestones on CPU. ``on_epoch(epoch, losses)``
    is called after every epoch with its ``train_loss`` (and ``heldout_loss``
    at milestones), e.g. to write them to TensorBoard.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {sorted(METHODS)}")
    check_arch(arch)
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images must be uint8 (n, 1|3, H, W), got {images.dtype} {tuple(images.shape)}")
    if epochs < 1 or every < 1 or batch_size < 2:
        raise ValueError("need epochs >= 1, every >= 1 and batch_size >= 2")
    if len(mean) != 3 or len(std) != 3:
        raise ValueError(f"mean and std need 3 values each, got {list(mean)} and {list(std)}")
    spec = METHODS[method]
    if temperature is not None and (spec.temperature is None or temperature <= 0):
        raise ValueError(f"temperature: {method} has none" if spec.temperature is None else "temperature must be > 0")
    device = torch.device(device)

    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    backbone = build_arch(arch)
    try:
        with torch.no_grad():
            embed_dim = backbone(torch.zeros(1, 3, *images.shape[2:])).shape[1]
    except RuntimeError as exc:  # e.g. squeezenet on 16x16 images: its feature map shrinks to nothing
        size = "x".join(map(str, images.shape[2:]))
        raise ValueError(f"arch {arch} cannot take {size} images ({str(exc).splitlines()[0]}); "
                         "use larger images (--image-size) or another --arch") from None
    model = spec.build(backbone.train(), embed_dim, head_width, generator, temperature or spec.temperature).to(device)

    n = images.shape[0]
    batch = min(batch_size, n)
    steps_per_epoch = n // batch
    peak = spec.lr if lr is None else lr
    optimizer = torch.optim.SGD(
        [p for p in model.parameters() if p.requires_grad], lr=peak, momentum=0.9,
        weight_decay=spec.weight_decay if weight_decay is None else weight_decay,
    )
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=peak, total_steps=epochs * steps_per_epoch,
        cycle_momentum=True, base_momentum=0.85, max_momentum=0.95,
    )

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = images.to(device)

    held = None if heldout is None else heldout[:HELDOUT_IMAGES].to(device)

    def view(x: Tensor, gen: torch.Generator = generator) -> Tensor:
        return normalize(augment(x, augment_cfg, gen), mean, std)

    def write(epoch: int, train_loss: float | None) -> Path:
        path = out_dir / milestone_name(epoch)
        losses = {"train_loss": train_loss,
                  "heldout_loss": None if held is None else heldout_loss(model, held, batch, seed + HELDOUT_SEED_OFFSET, view)}
        save_milestone(path, model.backbone, epoch, arch, method, mean, std, half, losses, input_size=int(images.shape[2]))
        if on_epoch is not None:
            on_epoch(epoch, {key: value for key, value in losses.items() if value is not None})
        log(f"wrote {path}" + ("" if losses["heldout_loss"] is None else f" (held-out loss {losses['heldout_loss']:.4f})"))
        return path

    paths = [write(0, None)]
    for epoch in range(1, epochs + 1):
        model.train()
        start, total = time.perf_counter(), 0.0
        order = torch.randperm(n, generator=generator)
        for step in range(steps_per_epoch):
            x = data[order[step * batch : (step + 1) * batch].to(device)].float() / 255
            loss = model.loss(view(x), view(x))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += loss.item()
        log(f"{method} epoch {epoch}/{epochs}: loss {total / steps_per_epoch:.4f}, "
            f"lr {scheduler.get_last_lr()[0]:.4g}, {time.perf_counter() - start:.1f}s")
        if epoch % every == 0 or epoch == epochs:
            paths.append(write(epoch, total / steps_per_epoch))
        elif on_epoch is not None:
            on_epoch(epoch, {"train_loss": total / steps_per_epoch})
    return paths
