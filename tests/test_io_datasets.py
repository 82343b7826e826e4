"""Tests of sslmon.io.datasets on small files written here in the real formats, plus the real Fashion-MNIST."""

from __future__ import annotations

import gzip
import io
import os
import pickle
import struct
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from bad_files import RunsCode
from fuzzing import FUZZ, blobs, only_own_errors, written
from sslmon.io import datasets
from sslmon.io.datasets import DatasetError, load_dataset, read_idx, subset_indices

DEBIAN = datasets.DEBIAN_FASHION_MNIST
needs_debian = pytest.mark.skipif(
    not DEBIAN.is_dir(), reason=f"{DEBIAN} absent (Debian package dataset-fashion-mnist not installed)"
)


def write_idx(path: Path, array: np.ndarray, gz: bool) -> Path:
    """Write `array` in the idx format (type code from its dtype), gzipped when gz."""
    code = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C}[array.dtype]
    raw = bytes([0, 0, code, array.ndim]) + np.array(array.shape, ">u4").tobytes() + array.tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


def write_pickle(path: Path, obj: object) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f)


def cifar_rows(images: np.ndarray) -> np.ndarray:
    """(n, 3, 32, 32) -> (n, 3072) rows as distributed: the R plane, then G, then B, each row-major."""
    return np.concatenate([images[:, c].reshape(len(images), 1024) for c in range(3)], axis=1)


def write_cifar(root: Path, scheme: str, per_batch: int = 20) -> tuple[np.ndarray, ...]:
    """Write a small CIFAR-10/100 folder under root; return test images/labels, train images/labels."""
    rng = np.random.default_rng(1)
    if scheme == "cifar10":
        folder, test_file, label_key = root / "cifar-10-batches-py", "test_batch", b"labels"
        train_files = [f"data_batch_{i}" for i in range(1, 6)]
        n_classes, meta = 10, ("batches.meta", {b"label_names": [f"c{i}".encode() for i in range(10)]})
    else:
        folder, test_file, label_key = root / "cifar-100-python", "test", b"fine_labels"
        train_files = ["train"]
        n_classes, meta = 100, ("meta", {b"fine_label_names": [f"c{i}".encode() for i in range(100)]})
    folder.mkdir(parents=True)
    out = []
    for files in ([test_file], train_files):
        imgs = rng.integers(0, 256, (len(files) * per_batch, 3, 32, 32), dtype=np.uint8)
        labels = rng.integers(0, n_classes, len(imgs))
        for i, name in enumerate(files):
            sl = slice(i * per_batch, (i + 1) * per_batch)
            batch = {b"batch_label": b"x", b"data": cifar_rows(imgs[sl]), label_key: labels[sl].tolist(),
                     b"filenames": [b"f.png"] * per_batch}
            if scheme == "cifar100":
                batch[b"coarse_labels"] = [0] * per_batch
            write_pickle(folder / name, batch)
        out += [imgs, labels]
    write_pickle(folder / meta[0], meta[1])
    return tuple(out)


# ---- idx reader and Fashion-MNIST -------------------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("dtype", ["uint8", ">i4"])
def test_read_idx_roundtrip(tmp_path: Path, gz: bool, dtype: str) -> None:
    array = np.arange(2 * 3 * 4).reshape(2, 3, 4).astype(dtype)
    got = read_idx(write_idx(tmp_path / "a-idx3", array, gz))
    assert got.shape == (2, 3, 4) and got.dtype.isnative
    np.testing.assert_array_equal(got, array)


