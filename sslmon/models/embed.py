"""The embedding engine: batches of uint8 images through a frozen backbone.

Conversion to float, grayscale -> 3 channels, resizing and normalisation all
happen on the device, batch by batch, under ``torch.inference_mode``, in float32
on every device by default, so CPU and GPU scores of a checkpoint agree;
``precision="bf16"`` runs the forward pass in bfloat16 autocast (faster on
recent GPUs, numbers differ slightly; recorded in the run's config).
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable, Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sslmon import rules
from sslmon._text import one_line
from sslmon.callbacks import Log, OnProgress
from sslmon.errors import OptionsError, SslmonError


Precision = Literal["fp32", "bf16"]


def preprocess(
    batch: torch.Tensor,
    mean: Sequence[float],
    std: Sequence[float],
    input_size: int | None,
) -> torch.Tensor:
    """uint8 (b, C, H, W) -> normalised float (b, 3, S, S): /255, grayscale repeated, resized, (x - mean) / std.

    Resizing is bilinear with antialiasing to ``input_size`` x ``input_size`` when given.
    """
    x = batch.float().div_(255.0)
    if input_size is not None and tuple(x.shape[-2:]) != (input_size, input_size):
        x = F.interpolate(x, size=(input_size, input_size), mode="bilinear", antialias=True, align_corners=False)
    return normalize(x, mean, std)


def normalize(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Float images (b, C, H, W) in [0, 1] -> (b, 3, H, W): grayscale repeated to 3 channels, then (x - mean) / std
    per channel (the same for scoring and for training views)."""
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    m = torch.as_tensor(mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    s = torch.as_tensor(std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x - m) / s


@torch.inference_mode()
def embed_images(
    model: nn.Module,
    images: torch.Tensor,
    mean: Sequence[float],
    std: Sequence[float],
    input_size: int | None = None,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
    on_batch: Callable[[int], None] | None = None,
    precision: Precision = "fp32",
) -> np.ndarray:
    """Embeddings (n, d) float32 of ``images`` (uint8 (n, C, H, W)) through ``model`` in eval mode.

    ``precision``: ``fp32`` (default) or ``bf16`` (bfloat16 autocast on the device; the output is
    float32 either way). ``on_batch(k)`` is called after each batch with the number of images done in it.
    """
    rules.check("precision", precision)
    device = torch.device(device)
    model = model.to(device).eval()
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    out = []
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size].to(device, non_blocking=True)
        with autocast:
            z = model(preprocess(batch, mean, std, input_size))
        if isinstance(z, (tuple, list)):
            z = z[0]
        out.append(torch.flatten(z, 1).float().cpu())
        if on_batch is not None:
            on_batch(len(batch))
    return torch.cat(out).numpy()


class EmbeddingError(SslmonError):
    """The forward pass failed (wrong input size for the model, out of memory, ...); the message names the model."""


def as_images(images: Any, what: str = "images") -> torch.Tensor:
    """``images`` as the uint8 (n, C, H, W) tensor that :func:`embed` takes, from a numpy array or a tensor:
    (n, H, W) gets one channel, channels-last (n, H, W, C) with C = 1 or 3 is moved first. OptionsError naming
    ``what`` for anything else (another dtype, rank or number of channels)."""
    x = torch.from_numpy(np.ascontiguousarray(images)) if isinstance(images, np.ndarray) else images
    if not isinstance(x, torch.Tensor):
        raise OptionsError(f"{what}: expected a numpy array or a torch tensor, got {type(images).__name__}", param=what)
    if x.dtype != torch.uint8:
        raise OptionsError(f"{what}: expected uint8 pixels (0-255), got {x.dtype}; for floats in [0, 1] pass "
                           "(x * 255).round() as uint8", param=what)
    if x.ndim == 3:
        x = x.unsqueeze(1)
    elif x.ndim == 4 and x.shape[1] not in (1, 3) and x.shape[-1] in (1, 3):
        x = x.permute(0, 3, 1, 2)
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise OptionsError(f"{what}: expected shape (n, H, W), (n, C, H, W) or (n, H, W, C) with C = 1 or 3, got "
                           f"{tuple(x.shape)}", param=what)
    return x


