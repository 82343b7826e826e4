"""Milestone checkpoints, defined once: what ``sslmon train`` writes and :mod:`sslmon.models.encoders` reads back.

A milestone is ``epoch_NNNN.pt`` (:func:`milestone_name`), a ``torch.save`` of a dict that
``torch.load(path, weights_only=True)`` reads: the backbone's state dict under :data:`WEIGHTS`, the number of
finished training epochs under :data:`EPOCH` (0 = untrained), the :func:`sslmon.models.archs.build_arch` name under
:data:`ARCH`, the SSL method under :data:`METHOD`, and under :data:`NORMALIZATION` the per-channel ``mean`` and
``std`` (3 floats each, [0, 1] pixel units) that the images were normalised by, and under :data:`TRAINING` the
label-free losses of the run at that milestone (``train_loss``: mean training loss of the last epoch;
``heldout_loss``: the SSL loss on images not trained on; each a float or None), and under :data:`INPUT_SIZE` the
side in pixels of the images it was trained on (``sslmon score`` resizes to it; absent in milestones of sslmon <= 0.4).
The encoder reader also takes these keys from checkpoints written elsewhere (``arch`` and ``normalization`` are
optional there).
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

WEIGHTS = "state_dict"
EPOCH = "epoch"
ARCH = "arch"
METHOD = "method"
NORMALIZATION = "normalization"
MEAN = "mean"
STD = "std"
TRAINING = "training"
TRAINING_KEYS = ("train_loss", "heldout_loss")
INPUT_SIZE = "input_size"


def milestone_name(epoch: int) -> str:
    """The file name of the milestone after ``epoch`` finished epochs: ``epoch_0003.pt``."""
    return f"epoch_{epoch:04d}.pt"


def milestone(state: Mapping[str, Any], epoch: int, arch: str, method: str, mean: Sequence[float],
              std: Sequence[float], training: Mapping[str, float | None] | None = None,
              input_size: int | None = None) -> dict[str, Any]:
    """The dict that a milestone file holds (see the module docstring)."""
    return {
        **({INPUT_SIZE: int(input_size)} if input_size is not None else {}),
        TRAINING: {key: (training or {}).get(key) for key in TRAINING_KEYS},
        WEIGHTS: dict(state),
        EPOCH: epoch,
        ARCH: arch,
        METHOD: method,
        NORMALIZATION: {MEAN: [float(m) for m in mean], STD: [float(s) for s in std]},
    }


def stored_training(obj: Any) -> dict[str, float]:
    """The finite losses a checkpoint stores under :data:`TRAINING` (anything else there is ignored)."""
    block = obj.get(TRAINING) if isinstance(obj, Mapping) else None
    if not isinstance(block, Mapping):
        return {}
    return {key: float(block[key]) for key in TRAINING_KEYS
            if isinstance(block.get(key), (int, float)) and not isinstance(block.get(key), bool) and math.isfinite(block[key])}


def stored_input_size(obj: Any) -> int | None:
    """The input size (pixels) a checkpoint stores under :data:`INPUT_SIZE`; None when absent or not a positive int."""
    size = obj.get(INPUT_SIZE) if isinstance(obj, Mapping) else None
    return size if isinstance(size, int) and not isinstance(size, bool) and size > 0 else None