@needs_debian
def test_read_idx_real_fashion_mnist() -> None:
    images = read_idx(DEBIAN / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(DEBIAN / "t10k-labels-idx1-ubyte.gz")
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [1000] * 10


def test_fashion_mnist_folder(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    expected = {}
    for i, prefix in enumerate(["t10k", "train"]):
        x = rng.integers(0, 256, (30, 28, 28), dtype=np.uint8)
        y = np.tile(np.arange(10, dtype=np.uint8), 3)
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte", x, gz=i == 0)  # one gzipped, one raw
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte", y, gz=i == 1)
        expected[prefix] = x, y
    ds = load_dataset(f"fashion-mnist:{tmp_path}")
    assert ds.name == f"fashion-mnist:{tmp_path}" and ds.num_classes == 10 and ds.classes[0] == "T-shirt/top"
    assert ds.images.dtype == torch.uint8 and ds.images.shape == (30, 1, 28, 28)
    np.testing.assert_array_equal(ds.images[:, 0].numpy(), expected["t10k"][0])
    np.testing.assert_array_equal(ds.train_images[:, 0].numpy(), expected["train"][0])
    assert ds.labels.dtype == np.int64 and (ds.train_labels == expected["train"][1]).all()
    m = expected["t10k"][0] / 255.0
    np.testing.assert_allclose(ds.mean, [m.mean()] * 3, rtol=1e-12)
    np.testing.assert_allclose(ds.std, [m.std()] * 3, rtol=1e-12)


def test_default_embedded() -> None:
    ds = load_dataset()
    assert ds.name == "fashion-mnist (embedded)" and len(ds.classes) == 10
    assert ds.images.shape == (10000, 1, 28, 28) and ds.train_images.shape == (10000, 1, 28, 28)
    assert ds.images.dtype == ds.train_images.dtype == torch.uint8
    assert np.bincount(ds.labels).tolist() == [1000] * 10 == np.bincount(ds.train_labels).tolist()
    assert 0.2 < ds.mean[0] < 0.4 and ds.mean[0] == ds.mean[2] and 0.2 < ds.std[0] < 0.5


@needs_debian
def test_default_embedded_equals_debian() -> None:
    """The embedded file is what scripts/make_embedded_dataset.py builds: the test split and train_limit=10k, seed 0."""
    embedded = load_dataset("default")
    debian = load_dataset("fashion-mnist", train_limit=10000, seed=0)
    assert debian.name == f"fashion-mnist:{DEBIAN}" and debian.classes == embedded.classes
    assert torch.equal(embedded.images, debian.images) and torch.equal(embedded.train_images, debian.train_images)
    assert (embedded.labels == debian.labels).all() and (embedded.train_labels == debian.train_labels).all()
    assert embedded.mean == debian.mean


# ---- CIFAR ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["cifar10", "cifar100"])
@pytest.mark.parametrize("point_at_subfolder", [False, True])
def test_cifar(tmp_path: Path, scheme: str, point_at_subfolder: bool) -> None:
    test_x, test_y, train_x, train_y = write_cifar(tmp_path, scheme)
    root = next(tmp_path.iterdir()) if point_at_subfolder else tmp_path
    ds = load_dataset(f"{scheme}:{root}")
    assert ds.images.shape == (20, 3, 32, 32) and ds.train_images.shape == (len(train_x), 3, 32, 32)
    assert torch.equal(ds.images, torch.from_numpy(test_x)) and torch.equal(ds.train_images, torch.from_numpy(train_x))
    assert (ds.labels == test_y).all() and (ds.train_labels == train_y).all() and ds.labels.dtype == np.int64
    assert ds.num_classes == (10 if scheme == "cifar10" else 100) and ds.classes[3] == "c3"


def test_cifar_plane_layout(tmp_path: Path) -> None:
    """Row element 1024 + 5*32 + 7 is the G plane at row 5, column 7."""
    write_cifar(tmp_path, "cifar10")
    batch_file = tmp_path / "cifar-10-batches-py" / "test_batch"
    batch = pickle.loads(batch_file.read_bytes())
    batch[b"data"][:] = 0
    batch[b"data"][0, 1024 + 5 * 32 + 7] = 200
    write_pickle(batch_file, batch)
    images = load_dataset(f"cifar10:{tmp_path}").images
    assert images[0, 1, 5, 7] == 200 and int(images.sum()) == 200


class Python2Pickler(pickle._Pickler):
    """Protocol 2 as Python 2's cPickle wrote the CIFAR originals: text and bytes as str opcodes."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_str(self, obj: bytes | str) -> None:
        raw = obj.encode("latin-1") if isinstance(obj, str) else obj
        op = pickle.SHORT_BINSTRING + bytes([len(raw)]) if len(raw) < 256 else pickle.BINSTRING + struct.pack("<i", len(raw))
        self.write(op + raw)
        self.memoize(obj)

    dispatch[bytes] = save_str
    dispatch[str] = save_str


def python2_pickle(obj: object) -> bytes:
    """``obj`` pickled as Python 2 with numpy 1.x did (numpy.core module names)."""
    out = io.BytesIO()
    Python2Pickler(out, protocol=2).dump(obj)
    return out.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


@pytest.mark.parametrize("fmt", ["python2", "protocol2", "protocol4", "protocol5"])
def test_cifar_pickles_of_every_protocol_load_without_full_unpickling(tmp_path: Path, fmt: str) -> None:
    test_x, test_y, train_x, train_y = write_cifar(tmp_path, "cifar10")
    folder = tmp_path / "cifar-10-batches-py"
    for f in folder.iterdir():
        batch = pickle.loads(f.read_bytes())
        f.write_bytes(python2_pickle(batch) if fmt == "python2" else pickle.dumps(batch, protocol=int(fmt[-1])))
    raw = (folder / "test_batch").read_bytes()
    assert (b"cnumpy.core.multiarray\n_reconstruct" in raw) == (fmt == "python2")
    ds = load_dataset(f"cifar10:{tmp_path}")
    assert torch.equal(ds.images, torch.from_numpy(test_x)) and torch.equal(ds.train_images, torch.from_numpy(train_x))
    assert (ds.labels == test_y).all() and (ds.train_labels == train_y).all() and ds.classes[3] == "c3"


def test_code_running_cifar_pickle_is_refused_unless_trusted(tmp_path: Path) -> None:
    write_cifar(tmp_path, "cifar10", per_batch=2)
    marker = tmp_path / "pwned"
    path = tmp_path / "cifar-10-batches-py" / "data_batch_2"
    batch = pickle.loads(path.read_bytes())
    write_pickle(path, {**batch, b"batch_label": RunsCode(f"touch '{marker}'")})
    with pytest.raises(DatasetError) as err:
        load_dataset(f"cifar10:{tmp_path}")
    assert str(err.value) == (
        f"{path}: pickle references {os.system.__module__}.system, which a CIFAR batch never holds and which can run "
        "code; allow it with trust_data if you trust this file"
    )
    assert err.value.param == "trust_data"
    assert not marker.exists()
    ds = load_dataset(f"cifar10:{tmp_path}", trust_data=True)  # control: the payload is live when trusted
    assert marker.exists() and len(ds.train_images) == 10


class FlaggedUint8:
    """Pickles as numpy.dtype('u1') whose state sets the 'holds object references' flag."""

    def __reduce__(self):
        return np.dtype, ("u1", 0, 1), (3, "|", None, None, None, -1, -1, 1)


class ArrayWithFlaggedDtype:
    """Pickles as an ndarray (n, 3072) of bytes 0..255 whose dtype is FlaggedUint8."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __reduce__(self):
        return (np.ndarray.__reduce__(np.zeros(1))[0], (np.ndarray, (0,), b"b"),
                (1, (self.n, 3072), FlaggedUint8(), False, bytes(range(256)) * 12 * self.n))


def test_pickled_dtype_state_never_reaches_numpy(tmp_path: Path) -> None:
    """Found by fuzzing (fuzzing.py): numpy trusts the flags in a pickled dtype's state, so a uint8 array
    can claim to hold object pointers (numpy then errors, or worse, when it copies or frees it). The
    restricted reader rebuilds a plain uint8 array from the checked descriptor instead."""
    write_cifar(tmp_path, "cifar10", per_batch=2)
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    write_pickle(path, {b"data": ArrayWithFlaggedDtype(2), b"labels": [0, 1]})
    assert pickle.loads(path.read_bytes())[b"data"].dtype.hasobject  # what full unpickling would build
    ds = load_dataset(f"cifar10:{tmp_path}")
    expected = np.tile(np.arange(256, dtype=np.uint8), 24).reshape(2, 3, 32, 32)
    assert torch.equal(ds.images, torch.from_numpy(expected))


# ---- image folders ----------------------------------------------------------------------------------


def save_png(path: Path, size: tuple[int, int], color: int | tuple[int, int, int], mode: str = "RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path)


def test_imagefolder_with_classes(tmp_path: Path) -> None:
    save_png(tmp_path / "cat" / "a.png", (40, 30), (255, 0, 0))
    save_png(tmp_path / "cat" / "nested" / "b.png", (30, 40), (0, 255, 0))
    save_png(tmp_path / "dog" / "c.PNG", (20, 20), 128, mode="L")  # grayscale -> RGB
    (tmp_path / "dog" / "notes.txt").write_text("not an image")
    (tmp_path / "empty").mkdir()
    ds = load_dataset(f"imagefolder:{tmp_path}", image_size=16)
    assert ds.classes == ["cat", "dog"] and ds.labels.tolist() == [0, 0, 1] and ds.num_classes == 2
    assert ds.images.shape == (3, 3, 16, 16) and ds.train_images is None and ds.train_labels is None
    assert ds.images[0, :, 8, 8].tolist() == [255, 0, 0] and ds.images[1, :, 8, 8].tolist() == [0, 255, 0]
    assert (ds.images[2] == 128).all()
    np.testing.assert_allclose(ds.mean, [(255 + 128) / 3 / 255, (255 + 128) / 3 / 255, 128 / 3 / 255])


def test_imagefolder_flat_with_limit(tmp_path: Path) -> None:
    for i in range(5):
        save_png(tmp_path / f"{i}.png", (10, 12), (i, i, i))
    ds = load_dataset(f"imagefolder:{tmp_path}", image_size=8, limit=3, seed=4)
    assert ds.labels is None and ds.classes is None and ds.num_classes is None
    values = ds.images[:, 0, 0, 0].tolist()
    assert ds.images.shape == (3, 3, 8, 8) and values == sorted(values) and len(set(values)) == 3


# ---- npz ---------------------------------------------------------------------------------------------

NCHW = np.random.default_rng(2).integers(0, 256, (4, 3, 5, 6), dtype=np.uint8)


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        (NCHW[:, 0], NCHW[:, :1]),  # (n, H, W)
        (NCHW.transpose(0, 2, 3, 1), NCHW),  # (n, H, W, C)
        (NCHW[:, :1].transpose(0, 2, 3, 1), NCHW[:, :1]),  # (n, H, W, 1)
        (NCHW, NCHW),  # (n, C, H, W)
        (NCHW / 255.0, NCHW),  # float in [0, 1]
    ],
    ids=["nhw", "nhwc", "nhw1", "nchw", "float"],
)
def test_npz_layouts(tmp_path: Path, stored: np.ndarray, expected: np.ndarray) -> None:
    labels = np.array([0, 1, 1, 0])
    np.savez(tmp_path / "d.npz", images=stored, labels=labels, train_images=stored, train_labels=labels)
    ds = load_dataset(f"npz:{tmp_path / 'd.npz'}")
    assert ds.name == f"npz:{tmp_path / 'd.npz'}" and ds.classes is None and ds.num_classes == 2
    assert torch.equal(ds.images, torch.from_numpy(expected)) and torch.equal(ds.train_images, ds.images)
    assert ds.labels.dtype == np.int64 and ds.labels.tolist() == labels.tolist()


# ---- stratified subsets -----------------------------------------------------------------------------


def test_subset_indices_stratified() -> None:
    labels = np.repeat([2, 0, 1], [60, 30, 10])
    rng = np.random.default_rng(0)
    labels = labels[rng.permutation(100)]
    idx = subset_indices(100, labels, 50, seed=3)
    assert (np.diff(idx) > 0).all() and np.bincount(labels[idx]).tolist() == [15, 5, 30]
    assert (idx == subset_indices(100, labels, 50, seed=3)).all()
    assert not np.array_equal(idx, subset_indices(100, labels, 50, seed=4))
    # 7 of 100 -> quotas 4.2, 2.1, 0.7: floors 4, 2, 0 and the largest remainder (0.7) gets the last one.
    assert sorted(np.bincount(labels[subset_indices(100, labels, 7, seed=0)], minlength=3)) == [1, 2, 4]
    assert subset_indices(100, labels, 100, seed=0) is None and subset_indices(100, None, None, seed=0) is None
    unlabelled = subset_indices(100, None, 10, seed=0)
    assert len(set(unlabelled.tolist())) == 10 and (np.diff(unlabelled) > 0).all()


def test_limit_through_load_dataset(tmp_path: Path) -> None:
    """limit / train_limit keep class proportions, original order and pixel/label pairing; seed-deterministic."""
    labels = np.repeat([0, 1, 2], [40, 20, 20])
    images = np.broadcast_to(np.arange(80, dtype=np.uint8)[:, None, None], (80, 2, 2))  # pixel = index
    np.savez(tmp_path / "d.npz", images=images, labels=labels, train_images=images, train_labels=labels)
    spec = f"npz:{tmp_path / 'd.npz'}"
    ds = load_dataset(spec, limit=20, train_limit=40, seed=7)
    idx = ds.images[:, 0, 0, 0].numpy().astype(int)
    assert (np.diff(idx) > 0).all() and (ds.labels == labels[idx]).all()
    assert np.bincount(ds.labels).tolist() == [10, 5, 5] and np.bincount(ds.train_labels).tolist() == [20, 10, 10]
    again = load_dataset(spec, limit=20, train_limit=40, seed=7)
    assert torch.equal(ds.images, again.images) and torch.equal(ds.train_images, again.train_images)
    assert len(load_dataset(spec, limit=1000).images) == 80
    with pytest.raises(ValueError, match="limit"):
        load_dataset(spec, limit=0)


# ---- bad input --------------------------------------------------------------------------------------


def _fashion_folder(tmp: Path, broken: str) -> Path:
    """A Fashion-MNIST folder of 10 images whose `broken` file is corrupted; returns that file."""
    files = {}
    for prefix in ("t10k", "train"):
        images, labels = np.zeros((10, 28, 28), np.uint8), np.zeros(10, np.uint8)
        files[f"{prefix}-images"] = write_idx(tmp / f"{prefix}-images-idx3-ubyte.gz", images, gz=True)
        files[f"{prefix}-labels"] = write_idx(tmp / f"{prefix}-labels-idx1-ubyte", labels, gz=False)
    return files[broken]


def bad_magic(tmp: Path) -> tuple[str, Path]:
    path = _fashion_folder(tmp, "t10k-labels")
    path.write_bytes(b"\x00\x00\x07\x01" + path.read_bytes()[4:])
    return f"fashion-mnist:{tmp}", path


def truncated_raw_idx(tmp: Path) -> tuple[str, Path]:
    path = _fashion_folder(tmp, "train-labels")
    path.write_bytes(path.read_bytes()[:-3])
    return f"fashion-mnist:{tmp}", path


def truncated_gz_idx(tmp: Path) -> tuple[str, Path]:
    path = _fashion_folder(tmp, "t10k-images")
    path.write_bytes(path.read_bytes()[:30])
    return f"fashion-mnist:{tmp}", path


def label_count_mismatch(tmp: Path) -> tuple[str, Path]:
    path = _fashion_folder(tmp, "train-labels")
    write_idx(path, np.zeros(9, np.uint8), False)
    return f"fashion-mnist:{tmp}", path


def missing_idx_file(tmp: Path) -> tuple[str, Path]:
    _fashion_folder(tmp, "t10k-images").unlink()
    return f"fashion-mnist:{tmp}", tmp / "t10k-images-idx3-ubyte"


def missing_folder(scheme: str) -> Callable[[Path], tuple[str, Path]]:
    return lambda tmp: (f"{scheme}:{tmp / 'nope'}", tmp / "nope")


def cifar_case(tmp: Path, scheme: str, file: str, content: bytes | dict) -> tuple[str, Path]:
    """A small CIFAR folder whose `file` holds `content` (bytes as they are, a dict pickled)."""
    write_cifar(tmp, scheme, per_batch=2)
    path = tmp / {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}[scheme] / file
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        write_pickle(path, content)
    return f"{scheme}:{tmp}", path


def cifar_without_data(tmp: Path) -> tuple[str, Path]:
    return cifar_case(tmp, "cifar10", "data_batch_3", {b"labels": [0, 1]})


def cifar_not_a_pickle(tmp: Path) -> tuple[str, Path]:
    return cifar_case(tmp, "cifar100", "test", b"garbage")


def cifar_wrong_row_length(tmp: Path) -> tuple[str, Path]:
    return cifar_case(tmp, "cifar10", "test_batch", {b"data": np.zeros((2, 3000), np.uint8), b"labels": [0, 1]})


def cifar_empty_folder(tmp: Path) -> tuple[str, Path]:
    return f"cifar10:{tmp}", tmp


def npz_without_images(tmp: Path) -> tuple[str, Path]:
    np.savez(tmp / "d.npz", labels=np.zeros(3))
    return f"npz:{tmp / 'd.npz'}", tmp / "d.npz"


def npz_wrong_shape(tmp: Path) -> tuple[str, Path]:
    np.savez(tmp / "d.npz", images=np.zeros((3, 8, 8, 5), np.uint8))
    return f"npz:{tmp / 'd.npz'}", tmp / "d.npz"


def npz_float_out_of_range(tmp: Path) -> tuple[str, Path]:
    np.savez(tmp / "d.npz", images=np.full((3, 8, 8), 2.0))
    return f"npz:{tmp / 'd.npz'}", tmp / "d.npz"


def npz_label_mismatch(tmp: Path) -> tuple[str, Path]:
    np.savez(tmp / "d.npz", images=np.zeros((3, 8, 8), np.uint8), labels=np.zeros(4, np.int64))
    return f"npz:{tmp / 'd.npz'}", tmp / "d.npz"


def npz_truncated(tmp: Path) -> tuple[str, Path]:
    np.savez_compressed(tmp / "d.npz", images=np.zeros((3, 8, 8), np.uint8))
    (tmp / "d.npz").write_bytes((tmp / "d.npz").read_bytes()[:100])
    return f"npz:{tmp / 'd.npz'}", tmp / "d.npz"


def imagefolder_corrupt_image(tmp: Path) -> tuple[str, Path]:
    save_png(tmp / "a" / "ok.png", (4, 4), (1, 2, 3))
    (tmp / "a" / "bad.png").write_bytes(b"not a png")
    return f"imagefolder:{tmp}", tmp / "a" / "bad.png"


def imagefolder_empty(tmp: Path) -> tuple[str, Path]:
    (tmp / "a").mkdir()
    return f"imagefolder:{tmp}", tmp


def npy_header_only(shape: tuple[int, ...], dtype: type) -> bytes:
    """A .npy header (format 1.0) claiming `shape` of `dtype`, without the data."""
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, {"descr": np.dtype(dtype).str, "fortran_order": False, "shape": shape})
    return out.getvalue()


