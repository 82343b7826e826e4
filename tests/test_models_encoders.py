"""Encoder sources: checkpoint formats, key cleaning, arch detection, safety, torchvision cache."""

from __future__ import annotations

import hashlib

import os
import sys
from pathlib import Path

import pytest
import torch
import torchvision
from hypothesis import given
from hypothesis import strategies as st
from torch import Tensor, nn

from bad_files import BAD_CHECKPOINTS, make_file, saved, small_state
from fuzzing import FUZZ, blobs, only_own_errors, written
from helpers import embed, serve_weights
from sslmon.models.archs import SmallConvNet, arch_signature
from sslmon.models.encoders import (
    CheckpointError,
    build_arch,
    find_checkpoints,
    load_checkpoint,
    load_torchvision,
    parse_epoch,
)


def source_model(arch: str = "convnet-small") -> nn.Module:
    """Seeded backbone whose BatchNorm running statistics differ from their defaults."""
    torch.manual_seed(0)
    model = build_arch(arch)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.num_batches_tracked.fill_(7)
    return model.eval()


@pytest.fixture(scope="module")
def model() -> nn.Module:
    return source_model()


@pytest.fixture(scope="module")
def state(model: nn.Module) -> dict[str, Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def prefixed(prefix: str, state: dict[str, Tensor]) -> dict[str, Tensor]:
    return {prefix + k: v for k, v in state.items()}


# --------------------------------------------------------------------------- formats and wrappers

WRAPPINGS = {
    "raw.pt": lambda s: s,
    "wrapped_state_dict.pth": lambda s: {"state_dict": s, "optimizer": {"lr": 0.1}},
    "wrapped_model.ckpt": lambda s: {"model": s},
    "wrapped_model_ema.bin": lambda s: {"model_ema": s},
    "wrapped_state_dict_ema.pt": lambda s: {"state_dict_ema": prefixed("module.", s)},
    "wrapped_encoder.pt": lambda s: {"encoder": s},
    "wrapped_backbone.pt": lambda s: {"backbone": s},
    "lightning.ckpt": lambda s: {
        "state_dict": prefixed("model.", s),
        "hyper_parameters": {"arch": "convnet-small", "lr": 0.5},
        "epoch": 7,
        "global_step": 700,
    },
    "dataparallel.pt": lambda s: prefixed("module.", s),
    "compiled.pt": lambda s: prefixed("_orig_mod.", s),
    "all_prefixes.pt": lambda s: {"model": prefixed("module._orig_mod.backbone.", s)},
}


@pytest.mark.parametrize("file_name", WRAPPINGS)
def test_checkpoint_wrappings_load_identical_embeddings(file_name, tmp_path, model, state, rgb_images):
    path = tmp_path / file_name
    torch.save(WRAPPINGS[file_name](state), path)
    encoder = load_checkpoint(path)
    assert encoder.arch == "convnet-small"
    assert encoder.name == file_name and encoder.path == str(path)
    assert not encoder.model.training
    assert torch.equal(embed(encoder.model, rgb_images), embed(model, rgb_images))
    assert encoder.model.state_dict()["features.1.num_batches_tracked"].item() == 7


def test_lightning_checkpoint_metadata(tmp_path, state):
    path = tmp_path / "last.ckpt"
    torch.save(WRAPPINGS["lightning.ckpt"](state), path)
    encoder = load_checkpoint(path)
    assert encoder.epoch == 7
    assert "arch from checkpoint: convnet-small" in encoder.notes
    assert "stripped key prefix 'model.'" in encoder.notes
    assert encoder.mean is None and encoder.std is None and encoder.input_size is None


def test_safetensors_loads_identical_embeddings(tmp_path, model, state, rgb_images):
    from safetensors.torch import save_file

    path = tmp_path / "weights.safetensors"
    save_file(prefixed("module.", state), str(path))
    encoder = load_checkpoint(path)
    assert encoder.arch == "convnet-small"
    assert torch.equal(embed(encoder.model, rgb_images), embed(model, rgb_images))


def test_safetensors_missing_package_names_extra(tmp_path, state, monkeypatch):
    from safetensors.torch import save_file

    path = tmp_path / "weights.safetensors"
    save_file(state, str(path))
    monkeypatch.setitem(sys.modules, "safetensors.torch", None)  # makes the import fail
    with pytest.raises(CheckpointError, match=r"pip install sslmon\[safetensors\]") as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)


