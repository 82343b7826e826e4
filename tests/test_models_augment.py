"""sslmon.models.augment: per-sample augmentations that keep shape and range."""

from __future__ import annotations

import pytest
import torch

from sslmon.models.augment import AugmentConfig, augment


@pytest.mark.parametrize("channels", [1, 3])
def test_augment_is_per_sample_and_keeps_shape(channels: int) -> None:
    x = torch.rand(1, channels, 28, 28, generator=torch.Generator().manual_seed(0)).expand(8, -1, -1, -1).contiguous()
    y = augment(x, AugmentConfig(), torch.Generator().manual_seed(0))
    assert y.shape == x.shape and y.dtype == x.dtype
    assert 0 <= y.min() and y.max() <= 1
    assert not torch.allclose(y[0], y[1])
    # crop and flip alone already differ per sample
    crop_only = AugmentConfig(jitter_p=0.0, grayscale_p=0.0)
    y = augment(x, crop_only, torch.Generator().manual_seed(1))
    assert len({tuple(v.flatten()[:50].tolist()) for v in y}) == len(y)
