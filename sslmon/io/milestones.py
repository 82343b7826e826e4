"""Milestone checkpoints, defined once: what ``sslmon train`` writes and :mod:`sslmon.models.encoders` reads back.

A milestone is ``epoch_NNNN.pt`` (:func:`milestone_name`), a ``torch.save`` of a dict that
``torch.load(path, weights_only=True)`` reads: the backbone's state dict under :data:`WEIGHTS`, the number of
finished training epochs under :data:`EPOCH` (0 = untrained), the :func:`sslmon.models.archs.build_arch` name under
:data:`ARCH`, the SSL method under :data:`METHOD`, and under :data:`NORMALIZATION` the per-channel ``mean`` and
``std`` (3 floats each, [0, 1] pixel units) that the images were normalised by. The encoder reader also takes
these keys from checkpoints written elsewhere (``arch`` and ``normalization`` are optional there).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

WEIGHTS = "state_dict"
EPOCH = "epoch"
ARCH = "arch"
METHOD = "method"
NORMALIZATION = "normalization"
MEAN = "mean"
STD = "std"


def milestone_name(epoch: int) -> str:
    """The file name of the milestone after ``epoch`` finished epochs: ``epoch_0003.pt``."""
    return f"epoch_{epoch:04d}.pt"


def milestone(state: Mapping[str, Any], epoch: int, arch: str, method: str, mean: Sequence[float],
              std: Sequence[float]) -> dict[str, Any]:
    """The dict that a milestone file holds (see the module docstring)."""
    return {
        WEIGHTS: dict(state),
        EPOCH: epoch,
        ARCH: arch,
        METHOD: method,
        NORMALIZATION: {MEAN: [float(m) for m in mean], STD: [float(s) for s in std]},
    }