def shifted(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Different float weights with the same keys and shapes (the network a checkpoint should not use)."""
    return {k: v + 1 if v.is_floating_point() else v for k, v in state.items()}


# Checkpoints that hold two networks, the one expected to be used (``state``) and another, with the
# note naming the one left out. Heads and projectors as the methods' own code names them.
TWO_NETWORKS = {
    "dino_checkpoint.pth": (
        lambda s: {"student": {**prefixed("module.backbone.", shifted(s)), "module.head.mlp.0.weight": torch.ones(4, 8)},
                   "teacher": {**prefixed("backbone.", s), "head.mlp.0.weight": torch.ones(4, 8)},
                   "optimizer": {}, "epoch": 3, "args": {"arch": "vit_small"}, "dino_loss": {"center": torch.zeros(1, 4)}},
        "checkpoint also holds 'student', not used: the teacher (EMA of the student) is the network DINO/iBOT evaluate",
    ),
    "ibot_teacher_only.pth": (
        lambda s: {"teacher": {**prefixed("backbone.", s), "head.last_layer.weight": torch.ones(4, 8)}, "epoch": 3},
        None,
    ),
    "byol.pt": (
        lambda s: {"online_network": {**prefixed("encoder.", s), "projector.net.0.weight": torch.ones(4, 8)},
                   "target_network": {**prefixed("encoder.", shifted(s)), "projector.net.0.weight": torch.ones(4, 8)},
                   "predictor": {"net.0.weight": torch.ones(4, 4)}, "epoch": 3},
        "checkpoint also holds 'target_network', not used: the online network is the one BYOL evaluates",
    ),
    "timm_checkpoint.pth": (
        lambda s: {"state_dict": s, "state_dict_ema": shifted(s), "arch": "convnet-small", "epoch": 3},
        "checkpoint also holds 'state_dict_ema', not used: 'state_dict' comes first in the order "
        "state_dict/model/model_ema/state_dict_ema/encoder/backbone/teacher/student/online_network/target_network",
    ),
    "timm_ema_only.pth": (lambda s: {"state_dict_ema": prefixed("module.", s), "epoch": 3}, None),
}


@pytest.mark.parametrize("file_name", TWO_NETWORKS)
def test_multi_network_checkpoints_use_the_evaluated_network(file_name, tmp_path, model, state, rgb_images):
    make, note = TWO_NETWORKS[file_name]
    path = tmp_path / file_name
    torch.save(make(state), path)
    encoder = load_checkpoint(path)
    assert encoder.arch == "convnet-small" and encoder.epoch == 3
    assert torch.equal(embed(encoder.model, rgb_images), embed(model, rgb_images))
    if note is not None:
        assert note in encoder.notes
    else:
        assert not any("also holds" in n for n in encoder.notes)


@pytest.mark.filterwarnings("ignore:`torch.jit.*` is deprecated:FutureWarning")
def test_torchscript_needs_trust_and_returns_module_output(tmp_path, model, rgb_images):
    path = tmp_path / "scripted_epoch_3.pt"
    torch.jit.save(torch.jit.script(model), str(path))
    with pytest.raises(CheckpointError, match="allow it with trust_checkpoints"):
        load_checkpoint(path)
    encoder = load_checkpoint(path, trust=True)
    assert encoder.arch == "torchscript" and encoder.epoch == 3
    assert torch.allclose(embed(encoder.model, rgb_images), embed(model, rgb_images), atol=1e-6)


def test_pickled_module_loads_only_when_trusted(tmp_path, model, rgb_images):
    path = tmp_path / "whole_model.pt"
    torch.save(model, path)
    with pytest.raises(CheckpointError, match=r"needs arbitrary unpickling \(sslmon\.models\.archs\.SmallConvNet\)"):
        load_checkpoint(path)
    encoder = load_checkpoint(path, trust=True)
    assert torch.equal(embed(encoder.model, rgb_images), embed(model, rgb_images))


# --------------------------------------------------------------------------- key cleaning


def test_training_parts_and_classifier_dropped_and_reported(tmp_path, model, state, rgb_images):
    extra = {
        "projector.0.weight": torch.zeros(8, 128), "projector.0.bias": torch.zeros(8),
        "projection_head.layer.weight": torch.zeros(8, 8),
        "predictor.0.weight": torch.zeros(8, 8),
        "queue": torch.zeros(8, 16), "queue_ptr": torch.zeros(1, dtype=torch.long),
        "momentum_encoder.features.0.weight": torch.zeros(32, 3, 3, 3),
        "encoder_k.features.0.weight": torch.zeros(32, 3, 3, 3),
        "teacher.features.0.weight": torch.zeros(32, 3, 3, 3),
        "fc.weight": torch.zeros(10, 128), "fc.bias": torch.zeros(10),
    }
    path = tmp_path / "simclr.pt"
    torch.save(prefixed("module.", {**prefixed("encoder.", state), **extra}), path)
    encoder = load_checkpoint(path)
    assert torch.equal(embed(encoder.model, rgb_images), embed(model, rgb_images))
    assert "stripped key prefix 'module.encoder.'" in encoder.notes
    dropped = next(n for n in encoder.notes if n.startswith("dropped 9 training-only keys"))
    for part in ("projector: 2", "queue: 1", "queue_ptr: 1", "momentum_encoder: 1", "encoder_k: 1", "teacher: 1"):
        assert part in dropped
    assert "dropped 2 classifier-head keys (fc: 2)" in encoder.notes


def test_vit_encoder_keys_are_not_mistaken_for_a_wrapper():
    signature = arch_signature("vit_b_32")
    assert "encoder.ln.weight" in signature and "class_token" in signature  # the keys the test relies on
    state = {k: torch.empty(shape, device="meta") for k, shape in signature.items()}
    from sslmon.models.encoders import _clean, _matches

    notes: list[str] = []
    cleaned = _clean(prefixed("module.", state), notes)
    assert cleaned.keys() == state.keys() and notes == ["stripped key prefix 'module.'"]
    assert _matches(cleaned, "vit_b_32")


def test_missing_batchnorm_counters_are_tolerated(tmp_path, model, state, rgb_images):
    path = tmp_path / "old_torch.pt"
    torch.save({k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}, path)
    encoder = load_checkpoint(path)
    assert encoder.arch == "convnet-small" and encoder.missing_keys == []
    assert torch.equal(embed(encoder.model, rgb_images), embed(model, rgb_images))


def test_missing_backbone_weight_is_an_error(tmp_path, state):
    path = tmp_path / "missing.pt"
    torch.save({k: v for k, v in state.items() if k != "features.4.weight"}, path)
    with pytest.raises(CheckpointError, match=r"1 convnet-small backbone weights missing: features\.4\.weight"):
        load_checkpoint(path, arch="convnet-small")
    with pytest.raises(CheckpointError, match="no registry architecture matches .*give its arch"):
        load_checkpoint(path)


def test_unexpected_key_is_an_error(tmp_path, state):
    path = tmp_path / "foreign.pt"
    torch.save({**state, "extra.weight": torch.zeros(3)}, path)
    with pytest.raises(CheckpointError, match=r"1 keys not in convnet-small: extra\.weight"):
        load_checkpoint(path, arch="convnet-small")


def test_wrong_shape_is_an_error(tmp_path):
    path = tmp_path / "imagenet_stem.pt"
    torch.save(build_arch("resnet18").state_dict(), path)
    with pytest.raises(CheckpointError, match=r"wrong shape for resnet18-cifar: conv1\.weight \(64, 3, 7, 7\) vs \(64, 3, 3, 3\)"):
        load_checkpoint(path, arch="resnet18-cifar")


def test_unknown_arch_is_a_value_error_with_suggestion(tmp_path):
    with pytest.raises(ValueError, match="did you mean resnet18"):
        build_arch("resnet-18")
    with pytest.raises(ValueError, match="convnet-small"):
        load_checkpoint(tmp_path / "any.pt", arch="convnet_small")


# --------------------------------------------------------------------------- arch detection


@pytest.mark.parametrize("arch", ["convnet-small", "resnet18-cifar", "resnet18"])
def test_auto_detects_arch_from_keys_and_shapes(arch, tmp_path, rgb_images):
    source = source_model(arch)
    path = tmp_path / f"{arch}.pt"
    torch.save(source.state_dict(), path)
    encoder = load_checkpoint(path)
    assert encoder.arch == arch
    assert f"arch auto-detected: {arch}" in encoder.notes
    assert torch.equal(embed(encoder.model, rgb_images), embed(source, rgb_images))


def test_stored_arch_that_does_not_match_falls_back_to_detection(tmp_path):
    path = tmp_path / "mislabelled.pt"
    torch.save({"state_dict": build_arch("resnet18-cifar").state_dict(), "arch": "resnet18"}, path)
    encoder = load_checkpoint(path)
    assert encoder.arch == "resnet18-cifar"
    assert "stored arch 'resnet18' does not match the weights; detecting from the weights" in encoder.notes


# --------------------------------------------------------------------------- safety and corrupt files


class WritesMarker:
    """Unpickling this runs ``open(marker, "w")``, i.e. code from the file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def test_code_running_pickle_is_refused_by_default(tmp_path, state):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": state, "payload": WritesMarker(marker)}, path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert message.startswith(f"{path}: needs arbitrary unpickling (io.open), which can run code")
    assert message.endswith("allow it with trust_checkpoints if you trust this file")
    assert info.value.param == "trust_checkpoints"  # the CLI adds its flag, --trust-checkpoints
    assert not marker.exists()
    load_checkpoint(path, trust=True)  # control: the payload is live
    assert marker.exists()


CORRUPTIONS = {
    "random.pt": lambda good: os.urandom(4096),
    "truncated.pt": lambda good: good[: len(good) // 2],
    "empty.pth": lambda good: b"",
    "text.ckpt": lambda good: b"not a checkpoint\n",
    "bad.safetensors": lambda good: good[:100],
}


@pytest.mark.parametrize("file_name", CORRUPTIONS)
def test_corrupt_file_is_a_one_line_error_naming_it(file_name, tmp_path, state):
    good = tmp_path / "good.pt"
    torch.save(state, good)
    path = tmp_path / file_name
    path.write_bytes(CORRUPTIONS[file_name](good.read_bytes()))
    for trust in (False, True):
        with pytest.raises(CheckpointError) as info:
            load_checkpoint(path, trust=trust)
        message = str(info.value)
        assert message.startswith(f"{path}: ") and "\n" not in message


def test_no_state_dict_is_an_error(tmp_path):
    path = tmp_path / "stats.pt"
    torch.save({"epoch": 3, "loss": 0.5}, path)
    with pytest.raises(CheckpointError, match="no state dict found.*keys epoch, loss"):
        load_checkpoint(path)


# --------------------------------------------------------------------------- epochs and normalisation


@pytest.mark.parametrize(
    "name, epoch",
    [
        ("epoch=19-step=4000.ckpt", 19), ("epoch_19.pt", 19), ("simclr-ep20.pth", 20), ("EPOCH-005.pt", 5),
        ("ckpt_0020.pt", 20), ("milestone-40.pt", 40), ("init.pt", 0), ("resnet18_initial.pth", 0),
        ("untrained.safetensors", 0), ("simclr_100.pt", 100), ("step=500.ckpt", None), ("resnet18.pt", None),
        ("last.ckpt", None), ("run_3_40.pt", None), ("run3_40.pt", 40),
    ],
)
def test_parse_epoch_from_name(name, epoch):
    assert parse_epoch(Path("runs") / name) == epoch


def test_parse_epoch_prefers_checkpoint_entry():
    assert parse_epoch("epoch_3.pt", {"epoch": 12}) == 12
    assert parse_epoch("epoch_3.pt", {"epoch": True}) == 3
    assert parse_epoch("last.ckpt", {"state_dict": {}}) is None


def test_find_checkpoints_orders_by_epoch(tmp_path):
    names = ["epoch_10.pt", "epoch_2.pth", "init.pt", "last.ckpt", "model.safetensors", "epoch=1-step=50.ckpt", "w.bin"]
    for name in [*names, "notes.txt"]:
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub.pt").mkdir()
    order = [p.name for p in find_checkpoints(tmp_path)]
    assert order == ["init.pt", "epoch=1-step=50.ckpt", "epoch_2.pth", "epoch_10.pt", "last.ckpt", "model.safetensors", "w.bin"]
    with pytest.raises(CheckpointError, match="not a directory"):
        find_checkpoints(tmp_path / "nowhere")


@pytest.mark.parametrize(
    "extra",
    [
        {"mean": [0.5, 0.4, 0.3], "std": torch.tensor([0.2, 0.2, 0.1])},
        {"normalization": {"mean": (0.5, 0.4, 0.3), "std": [0.2, 0.2, 0.1]}},
    ],
)
def test_stored_normalisation_and_epoch(extra, tmp_path, state):
    path = tmp_path / "epoch_4.pt"
    torch.save({"state_dict": state, "epoch": 5, **extra}, path)
    encoder = load_checkpoint(path)
    assert encoder.epoch == 5
    assert encoder.mean == pytest.approx((0.5, 0.4, 0.3)) and encoder.std == pytest.approx((0.2, 0.2, 0.1))


# --------------------------------------------------------------------------- torchvision


def test_torchvision_weights_come_from_the_hub_cache(torch_home, rgb_images, monkeypatch):
    weights = torchvision.models.ResNet18_Weights.DEFAULT
    torch.manual_seed(3)
    full = torchvision.models.resnet18()  # random weights standing in for the pretrained ones
    blob = torch_home / "blob"
    torch.save(full.state_dict(), blob)
    # the cached file's name carries the hash prefix of its content, as torchvision's names do
    name = f"resnet18-{hashlib.sha256(blob.read_bytes()).hexdigest()[:8]}.pth"
    monkeypatch.setattr(weights.value, "url", f"https://download.pytorch.org/models/{name}")
    cached = torch_home / "hub" / "checkpoints" / name
    cached.parent.mkdir(parents=True)
    blob.rename(cached)
    encoder = load_torchvision("resnet18")
    full.fc = nn.Identity()
    assert torch.equal(embed(encoder.model, rgb_images), embed(full, rgb_images))
    assert (encoder.name, encoder.arch, encoder.path, encoder.epoch) == ("resnet18", "resnet18", None, None)
    assert encoder.mean == pytest.approx((0.485, 0.456, 0.406)) and encoder.std == pytest.approx((0.229, 0.224, 0.225))
    assert encoder.input_size == 224


def test_torchvision_cached_file_is_unpickled_weights_only(torch_home, state, monkeypatch):
    weights = torchvision.models.ResNet18_Weights.DEFAULT
    blob = torch_home / "blob"
    marker = torch_home / "pwned"
    torch.save({"payload": WritesMarker(marker)}, blob)
    name = f"resnet18-{hashlib.sha256(blob.read_bytes()).hexdigest()[:8]}.pth"  # the hash matches: it gets loaded
    monkeypatch.setattr(weights.value, "url", f"https://download.pytorch.org/models/{name}")
    (torch_home / "hub" / "checkpoints").mkdir(parents=True)
    blob.rename(torch_home / "hub" / "checkpoints" / name)
    with pytest.raises(CheckpointError, match="not a plain weights file"):
        load_torchvision("resnet18")
    assert not marker.exists()


def test_cached_weights_that_do_not_match_the_hash_in_their_name_are_refused(torch_home):
    cached = torch_home / "hub" / "checkpoints" / Path(torchvision.models.ResNet18_Weights.DEFAULT.url).name
    cached.parent.mkdir(parents=True)
    torch.manual_seed(3)
    torch.save(torchvision.models.resnet18().state_dict(), cached)  # loads fine, but is not the file its name promises
    digest = hashlib.sha256(cached.read_bytes()).hexdigest()
    assert not digest.startswith("f37072fd")
    with pytest.raises(CheckpointError) as info:
        load_torchvision("resnet18", download=False)
    message = str(info.value)
    assert message.startswith("resnet18: cached weights ") and str(cached) in message and "\n" not in message
    assert f"SHA-256 {digest[:8]}..., name says f37072fd" in message and info.value.param == "weights"


def test_cached_weights_that_are_a_fifo_are_refused_without_hanging(torch_home):
    cached = torch_home / "hub" / "checkpoints" / Path(torchvision.models.ResNet18_Weights.DEFAULT.url).name
    cached.parent.mkdir(parents=True)
    os.mkfifo(cached)  # reading it would wait for a writer forever
    with pytest.raises(CheckpointError, match="not a regular file"):
        load_torchvision("resnet18", download=False)


def test_missing_weights_are_downloaded_hash_checked_into_torch_home(torch_home, weights_server, monkeypatch, capsys):
    folder, base, requested = weights_server
    torch.manual_seed(4)
    served = torchvision.models.squeezenet1_1().state_dict()  # random weights standing in for the real ones
    name = serve_weights(folder, base, served, monkeypatch)
    encoder = load_torchvision("squeezenet1_1", download=True, progress=False)
    cached = torch_home / "hub" / "checkpoints" / name
    assert requested == [f"/{name}"]
    assert cached.read_bytes() == (folder / name).read_bytes()
    loaded = encoder.model.state_dict()
    assert loaded and all(torch.equal(v, served[k]) for k, v in loaded.items())
    assert f"downloaded from {base}/{name} (SHA-256 prefix checked)" in encoder.notes
    assert capsys.readouterr().out == ""  # torch.hub's "Downloading: ..." line must not mix with results on stdout
    load_torchvision("squeezenet1_1", download=True)  # second time: from the cache, no request
    assert requested == [f"/{name}"]


def test_download_with_a_wrong_hash_is_one_line_and_leaves_nothing(torch_home, weights_server, monkeypatch):
    folder, base, requested = weights_server
    name = serve_weights(folder, base, torchvision.models.squeezenet1_1().state_dict(), monkeypatch, hash_prefix="0badc0de")
    with pytest.raises(CheckpointError) as info:
        load_torchvision("squeezenet1_1", download=True, progress=False)
    message = str(info.value)
    assert message.startswith(f"squeezenet1_1: download of {name} from {base}/{name} failed (")
    assert "0badc0de" in message and "\n" not in message
    assert requested == [f"/{name}"]
    assert list((torch_home / "hub" / "checkpoints").iterdir()) == []


def test_downloaded_file_is_unpickled_weights_only_and_removed(torch_home, weights_server, monkeypatch):
    folder, base, _ = weights_server
    marker = torch_home / "pwned"
    serve_weights(folder, base, {"payload": WritesMarker(marker)}, monkeypatch)
    with pytest.raises(CheckpointError, match="download of .* failed .*UnpicklingError"):
        load_torchvision("squeezenet1_1", download=True, progress=False)
    assert not marker.exists()
    assert list((torch_home / "hub" / "checkpoints").iterdir()) == []


@pytest.mark.parametrize("how", ["argument", "environment"])
def test_offline_weights_not_cached_fail_fast_without_network(how, torch_home, weights_server, monkeypatch):
    folder, base, requested = weights_server
    name = serve_weights(folder, base, {"w": torch.zeros(1)}, monkeypatch)
    if how == "environment":
        monkeypatch.setenv("SSLMON_OFFLINE", "1")
    with pytest.raises(CheckpointError) as info:
        load_torchvision("squeezenet1_1", download=False if how == "argument" else None)
    assert str(info.value) == (
        f"squeezenet1_1: pretrained weights not cached and downloads are off (offline or SSLMON_OFFLINE=1); "
        f"put {name} into {torch_home / 'hub' / 'checkpoints'}/ (from {base}/{name}) or use `weights=\"none\"`"
    )
    assert requested == []


def test_torchvision_random_init_uses_default_preprocessing(torch_home):
    encoder = load_torchvision("mobilenet_v3_small", weights="none")
    assert encoder.epoch == 0 and encoder.input_size == 224
    assert encoder.mean == pytest.approx((0.485, 0.456, 0.406))
    assert embed(encoder.model, torch.rand(2, 3, 32, 32)).shape == (2, 576)
    with pytest.raises(ValueError, match="IMAGENET1K_V1"):
        load_torchvision("mobilenet_v3_small", weights="imagenet")
    with pytest.raises(ValueError, match="did you mean resnet18"):
        load_torchvision("resnet-18")


# --------------------------------------------------------------------------- registry


@pytest.mark.parametrize("case", BAD_CHECKPOINTS)
def test_bad_checkpoint_is_a_one_line_checkpoint_error(case, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a payload that ran would leave pwned_by_checkpoint here
    name, content = BAD_CHECKPOINTS[case]
    path = make_file(tmp_path, name, content)
    arch = "convnet-small" if case == "wrong_shapes" else "auto"
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path, arch=arch)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message, message
    assert not (tmp_path / "pwned_by_checkpoint").exists()


def test_a_text_file_is_not_a_pytorch_checkpoint_and_torch_messages_are_shown_whole(tmp_path):
    path = make_file(tmp_path, *BAD_CHECKPOINTS["text_file"])
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert str(info.value) == (f"{path}: not a PyTorch checkpoint (neither a zip archive nor a pickle: it starts with "
                               "b'root:x:0')")
    # a torch message longer than the old 200-character cut is shown whole, on one line
    path = make_file(tmp_path, *BAD_CHECKPOINTS["truncated"])
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    try:
        torch.load(path, weights_only=True)
    except Exception as exc:  # torch's own message, independently
        torch_message = " ".join(str(exc).split())
    assert torch_message in str(info.value) and "\n" not in str(info.value) and not str(info.value).endswith("...)")


def test_half_precision_and_nan_checkpoints_load(tmp_path):
    """fp16 / bf16 weights load as float32 copies of the stored values; NaN weights load too (the
    metrics then say the embeddings are not finite, see the CLI test below)."""
    state = small_state(1)
    images = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    for dtype in (torch.float16, torch.bfloat16):
        stored = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
        path = tmp_path / f"weights_{str(dtype)[6:]}.pt"
        torch.save(stored, path)
        reference = SmallConvNet().eval()
        reference.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in stored.items()})
        with torch.no_grad():
            assert torch.equal(load_checkpoint(path).model(images), reference(images))
    nan_state = {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v for k, v in state.items()}
    torch.save(nan_state, tmp_path / "diverged.pt")
    with torch.no_grad():
        assert torch.isnan(load_checkpoint(tmp_path / "diverged.pt").model(images)).all()


