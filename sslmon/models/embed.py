"""The embedding engine: batches of uint8 images through a frozen backbone.

Conversion to float, grayscale -> 3 channels, resizing and normalisation all
happen on the device, batch by batch, under ``torch.inference_mode``, in float32
on every device by default, so CPU and GPU scores of a checkpoint agree;
``precision="bf16"`` runs the forward pass in bfloat16 autocast (faster on
recent GPUs, numbers differ slightly; recorded in the run's config).
"""

from __future__ import annotations

from typing import Callable, Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sslmon.errors import OptionsError

Precision = Literal["fp32", "bf16"]
PRECISIONS: tuple[str, ...] = ("fp32", "bf16")


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` -> cuda if available, else mps if available, else cpu; other names as given."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise OptionsError("device cuda: no CUDA device is available (use cpu or auto)", param="device")
    return dev


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
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
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