def cifar_fifo_batch(tmp: Path) -> tuple[str, Path]:
    write_cifar(tmp, "cifar10", per_batch=2)
    path = tmp / "cifar-10-batches-py" / "data_batch_4"
    path.unlink()
    os.mkfifo(path)  # reading it would block forever
    return f"cifar10:{tmp}", path


def cifar_labels_not_integers(tmp: Path) -> tuple[str, Path]:
    return cifar_case(tmp, "cifar10", "test_batch", {b"data": np.zeros((2, 3072), np.uint8), b"labels": [b"cat", b"dog"]})


def cifar_bytes_bomb(tmp: Path) -> tuple[str, Path]:
    """bytes(2**30) through the bytes global that protocol-2 pickles of b"" use: 1 GiB from 30 bytes."""
    return cifar_case(tmp, "cifar10", "test_batch", b"\x80\x02c__builtin__\nbytes\nJ\x00\x00\x00\x40\x85R.")


def idx_huge_header_claim(tmp: Path) -> tuple[str, Path]:
    path = _fashion_folder(tmp, "t10k-images")
    path.write_bytes(bytes([0, 0, 0x08, 3]) + np.array([2**31, 2**31, 28], ">u4").tobytes() + bytes(100))
    return f"fashion-mnist:{tmp}", path


