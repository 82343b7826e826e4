"""Milestone checkpoints (sslmon.io.milestones): what `sslmon train` writes is what the checkpoint reader takes its
weights, epoch, architecture, normalisation and input size from."""

from __future__ import annotations

import torch

from sslmon.io import milestones
from sslmon.models.archs import build_arch
from sslmon.models.encoders import find_checkpoints, load_checkpoint, parse_epoch
from sslmon.training.train import save_milestone


def test_the_reader_takes_every_field_the_trainer_writes(tmp_path):
    torch.manual_seed(0)
    backbone = build_arch("convnet-small")
    mean, std = [0.1, 0.2, 0.3], [0.4, 0.5, 0.6]
    path = tmp_path / "renamed.pt"  # no epoch in the name: it must come from the file's own key
    save_milestone(path, backbone, 7, "convnet-small", "simclr", mean, std, input_size=32)
    stored = torch.load(path, weights_only=True)
    assert set(stored) == {milestones.WEIGHTS, milestones.EPOCH, milestones.ARCH, milestones.METHOD, milestones.NORMALIZATION,
                           milestones.TRAINING, milestones.INPUT_SIZE}
    enc = load_checkpoint(path)
    assert (enc.epoch, enc.arch, enc.input_size) == (7, "convnet-small", 32)
    assert "arch from checkpoint: convnet-small" in enc.notes
    assert enc.mean == tuple(mean) and enc.std == tuple(std)
    for key, value in backbone.state_dict().items():
        assert torch.equal(enc.model.state_dict()[key], value)


def test_milestone_names_sort_by_epoch_and_carry_it(tmp_path):
    for epoch in (10, 0, 2):
        (tmp_path / milestones.milestone_name(epoch)).write_bytes(b"")
    assert [p.name for p in find_checkpoints(tmp_path)] == ["epoch_0000.pt", "epoch_0002.pt", "epoch_0010.pt"]
    assert [parse_epoch(p) for p in find_checkpoints(tmp_path)] == [0, 2, 10]
