"""A corpus of bad checkpoint and embedding files, generated here: each must give its module's own
error type with a one-line message naming the file (never another exception, a hang or code run),
and a few must load. Dataset files have their corpus in test_datasets.py (BAD_INPUTS). Then the
same kinds of input end to end through the CLI: exit 2, one `error:` line per bad input, the good
inputs of the run still scored."""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import warnings
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
import torchvision
from typer.testing import CliRunner

from sslmon.api import score_embeddings
from sslmon.models.archs import SmallConvNet
from sslmon.cli import app
from sslmon.models.encoders import CheckpointError, load_checkpoint
from sslmon.evaluation import EvalConfig
from sslmon.io.inputs import InputError, load_embeddings

runner = CliRunner()


class RunsCode:
    """Unpickling this calls ``os.system(command)``: code from the file."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def small_state(seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return SmallConvNet().state_dict()


def saved(obj: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def npz_bytes(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def npy_header_claiming(shape: tuple[int, ...]) -> bytes:
    """A float32 .npy header for ``shape`` followed by 64 bytes of data."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "<f4", "fortran_order": False, "shape": shape})
    return buffer.getvalue() + bytes(64)


def safetensors_bytes(header: dict | None, header_len: int | None = None, body: bytes = b"") -> bytes:
    text = json.dumps(header).encode() if header is not None else b""
    return struct.pack("<Q", len(text) if header_len is None else header_len) + text + body