def idx_claims_more_than_the_file(tmp: Path) -> tuple[str, Path]:
    """784 MB claimed (below the size limit) by a 100-byte file: refused before reading."""
    path = _fashion_folder(tmp, "t10k-labels")
    path.write_bytes(bytes([0, 0, 0x08, 3]) + np.array([10**6, 28, 28], ">u4").tobytes() + bytes(84))
    return f"fashion-mnist:{tmp}", path


def idx_gzip_longer_than_header(tmp: Path) -> tuple[str, Path]:
    path = _fashion_folder(tmp, "train-images")
    path.write_bytes(gzip.compress(bytes([0, 0, 0x08, 3]) + np.array([1, 28, 28], ">u4").tobytes() + bytes(10_000_000)))
    return f"fashion-mnist:{tmp}", path


def idx_fifo(tmp: Path) -> tuple[str, Path]:
    path = _fashion_folder(tmp, "t10k-labels")
    path.unlink()
    os.mkfifo(path)
    return f"fashion-mnist:{tmp}", path


def npz_huge_header_claim(tmp: Path) -> tuple[str, Path]:
    path = tmp / "d.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("images.npy", npy_header_only((10**6, 10**6, 28), np.uint8) + bytes(64))
    return f"npz:{path}", path


def npz_object_images(tmp: Path) -> tuple[str, Path]:
    path = tmp / "d.npz"
    np.savez(path, images=np.array([np.zeros((8, 8)), "x"], dtype=object))
    return f"npz:{path}", path


