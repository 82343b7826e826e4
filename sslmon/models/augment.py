"""The SimCLR CIFAR-10 augmentation stack, batched on the device with per-sample random parameters: the training
views of :mod:`sslmon.training.train` and the scored views of LiDAR (:func:`uint8_views`).

Random parameters come from a CPU ``torch.Generator`` so a seed gives the same views on any device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class AugmentConfig:
    """The SimCLR CIFAR-10 augmentation stack, each parameter drawn per sample.

    RandomResizedCrop (area fraction ``crop_scale``, aspect ``crop_ratio``, back to
    the input size), horizontal flip (``flip_p``), colour jitter with probability
    ``jitter_p`` (brightness/contrast/saturation factors uniform in [1-s, 1+s],
    hue shift uniform in [-hue, hue] turns), grayscale (``grayscale_p``).
    Single-channel images get only brightness and contrast jitter.
    """

    crop_scale: tuple[float, float] = (0.2, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_p: float = 0.5
    jitter_p: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.1
    grayscale_p: float = 0.2


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> Tensor:
    return low + (high - low) * torch.rand(n, generator=generator)


def _gray(x: Tensor) -> Tensor:
    """ITU-R 601 luma (n, 1, H, W) of RGB images, as torchvision's rgb_to_grayscale."""
    return (x * torch.tensor([0.2989, 0.587, 0.114], device=x.device).view(1, 3, 1, 1)).sum(1, keepdim=True)


def random_resized_crop(x: Tensor, cfg: AugmentConfig, generator: torch.Generator) -> Tensor:
    """Per-sample random resized crop plus horizontal flip, by one ``affine_grid``/``grid_sample``.

    Area fraction s ~ U(crop_scale), log aspect ~ U(log crop_ratio); crop sides
    (fractions of W and H) are clamped to 1 instead of torchvision's re-draws.
    """
    n, _, h, w = x.shape
    area = _uniform(n, *cfg.crop_scale, generator)
    ratio = torch.exp(_uniform(n, math.log(cfg.crop_ratio[0]), math.log(cfg.crop_ratio[1]), generator))
    sx = torch.sqrt(area * ratio * h / w).clamp(max=1.0)
    sy = torch.sqrt(area / ratio * w / h).clamp(max=1.0)
    cx = (1 - sx) * _uniform(n, -1.0, 1.0, generator)
    cy = (1 - sy) * _uniform(n, -1.0, 1.0, generator)
    flip = torch.where(torch.rand(n, generator=generator) < cfg.flip_p, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = sx * flip, cx, sy, cy
    grid = F.affine_grid(theta.to(x.device), [n, x.shape[1], h, w], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def colour_jitter(x: Tensor, cfg: AugmentConfig, generator: torch.Generator) -> Tensor:
    """Per-sample brightness, contrast, saturation, hue jitter (that fixed order), then grayscale.

    Brightness scales x; contrast and saturation blend with the mean luma and the
    luma image (as torchvision); hue rotates chroma in YIQ space by 2*pi*h, a
    linear stand-in for torchvision's HSV hue shift. Saturation, hue and
    grayscale apply to RGB only. x is in [0, 1] and stays there.
    """
    n, c = x.shape[:2]
    on = torch.rand(n, generator=generator) < cfg.jitter_p

    def factor(strength: float) -> Tensor:
        f = torch.where(on, _uniform(n, 1 - strength, 1 + strength, generator), 1.0)
        return f.view(n, 1, 1, 1).to(x.device)

    x = (x * factor(cfg.brightness)).clamp(0, 1)
    luma = x if c == 1 else _gray(x)
    x = torch.lerp(luma.mean(dim=(1, 2, 3), keepdim=True), x, factor(cfg.contrast)).clamp(0, 1)
    if c == 1:
        return x
    x = torch.lerp(_gray(x), x, factor(cfg.saturation)).clamp(0, 1)
    angle = 2 * math.pi * torch.where(on, _uniform(n, -cfg.hue, cfg.hue, generator), 0.0)
    to_yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
    rot = torch.zeros(n, 3, 3)
    rot[:, 0, 0] = 1
    rot[:, 1, 1], rot[:, 1, 2], rot[:, 2, 1], rot[:, 2, 2] = angle.cos(), -angle.sin(), angle.sin(), angle.cos()
    mats = (torch.linalg.inv(to_yiq) @ rot @ to_yiq).to(x.device)
    x = torch.einsum("nij,njhw->nihw", mats, x).clamp(0, 1)
    gray = (torch.rand(n, generator=generator) < cfg.grayscale_p).view(n, 1, 1, 1).to(x.device)
    return torch.where(gray, _gray(x).expand_as(x), x)


def augment(x: Tensor, cfg: AugmentConfig, generator: torch.Generator) -> Tensor:
    """One random view of a float batch (n, C, H, W) in [0, 1]; same shape and dtype.

    Random parameters come from the CPU ``generator`` (so a seed gives the
    same views on any device) and differ per sample.
    """
    return colour_jitter(random_resized_crop(x, cfg, generator), cfg, generator)


def uint8_views(
    images: Tensor,
    n_views: int,
    seed: int,
    device: torch.device | str = "cpu",
    cfg: AugmentConfig = AugmentConfig(),
    batch_size: int = 256,
) -> Iterator[Tensor]:
    """``n_views`` random views of uint8 images (n, C, H, W): one uint8 CPU tensor of the same shape per view.

    Augmented batch by batch on ``device`` with :func:`augment` (values rounded back to 0..255); the
    parameters come from one CPU generator seeded with ``seed``, so a seed (and ``batch_size``: the draws go batch
    by batch) gives the same views on any device.
    """
    generator = torch.Generator().manual_seed(seed)
    for _ in range(n_views):
        parts = []
        for start in range(0, len(images), batch_size):
            x = images[start : start + batch_size].to(device).float().div_(255.0)
            parts.append(augment(x, cfg, generator).mul_(255.0).round_().to(torch.uint8).cpu())
        yield torch.cat(parts)
