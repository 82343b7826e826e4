"""Property-based fuzzing (hypothesis) of the readers of untrusted files: checkpoints, embedding
files and dataset files (idx, CIFAR pickle, image). Each gets random bytes or a valid file with
bytes overwritten and/or cut short; the reader must either succeed or raise its module's own error
(CheckpointError, InputError, DatasetError) with a one-line message naming the file: never another
exception. By default deterministic (the same 200 examples per reader on every run, about 10 s for
the file on two cores); SSLMON_FUZZ_EXAMPLES=N runs N freshly random examples per reader instead
(3,000 take about two minutes)."""

from __future__ import annotations

import gzip
import io
import os
import pickle
import tempfile
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from sslmon.models.archs import SmallConvNet
from sslmon.io.datasets import DatasetError, load_dataset
from sslmon.models.encoders import CheckpointError, load_checkpoint
from sslmon.io.inputs import InputError, load_embeddings

_LONG_RUN = os.environ.get("SSLMON_FUZZ_EXAMPLES")
FUZZ = settings(
    max_examples=int(_LONG_RUN or 200),
    deadline=None,
    derandomize=not _LONG_RUN,  # CI sees the same examples on every run: no flaky failures
    database=None,  # writes nothing into the working tree
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    """One of ``seeds`` with up to 8 bytes overwritten (biased to the first 256, where headers are) and
    maybe cut short."""
    raw = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(0, 8))):
        end = min(len(raw), 256) if draw(st.booleans()) else len(raw)
        raw[draw(st.integers(0, end - 1))] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        raw = raw[: draw(st.integers(0, len(raw)))]
    return bytes(raw)


def blobs(seeds: list[bytes]) -> st.SearchStrategy[bytes]:
    """Random bytes, or a mutated valid file."""
    return st.one_of(st.binary(max_size=1024), mutated(seeds))


@contextmanager
def written(name: str, content: bytes) -> Iterator[Path]:
    """A fresh folder holding ``name`` with ``content`` (hypothesis examples cannot share tmp_path)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        yield path


def only_own_errors(call: Callable[[], object], error: type[Exception], path: Path) -> None:
    """``call()`` succeeds or raises ``error`` with one line naming ``path``; anything else propagates."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            call()
    except error as exc:
        message = str(exc)
        assert str(path) in message and "\n" not in message, message


def torch_bytes(obj: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def checkpoint_seeds() -> list[bytes]:
    from safetensors.torch import save

    torch.manual_seed(0)
    state = SmallConvNet().state_dict()
    return [torch_bytes({"state_dict": state, "epoch": 1}), torch_bytes({"w": torch.arange(6.0)}), save({"w": torch.arange(6.0)})]


CHECKPOINT_SEEDS = checkpoint_seeds()


@FUZZ
@given(content=blobs(CHECKPOINT_SEEDS), suffix=st.sampled_from([".pt", ".safetensors"]))
def test_fuzz_checkpoint_reader(content: bytes, suffix: str) -> None:
    with written(f"ckpt{suffix}", content) as path:
        only_own_errors(lambda: load_checkpoint(path), CheckpointError, path)


def embedding_seeds() -> list[bytes]:
    rng = np.random.default_rng(0)
    Z, y = rng.normal(size=(10, 4)).astype(np.float32), np.arange(10) % 2
    out = []
    for save in (lambda f: np.save(f, Z), lambda f: np.savez(f, embeddings=Z, labels=y),
                 lambda f: np.savez_compressed(f, embeddings=Z, labels=y.astype(str), train_embeddings=Z, train_labels=y.astype(str))):
        buffer = io.BytesIO()
        save(buffer)
        out.append(buffer.getvalue())
    return out


@FUZZ
@given(content=blobs(embedding_seeds()), suffix=st.sampled_from([".npy", ".npz"]))
def test_fuzz_embedding_reader(content: bytes, suffix: str) -> None:
    with written(f"emb{suffix}", content) as path:
        only_own_errors(lambda: load_embeddings(path), InputError, path)


def idx_bytes(array: np.ndarray) -> bytes:
    return bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, ">u4").tobytes() + array.tobytes()