def test_unicode_named_good_checkpoint_loads(tmp_path):
    path = tmp_path / "épo ch ✓ 3.pt"
    torch.save(small_state(), path)
    encoder = load_checkpoint(path)
    assert encoder.name == "épo ch ✓ 3.pt" and encoder.epoch == 3


def checkpoint_seeds() -> list[bytes]:
    from safetensors.torch import save

    torch.manual_seed(0)
    state = SmallConvNet().state_dict()
    return [saved({"state_dict": state, "epoch": 1}), saved({"w": torch.arange(6.0)}), save({"w": torch.arange(6.0)})]


CHECKPOINT_SEEDS = checkpoint_seeds()


@FUZZ
@given(content=blobs(CHECKPOINT_SEEDS), suffix=st.sampled_from([".pt", ".safetensors"]))
def test_fuzz_checkpoint_reader(content: bytes, suffix: str) -> None:
    with written(f"ckpt{suffix}", content) as path:
        only_own_errors(lambda: load_checkpoint(path), CheckpointError, path)


def test_fuzz_seed_is_a_valid_checkpoint() -> None:
    """The unmutated seed loads (else the fuzzing would only ever reach the first error path)."""
    with written("ckpt.pt", CHECKPOINT_SEEDS[0]) as path:
        assert load_checkpoint(path).arch == "convnet-small"