def npz_is_a_directory(tmp: Path) -> tuple[str, Path]:
    (tmp / "d.npz").mkdir()
    return f"npz:{tmp / 'd.npz'}", tmp / "d.npz"


def imagefolder_truncated_png(tmp: Path) -> tuple[str, Path]:
    rng = np.random.default_rng(0)
    save_png(tmp / "a" / "ok.png", (4, 4), (1, 2, 3))
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(tmp / "a" / "cut.png")
    (tmp / "a" / "cut.png").write_bytes((tmp / "a" / "cut.png").read_bytes()[:2000])
    return f"imagefolder:{tmp}", tmp / "a" / "cut.png"


def imagefolder_pixel_bomb(tmp: Path) -> tuple[str, Path]:
    """100 M pixels in a few kB: above the limit, below the size at which PIL itself refuses."""
    (tmp / "a").mkdir()
    Image.new("1", (10_000, 10_000)).save(tmp / "a" / "bomb.png")
    return f"imagefolder:{tmp}", tmp / "a" / "bomb.png"


def imagefolder_pil_bomb(tmp: Path) -> tuple[str, Path]:
    """More than twice PIL's limit: PIL raises DecompressionBombError on opening."""
    (tmp / "a").mkdir()
    Image.new("1", (13_000, 14_000)).save(tmp / "a" / "bomb.png")
    return f"imagefolder:{tmp}", tmp / "a" / "bomb.png"


