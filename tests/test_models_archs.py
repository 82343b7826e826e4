"""sslmon.models.archs: the architecture registry, heads replaced by identity, key prefilters."""

from __future__ import annotations

import pytest
import torch
import torchvision

from helpers import embed
from sslmon.models.archs import arch_signature, build_arch, list_archs, registry, torchvision_family


@pytest.mark.parametrize("family", sorted({torchvision_family(n) for n in torchvision.models.list_models(module=torchvision.models)}))
def test_prefilter_key_is_in_every_model_of_its_family(family):
    members = [n for n in torchvision.models.list_models(module=torchvision.models) if torchvision_family(n) == family]
    for name in {members[0], members[-1]}:  # all 80 models on the meta device would take ~10 s
        key = registry()[name].prefilter_key
        assert key is None or key in arch_signature(name), name


def test_registry_lists_torchvision_and_own_archs():
    names = list_archs()
    assert names == sorted(names)
    assert set(torchvision.models.list_models(module=torchvision.models)) <= set(names)
    assert {"resnet18-cifar", "resnet50-cifar", "convnet-small"} <= set(names)


@pytest.mark.slow  # full torchvision networks (issue 18: resnet tests are slow)
@pytest.mark.parametrize("arch, dim", [("resnet18", 512), ("mobilenet_v3_small", 576), ("efficientnet_b0", 1280)])
def test_head_replaced_real_forward(arch, dim, rgb_images):
    assert embed(build_arch(arch), rgb_images).shape == (4, dim)


@pytest.mark.parametrize(
    "arch, dim, size",
    [
        ("densenet121", 1024, 32), ("convnext_tiny", 768, 32), ("squeezenet1_1", 512, 64), ("alexnet", 9216, 64),
        ("googlenet", 1024, 64), ("inception_v3", 2048, 299), ("maxvit_t", 512, 224), ("vit_b_32", 768, 224),
        ("swin_t", 768, 224), ("regnet_x_400mf", 400, 32),
    ],
)
def test_head_replaced_shapes_on_meta(arch, dim, size):
    model = build_arch(arch, device="meta")
    assert embed(model, torch.empty(2, 3, size, size, device="meta")).shape == (2, dim)


def test_head_keeps_normalisation_layers():
    assert "classifier.0.weight" in arch_signature("convnext_tiny")  # LayerNorm2d before the Linear
    assert "classifier.2.weight" in arch_signature("maxvit_t")  # LayerNorm after pool + flatten
    assert not any(k.startswith(("fc.", "AuxLogits.")) for k in arch_signature("inception_v3"))