IDX_IMAGES = idx_bytes(np.arange(4 * 28 * 28, dtype=np.uint8).reshape(4, 28, 28))
IDX_LABELS = idx_bytes(np.array([0, 1, 2, 1], np.uint8))


@FUZZ
@given(content=blobs([IDX_IMAGES, IDX_LABELS, gzip.compress(IDX_IMAGES), gzip.compress(IDX_LABELS)]),
       which=st.sampled_from(["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]))
def test_fuzz_idx_reader(content: bytes, which: str) -> None:
    with written(which, content) as path:
        for stem, good in (("t10k-images-idx3-ubyte", IDX_IMAGES), ("t10k-labels-idx1-ubyte", IDX_LABELS),
                           ("train-images-idx3-ubyte", IDX_IMAGES), ("train-labels-idx1-ubyte", IDX_LABELS)):
            if stem != which:
                (path.parent / stem).write_bytes(good)
        only_own_errors(lambda: load_dataset(f"fashion-mnist:{path.parent}"), DatasetError, path)


def cifar_seeds() -> list[bytes]:
    batch = {b"batch_label": b"x", b"data": np.arange(4 * 3072, dtype=np.uint8).reshape(4, 3072),
             b"labels": [0, 1, 2, 3], b"filenames": [b"a.png"] * 4}
    return [pickle.dumps(batch, protocol=p) for p in (2, 4)]


@FUZZ
@given(content=blobs(cifar_seeds()))
def test_fuzz_cifar_reader(content: bytes) -> None:
    with written("test_batch", content) as path:
        for i in range(1, 6):
            (path.parent / f"data_batch_{i}").symlink_to(path)
        only_own_errors(lambda: load_dataset(f"cifar10:{path.parent}"), DatasetError, path)


def image_seeds() -> list[bytes]:
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (12, 10, 3), dtype=np.uint8))
    out = []
    for fmt in ("PNG", "JPEG", "GIF", "BMP", "TIFF"):
        buffer = io.BytesIO()
        image.save(buffer, format=fmt)
        out.append(buffer.getvalue())
    return out


@FUZZ
@given(content=blobs(image_seeds()))
def test_fuzz_image_reader(content: bytes) -> None:
    with written("a/x.png", content) as path:
        only_own_errors(lambda: load_dataset(f"imagefolder:{path.parent.parent}", image_size=8), DatasetError, path)


def test_fuzz_seeds_are_valid_files() -> None:
    """The unmutated seeds load (else the fuzzing would only ever reach the first error path)."""
    with written("ckpt.pt", CHECKPOINT_SEEDS[0]) as path:
        assert load_checkpoint(path).arch == "convnet-small"
    for i, seed in enumerate(embedding_seeds()):
        with written(f"emb.{'npy' if i == 0 else 'npz'}", seed) as path:
            assert load_embeddings(path).embeddings.shape == (10, 4)
    for seed in cifar_seeds():
        with written("test_batch", seed) as path:
            for i in range(1, 6):
                (path.parent / f"data_batch_{i}").symlink_to(path)
            assert load_dataset(f"cifar10:{path.parent}").images.shape == (4, 3, 32, 32)
    for seed in image_seeds():
        with written("a/x.png", seed) as path:
            assert load_dataset(f"imagefolder:{path.parent.parent}", image_size=8).images.shape == (1, 3, 8, 8)
    with written("t10k-images-idx3-ubyte", IDX_IMAGES) as path:
        for stem, good in (("t10k-labels-idx1-ubyte", IDX_LABELS), ("train-images-idx3-ubyte", IDX_IMAGES),
                           ("train-labels-idx1-ubyte", IDX_LABELS)):
            (path.parent / stem).write_bytes(good)
        assert load_dataset(f"fashion-mnist:{path.parent}").images.shape == (4, 1, 28, 28)