def embed(
    model: nn.Module,
    images: torch.Tensor,
    *,
    mean: Sequence[float],
    std: Sequence[float],
    input_size: int | None = None,
    batch_size: int = 256,
    device: str | torch.device = "auto",
    precision: str = "fp32",
    name: str = "model",
    on_progress: OnProgress | None = None,
) -> np.ndarray:
    """Embeddings (n, d) float32 of uint8 ``images`` (n, C, H, W; also numpy, (n, H, W) or channels-last: see
    :func:`as_images`) through ``model`` in eval mode under ``torch.inference_mode``; each submodule's train/eval
    mode is restored afterwards. EmbeddingError naming ``name`` when the forward pass fails."""
    images = as_images(images)
    dev = device if not isinstance(device, str) else rules.resolve_device(device)
    task, total, done = f"embedding {name}", len(images), 0

    def advance(k: int) -> None:
        nonlocal done
        done += k
        if on_progress is not None:
            on_progress(task, done, total)

    modes = [(m, m.training) for m in model.modules()]
    try:
        return embed_images(model, images, mean, std, input_size, batch_size, dev, on_batch=advance, precision=precision)  # type: ignore[arg-type]
    except (RuntimeError, ValueError) as exc:
        raise EmbeddingError(f"{name}: embedding failed ({one_line(exc)})") from None
    finally:
        for module, training in modes:
            module.training = training


LONG_EMBEDDING_S = 60.0  # a CPU embedding estimated to take longer (seconds) is announced before it goes on
QUICK_LIMIT = 2000  # the --limit that the announcement suggests for a quick look


def embedding_estimate(n_images: int, size: int, images_per_s: float) -> str | None:
    """The line said before a long CPU embedding of ``n_images`` images at ``size`` px, at ``images_per_s`` (images
    per second, measured on the first batch); None when it would take under :data:`LONG_EMBEDDING_S` seconds."""
    seconds = n_images / images_per_s
    if seconds < LONG_EMBEDDING_S:
        return None
    hint = f"; --limit {QUICK_LIMIT} for a quick look" if n_images > QUICK_LIMIT else ""
    minutes = math.ceil(seconds / 60)
    return f"note: embedding {n_images:,} images at {size} px on the CPU: about {minutes} minute{'s' * (minutes > 1)}{hint}"


class FirstBatchClock:
    """An :data:`OnProgress` that times the first embedding batch (from its creation to the first ``embedding``
    progress call) and logs :func:`embedding_estimate` for all ``n_images`` once; every call goes on to ``inner``.
    ``clock``: seconds (``time.perf_counter``; a test gives its own)."""

    def __init__(self, n_images: int, size: int, log: Log, inner: OnProgress | None = None,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.n_images, self.size, self.log, self.inner, self.clock = n_images, size, log, inner, clock
        self.start: float | None = clock()

    def __call__(self, task: str, done: int, total: int) -> None:
        if self.start is not None and task.startswith("embedding") and done > 0:
            elapsed, self.start = self.clock() - self.start, None
            line = embedding_estimate(self.n_images, self.size, done / elapsed) if elapsed > 0 else None
            if line:
                self.log(line)
        if self.inner is not None:
            self.inner(task, done, total)


def embed_views(run: Callable[..., np.ndarray], images: torch.Tensor, n_views: int, seed: int, device: torch.device,
                name: str, on_progress: OnProgress | None) -> np.ndarray:
    """Embeddings (m, n_views, d) of ``n_views`` augmented views of m = min(n, :data:`sslmon.rules.LIDAR_IMAGES`)
    images (a random subset drawn with ``seed``), for LiDAR; ``run(view, on_progress=...)`` embeds one view of the
    subset (:func:`embed` with the model's settings). Progress as one task, ``embedding NAME views``."""
    from sslmon.models.augment import uint8_views

    m = min(len(images), rules.LIDAR_IMAGES)
    subset = torch.as_tensor(np.sort(np.random.default_rng(seed).permutation(len(images))[:m]))
    task = f"embedding {name} views"
    out = []
    for v, view in enumerate(uint8_views(images[subset], n_views, seed, device)):
        report = None if on_progress is None else (lambda _, done, __, v=v: on_progress(task, v * m + done, n_views * m))
        out.append(run(view, on_progress=report))
    return np.stack(out, axis=1)
