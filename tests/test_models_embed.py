"""sslmon.models.embed: preprocessing and batched embedding against a manual pipeline."""

from __future__ import annotations

import numpy as np
import torch

from sslmon.models.archs import SmallConvNet
from sslmon.models.embed import embed_images, preprocess


def test_preprocess_matches_a_manual_pipeline():
    images = torch.randint(0, 256, (4, 1, 10, 12), dtype=torch.uint8)
    out = preprocess(images, (0.5, 0.4, 0.3), (0.2, 0.25, 0.5), input_size=20)
    manual = torch.nn.functional.interpolate(images.float().repeat(1, 3, 1, 1) / 255, size=(20, 20), mode="bilinear",
                                             antialias=True, align_corners=False)
    manual = (manual - torch.tensor([0.5, 0.4, 0.3]).view(1, 3, 1, 1)) / torch.tensor([0.2, 0.25, 0.5]).view(1, 3, 1, 1)
    assert torch.allclose(out, manual, atol=1e-6)
    model = SmallConvNet(width=4).eval()
    Z = embed_images(model, images, (0.5,) * 3, (0.25,) * 3, batch_size=3)
    with torch.no_grad():
        ref = model(preprocess(images, (0.5,) * 3, (0.25,) * 3, None)).numpy()
    assert Z.shape == (4, 16) and np.allclose(Z, ref, atol=1e-6)