def unknown_scheme(tmp: Path) -> tuple[str, Path]:
    return f"mnist:{tmp}", Path("valid: default, fashion-mnist, cifar10, cifar100, imagefolder, npz")


BAD_INPUTS = {
    f.__name__: f
    for f in (
        bad_magic, truncated_raw_idx, truncated_gz_idx, label_count_mismatch, missing_idx_file,
        cifar_without_data, cifar_not_a_pickle, cifar_wrong_row_length, cifar_empty_folder,
        npz_without_images, npz_wrong_shape, npz_float_out_of_range, npz_label_mismatch, npz_truncated,
        imagefolder_corrupt_image, imagefolder_empty, unknown_scheme,
        cifar_fifo_batch, cifar_labels_not_integers, cifar_bytes_bomb, idx_huge_header_claim, idx_claims_more_than_the_file, idx_gzip_longer_than_header, idx_fifo,
        npz_huge_header_claim, npz_object_images, npz_is_a_directory, imagefolder_truncated_png,
        imagefolder_pixel_bomb, imagefolder_pil_bomb,
    )
} | {f"missing_{s}": missing_folder(s) for s in ("fashion-mnist", "cifar10", "cifar100", "imagefolder", "npz")}


@pytest.mark.parametrize("make", BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_bad_input_names_the_file(tmp_path: Path, make: Callable[[Path], tuple[str, Path]]) -> None:
    spec, named = make(tmp_path)
    with pytest.raises(DatasetError) as err:
        load_dataset(spec)
    message = str(err.value)
    assert str(named) in message and "\n" not in message, message


def test_fashion_mnist_without_debian_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(datasets, "DEBIAN_FASHION_MNIST", tmp_path / "absent")
    with pytest.raises(DatasetError, match="dataset-fashion-mnist"):
        load_dataset("fashion-mnist")


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
