"""Backbone architectures built by name.

Every builder returns a backbone whose forward pass maps a batch of images
``(n, 3, H, W)`` to pooled embeddings ``(n, d)``: classification heads are
replaced by identity. The registry (:func:`list_archs`, :func:`build_arch`) holds
every torchvision classification model plus ``resnet18-cifar``, ``resnet50-cifar``
and ``convnet-small``.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache, lru_cache, partial
from typing import Any

import torch
import torchvision
from torch import nn
from torch.nn.modules.module import (
    register_module_buffer_registration_hook,
    register_module_parameter_registration_hook,
)
from torchvision.models import WeightsEnum


class SmallConvNet(nn.Module):
    """A 4-layer CNN small enough to train on a CPU (~240k parameters, 128-d output).

    Layers: 3x3 conv blocks (conv, BatchNorm, ReLU) of width w, 2w (stride 2),
    4w (stride 2), 4w, then global average pooling. Accepts any image size.
    """

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        chans = [3, width, 2 * width, 4 * width, 4 * width]
        strides = [1, 2, 2, 1]
        layers: list[nn.Module] = []
        for cin, cout, stride in zip(chans[:-1], chans[1:], strides):
            layers += [
                nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
            ]
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.embed_dim = chans[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.pool(self.features(x)), 1)


def resnet_cifar(depth: int) -> nn.Module:
    """torchvision ResNet-18/50 with the CIFAR stem of SimCLR.

    conv1 is 3x3 with stride 1 and no max-pool; fc is identity, so the output
    is the pooled 512-d (ResNet-18) or 2048-d (ResNet-50) embedding.
    """
    builders = {18: torchvision.models.resnet18, 50: torchvision.models.resnet50}
    model = builders[depth](weights=None)
    model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    model.fc = nn.Identity()
    return model


# --------------------------------------------------------------------------- registry

# torchvision model family (builder module) -> a backbone state-dict key that every model of
# the family has. It is only a cheap pre-filter for ``--arch auto``: a checkpoint without the
# key is not compared with that family's models. Families not listed are always compared.
_FAMILY_KEYS: dict[str, str] = {
    "alexnet": "features.0.weight",
    "vgg": "features.0.weight",
    "squeezenet": "features.3.squeeze.weight",
    "convnext": "features.1.0.layer_scale",
    "densenet": "features.denseblock1.denselayer1.conv1.weight",
    "efficientnet": "features.1.0.block.0.0.weight",
    "googlenet": "inception3a.branch1.conv.weight",
    "inception": "Mixed_5b.branch1x1.conv.weight",
    "maxvit": "stem.0.0.weight",
    "mnasnet": "layers.0.weight",
    "mobilenetv2": "features.1.conv.0.0.weight",
    "mobilenetv3": "features.1.block.0.0.weight",
    "regnet": "stem.0.weight",
    "resnet": "layer1.0.conv1.weight",
    "shufflenetv2": "stage2.0.branch2.0.weight",
    "swin_transformer": "features.1.0.attn.qkv.weight",
    "vision_transformer": "class_token",
}

# Families whose auxiliary classifiers are switched off (they are training-only heads).
_AUX_FAMILIES = ("googlenet", "inception")

# Head modules: the first attribute found is the classifier.
_HEAD_ATTRS = ("fc", "classifier", "heads", "head")
_PROJECTIONS = (nn.Linear, nn.Conv2d)
_POOLING = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.AvgPool2d, nn.MaxPool2d, nn.Flatten)
_NORMS = (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm1d, nn.BatchNorm2d)


@dataclass(frozen=True)
class ArchSpec:
    """How to build one registry entry.

    ``build`` returns the backbone (random init, classifier replaced by identity);
    ``prefilter_key`` is a state-dict key every checkpoint of this arch has (None: unknown).
    """

    build: Callable[[], nn.Module]
    prefilter_key: str | None


def torchvision_family(name: str) -> str:
    """Short name of the torchvision module defining model ``name``, e.g. ``"resnet"``."""
    return torchvision.models.get_model_builder(name).__module__.rsplit(".", 1)[-1]


def strip_head(model: nn.Module) -> nn.Module:
    """Replace the classifier of a torchvision model by identity, in place; returns ``model``.

    The classifier is the first of the attributes fc / classifier / heads / head. A Linear
    becomes Identity. In a Sequential head, pooling / flatten / normalisation layers before
    the first Linear or Conv2d are kept (convnext's LayerNorm2d + Flatten, maxvit's pool +
    flatten + LayerNorm), and so are pooling / flatten layers after it (squeezenet's global
    pool after its 1x1-conv classifier); every other layer becomes Identity in place, so the
    state-dict keys of the kept layers do not change.
    """
    attr = next((a for a in _HEAD_ATTRS if isinstance(getattr(model, a, None), nn.Module)), None)
    if attr is None:
        raise ValueError(f"{type(model).__name__}: no classifier among the attributes {', '.join(_HEAD_ATTRS)}")
    head = getattr(model, attr)
    if isinstance(head, nn.Sequential):
        cut = next((i for i, m in enumerate(head) if isinstance(m, _PROJECTIONS)), len(head))
        for i, layer in enumerate(head):
            keep = _POOLING + _NORMS if i < cut else _POOLING
            if not isinstance(layer, keep):
                head[i] = nn.Identity()
        if all(isinstance(m, nn.Identity) for m in head):
            setattr(model, attr, nn.Identity())
    elif isinstance(head, (nn.Linear, nn.Identity)):
        setattr(model, attr, nn.Identity())
    else:
        raise ValueError(f"{type(model).__name__}.{attr}: unsupported classifier type {type(head).__name__}")
    return model


def torchvision_backbone(name: str, weights: WeightsEnum | None = None, **kwargs: Any) -> nn.Module:
    """torchvision model ``name`` with ``weights`` (None: random init), aux heads off, classifier removed.

    ``kwargs`` go to the torchvision builder; with ``weights``, torchvision loads them through
    its hub cache (downloading when missing).
    """
    if torchvision_family(name) in _AUX_FAMILIES:
        kwargs["aux_logits"] = False
        if weights is None:
            kwargs.setdefault("init_weights", True)  # the builder's default; passing it avoids a warning
    model = torchvision.models.get_model(name, weights=weights, progress=False, **kwargs)
    return strip_head(model)


@cache
def registry() -> dict[str, ArchSpec]:
    """All registry entries: torchvision classification models plus the CIFAR / small nets (built on first use)."""
    entries = {
        name: ArchSpec(partial(torchvision_backbone, name), _FAMILY_KEYS.get(torchvision_family(name)))
        for name in torchvision.models.list_models(module=torchvision.models)
    }
    entries["resnet18-cifar"] = ArchSpec(partial(resnet_cifar, 18), _FAMILY_KEYS["resnet"])
    entries["resnet50-cifar"] = ArchSpec(partial(resnet_cifar, 50), _FAMILY_KEYS["resnet"])
    entries["convnet-small"] = ArchSpec(SmallConvNet, "features.0.weight")
    return entries




def list_archs() -> list[str]:
    """All registry names, sorted."""
    return sorted(registry())


def check_arch(name: str, choices: Iterable[str] | None = None) -> None:
    """Raise ValueError naming the closest matches when ``name`` is not among ``choices`` (default: registry)."""
    choices = list(registry() if choices is None else choices)
    if name in choices:
        return
    close = difflib.get_close_matches(name, choices, n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(close)}?" if close else "; see the list of architectures"
    raise ValueError(f"unknown architecture {name!r}{hint}")


@contextmanager
def _parameters_on_meta() -> Iterator[None]:
    """Within the block, parameters and buffers registered on any module move to the meta device.

    Models then cost no memory and no initialisation, yet tensors computed while building
    (e.g. RegNet's block widths, which ``torch.device("meta")`` cannot turn into Python lists)
    stay real. Not thread-safe: the hooks are global while the block runs.
    """
    def param_hook(module: nn.Module, name: str, param: nn.Parameter | None) -> nn.Parameter | None:
        return None if param is None else nn.Parameter(param.to("meta"), param.requires_grad)

    def buffer_hook(module: nn.Module, name: str, buffer: torch.Tensor | None) -> torch.Tensor | None:
        return None if buffer is None else buffer.to("meta")

    handles = [
        register_module_parameter_registration_hook(param_hook),
        register_module_buffer_registration_hook(buffer_hook),
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def build_arch(name: str, device: str | torch.device = "cpu") -> nn.Module:
    """Backbone ``name`` (random init, classifier = identity) in eval mode on ``device``.

    ``device="meta"`` builds without memory or initialisation (for shapes only).
    """
    check_arch(name)
    if torch.device(device).type == "meta":
        with _parameters_on_meta():
            model = registry()[name].build()
    else:
        model = registry()[name].build().to(device)
    return model.eval()


@lru_cache(maxsize=None)
def arch_signature(name: str) -> dict[str, tuple[int, ...]]:
    """State-dict key -> tensor shape of backbone ``name`` (built on the meta device, cached)."""
    return {k: tuple(v.shape) for k, v in build_arch(name, device="meta").state_dict().items()}
