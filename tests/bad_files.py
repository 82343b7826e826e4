"""A corpus of bad checkpoint and embedding files, generated here (used by test_models_encoders, test_io_inputs and
test_cli_bad_inputs): each must give its reader's own error with a one-line message naming the file, never another
exception, a hang or code run. Dataset files have their corpus in test_io_datasets.py (BAD_INPUTS)."""

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
import torch

from sslmon.models.archs import SmallConvNet


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
    # /etc/passwd given as a checkpoint: torch's legacy reader failed with "IndexError: list index out of range"
    "text_file": ("passwd.pt", b"root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"),
    # found by fuzzing (fuzzing.py): a zip whose member name claims UTF-8 but is not (UnicodeDecodeError in zipfile)
    "zip_member_name_not_utf8": ("bad_name.pt", zip_bytes("archive/é.pkl", "x").replace("é".encode(), b"\x80\x80")),
}


# a small labelled embedding set the bad files below are made from
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
    # found by fuzzing (fuzzing.py): headers on which numpy's parser raises tokenize.TokenError
    "npy_header_open_string": ("open_string.npy", b"\x93NUMPY\x01\x00\x06\x00\x00\x00\x00'''"),
    "npy_header_open_brace": ("open_brace.npy", b"\x93NUMPY\x01\x00\x13\x00" + bytes(18) + b"{"),
}