def zip_bytes(member: str, content: bytes | str) -> bytes:
    """A zip archive holding one member."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(member, content)
    return buffer.getvalue()


def torchscript_bytes() -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # torch.jit's deprecation notices
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(torch.jit.script(SmallConvNet()), buffer)
    return buffer.getvalue()


def wrong_shape_state() -> dict[str, torch.Tensor]:
    state = small_state()
    state["features.0.weight"] = torch.zeros(3, 3)
    return state


def make_file(tmp: Path, name: str, content: bytes | Callable[[Path], None]) -> Path:
    """``tmp/name`` holding ``content``, or made by ``content(path)`` (links, FIFOs, folders)."""
    path = tmp / name
    if callable(content):
        content(path)
    else:
        path.write_bytes(content)
    return path


def symlink_loop(path: Path) -> None:
    path.symlink_to(path.with_name("loop_b.pt"))
    path.with_name("loop_b.pt").symlink_to(path)


def to_dev_zero(path: Path) -> None:
    path.symlink_to("/dev/zero")


# name -> (file name, content); load_checkpoint(path, arch="auto") must raise CheckpointError naming the file.
BAD_CHECKPOINTS: dict[str, tuple[str, bytes | Callable[[Path], None]]] = {
    "empty": ("empty.pt", b""),
    "truncated": ("truncated.pt", saved(small_state())[:3000]),
    "random_bytes": ("random.pth", np.random.default_rng(0).bytes(4096)),
    "zip_not_torch": ("archive.pt", zip_bytes("data/readme.txt", "hello")),
    "pickle_payload": ("payload.pt", pickle.dumps(RunsCode("touch pwned_by_checkpoint"))),
    "torch_payload": ("payload2.ckpt", saved({"state_dict": small_state(), "x": RunsCode("touch pwned_by_checkpoint")})),
    "torchscript": ("scripted.pt", torchscript_bytes()),
    "wrong_shapes": ("wrong_shape.pt", saved(wrong_shape_state())),
    "no_tensors": ("stats.pt", saved({"epoch": 3, "loss": 0.5})),
    "safetensors_huge_header_length": ("huge_header.safetensors", safetensors_bytes({}, header_len=2**62)),
    "safetensors_huge_tensor": ("huge_tensor.safetensors", safetensors_bytes(
        {"features.0.weight": {"dtype": "F32", "shape": [2**40, 2**20], "data_offsets": [0, 2**62]}}, body=bytes(16))),
    "safetensors_garbage_header": ("garbage.safetensors", safetensors_bytes(None, header_len=12, body=b"\xff" * 12)),
    "symlink_loop": ("loop_a.pt", symlink_loop),
    "dev_zero": ("zero.pt", to_dev_zero),
    "fifo": ("pipe.pt", os.mkfifo),
    "directory": ("folder.pt", Path.mkdir),
    "unicode_name_with_spaces": ("épo ch ✓ 3.pt", b"\x80\x02garbage"),
    # found by test_fuzz_readers: a zip whose member name claims UTF-8 but is not (UnicodeDecodeError in zipfile)
    "zip_member_name_not_utf8": ("bad_name.pt", zip_bytes("archive/é.pkl", "x").replace("é".encode(), b"\x80\x80")),
}


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


Z = np.random.default_rng(0).normal(size=(12, 4))
y = np.arange(12) % 3

# name -> (file name, content); load_embeddings(path) must raise InputError naming the file.
BAD_EMBEDDINGS: dict[str, tuple[str, bytes | Callable[[Path], None]]] = {
    "object_array": ("objects.npy", npy_bytes(np.array([[1, "a"]], dtype=object))),
    "one_d": ("flat.npy", npy_bytes(np.zeros(5))),
    "zero_dimensions": ("d0.npz", npz_bytes(embeddings=np.zeros((5, 0)))),
    "zero_rows": ("n0.npy", npy_bytes(np.zeros((0, 4)))),
    "complex": ("complex.npy", npy_bytes(Z.astype(complex))),
    "strings_as_embeddings": ("text.npy", npy_bytes(np.array([["a", "b"]]))),
    "nan_float_labels": ("nan_labels.npz", npz_bytes(embeddings=Z, labels=np.where(y == 1, np.nan, y))),
    "wrong_label_length": ("short_labels.npz", npz_bytes(embeddings=Z, labels=y[:5])),
    "train_without_labels": ("half_train.npz", npz_bytes(embeddings=Z, train_embeddings=Z)),
    "mixed_label_kinds": ("mixed.npz", npz_bytes(embeddings=Z, labels=y.astype(str), train_embeddings=Z, train_labels=y)),
    "huge_claim_npy": ("huge.npy", npy_header_claiming((10**9, 10**6))),
    "huge_claim_npz_member": ("huge.npz", zip_bytes("embeddings.npy", npy_header_claiming((10**9, 10**6)))),
    "truncated_npz": ("cut.npz", npz_bytes(embeddings=Z)[:300]),
    "random_after_magic": ("noise.npy", b"\x93NUMPY" + np.random.default_rng(1).bytes(200)),
    "not_numpy": ("notes.npz", b"just some text\n"),
    "directory": ("folder.npz", Path.mkdir),
    "fifo": ("pipe.npy", os.mkfifo),
    "dev_zero": ("zero.npy", to_dev_zero),
    "missing": ("absent.npz", lambda path: None),
    # found by test_fuzz_readers: headers on which numpy's parser raises tokenize.TokenError
    "npy_header_open_string": ("open_string.npy", b"\x93NUMPY\x01\x00\x06\x00\x00\x00\x00'''"),
    "npy_header_open_brace": ("open_brace.npy", b"\x93NUMPY\x01\x00\x13\x00" + bytes(18) + b"{"),
}


@pytest.mark.parametrize("case", BAD_EMBEDDINGS)
def test_bad_embedding_file_is_a_one_line_input_error(case, tmp_path):
    name, content = BAD_EMBEDDINGS[case]
    path = make_file(tmp_path, name, content)
    with pytest.raises(InputError) as info:
        load_embeddings(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message, message


def test_string_labels_are_class_names_numbered_in_sorted_order(tmp_path):
    names = np.array(["dog", "cat", "emu"])[y]
    train = np.array(["emu", "ant"])[np.arange(12) % 2]
    path = tmp_path / "named.npz"
    np.savez(path, embeddings=Z, labels=names, train_embeddings=Z, train_labels=train)
    loaded = load_embeddings(path)
    _, codes = np.unique(np.concatenate([names, train]), return_inverse=True)  # ant=0 cat=1 dog=2 emu=3
    assert (loaded.labels == codes[:12]).all() and (loaded.train_labels == codes[12:]).all()


def test_huge_magnitude_embeddings_are_undefined_not_made_up():
    rng = np.random.default_rng(0)
    Z_fine = rng.normal(size=(40, 6))
    fine = score_embeddings(Z_fine, config=EvalConfig(k=2), metrics=["rankme", "l2_std"])
    assert fine.metrics["rankme"] is not None and fine.metrics["l2_std"] is not None
    huge = score_embeddings(Z_fine * 1e300, config=EvalConfig(k=2), metrics=["rankme", "l2_std"])
    assert huge.metrics == {"rankme": None, "l2_std": None}
    assert all("magnitude" in huge.errors[key] for key in ("rankme", "l2_std"))


# --------------------------------------------------------------------------- end to end through the CLI

FAST = ["--metrics", "rankme,l2_std", "-q", "--format", "json", "--no-cache"]


def error_lines(result) -> list[str]:
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit), result.exception  # no uncaught exception inside the runner
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def test_cli_bad_embedding_files_fail_alone(tmp_path):
    good = tmp_path / "good.npz"
    np.savez(good, embeddings=Z, labels=y)
    bad = [make_file(tmp_path, *BAD_EMBEDDINGS[c]) for c in ("nan_float_labels", "directory", "huge_claim_npy", "fifo")]
    result = runner.invoke(app, ["score", str(good), *map(str, bad), *FAST])
    assert result.exit_code == 2
    errors = error_lines(result)
    assert len(errors) == len(bad) and all(str(p) in line for p, line in zip(bad, errors))
    doc = json.loads(result.stdout)
    assert [r["path"] for r in doc["results"]] == [str(good)] and doc["results"][0]["metrics"]["rankme"] is not None


@pytest.fixture()
def tiny_data(tmp_path) -> str:
    rng = np.random.default_rng(0)
    labels = np.arange(30) % 3
    images = (rng.integers(0, 60, size=(30, 16, 16)) + 80 * labels[:, None, None]).astype(np.uint8)
    path = tmp_path / "tiny.npz"
    np.savez(path, images=images, labels=labels)
    return f"npz:{path}"


def test_cli_bad_checkpoints_fail_alone_and_run_nothing(tmp_path, tiny_data, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "ckpts"
    folder.mkdir()
    torch.save({"state_dict": small_state(2), "epoch": 2}, folder / "epoch_2.pt")
    nan_state = {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v for k, v in small_state(3).items()}
    torch.save({"state_dict": nan_state, "epoch": 3}, folder / "epoch_3.pt")
    bad = [make_file(folder, *BAD_CHECKPOINTS[c]) for c in ("pickle_payload", "symlink_loop", "fifo", "unicode_name_with_spaces")]
    bad.append(folder / "loop_b.pt")  # the other end of the loop
    result = runner.invoke(app, ["score", str(folder), "--dataset", tiny_data, "--arch", "convnet-small", *FAST])
    assert result.exit_code == 2
    errors = error_lines(result)
    assert len(errors) == len(bad) and all(any(str(p) in line for line in errors) for p in bad), errors
    assert not (tmp_path / "pwned_by_checkpoint").exists()
    by_epoch = {r["epoch"]: r for r in json.loads(result.stdout)["results"]}
    assert by_epoch[2]["metrics"]["rankme"] is not None
    assert by_epoch[3]["metrics"]["rankme"] is None and "NaN" in by_epoch[3]["errors"]["rankme"]


def test_cli_code_running_cifar_batch_needs_trust_data(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ["test_batch"] + [f"data_batch_{i}" for i in range(1, 6)]:
        batch = {b"data": rng.integers(0, 256, (6, 3072), dtype=np.uint8), b"labels": [0, 1, 2, 0, 1, 2]}
        if name == "data_batch_3":
            batch[b"batch_label"] = RunsCode("touch pwned_by_dataset")
        (folder / name).write_bytes(pickle.dumps(batch))
    torch.save({"state_dict": small_state(), "epoch": 1}, tmp_path / "epoch_1.pt")
    args = ["score", str(tmp_path / "epoch_1.pt"), "--dataset", f"cifar10:{tmp_path}", *FAST]
    refused = runner.invoke(app, args)
    assert refused.exit_code == 2
    (line,) = error_lines(refused)
    assert str(folder / "data_batch_3") in line and "--trust-data" in line
    assert not (tmp_path / "pwned_by_dataset").exists()
    trusted = runner.invoke(app, [*args, "--trust-data"])
    assert trusted.exit_code == 0, trusted.output
    assert (tmp_path / "pwned_by_dataset").exists()  # the flag is wired through: the payload ran


def test_cli_compare_offline_names_the_missing_file_and_scores_the_cached_model(tmp_path, tiny_data, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    cached = tmp_path / "torch" / "hub" / "checkpoints" / Path(torchvision.models.SqueezeNet1_1_Weights.DEFAULT.url).name
    cached.parent.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(torchvision.models.squeezenet1_1().state_dict(), cached)
    url = torchvision.models.MobileNet_V3_Small_Weights.DEFAULT.url
    result = runner.invoke(app, ["compare", "squeezenet1_1", "mobilenet_v3_small", "--dataset", tiny_data, "--offline",
                                 "--k", "3", *FAST])
    assert result.exit_code == 2
    (line,) = error_lines(result)
    assert line.startswith("error: mobilenet_v3_small: pretrained weights not cached and downloads are off")
    assert Path(url).name in line and str(cached.parent) in line and url in line
    assert [r["name"] for r in json.loads(result.stdout)["results"]] == ["squeezenet1_1"]


@pytest.mark.parametrize("array", [
    np.asfortranarray(np.arange(12.0).reshape(3, 4)), np.arange(6, dtype=">i4").reshape(2, 3),
    np.array([[True, False]]), np.zeros((0, 3), np.float16), np.array(["cat", "emu"]), np.float32(3.0),
], ids=["fortran", "big_endian", "bool", "empty", "strings", "scalar"])
def test_header_checked_reader_matches_numpy(array, tmp_path):
    """The header-checked readers return what numpy's own np.load returns, for .npy and (compressed) .npz."""
    from sslmon.io.inputs import read_npy, read_npz

    np.save(tmp_path / "a.npy", array)
    np.savez_compressed(tmp_path / "a.npz", x=array, y=np.arange(3))
    expected = np.load(tmp_path / "a.npy")
    for got in (read_npy(tmp_path / "a.npy"), read_npz(tmp_path / "a.npz", ["x"])[0]["x"]):
        assert got.dtype == expected.dtype and got.shape == expected.shape and (got == expected).all()
    assert read_npz(tmp_path / "a.npz", ["x"])[1] == ["x", "y"]
