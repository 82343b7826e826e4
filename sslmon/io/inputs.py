"""Embedding files: ``.npz`` (``embeddings``, optional ``labels``, ``train_embeddings``,
``train_labels``) and ``.npy`` (embeddings only), from any modality.

The files are untrusted data: arrays are read without unpickling (object arrays are refused),
and each array's ``.npy`` header is checked against the bytes actually present and against
``MAX_ARRAY_BYTES`` before anything is allocated, so a header claiming a huge shape is an
:class:`InputError`, never a MemoryError.
"""

from __future__ import annotations

import lzma
import math
import tokenize
import zipfile
import zlib
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from sslmon._text import one_line
from sslmon.errors import SslmonError

EMBEDDING_SUFFIXES = (".npz", ".npy")
MAX_ARRAY_BYTES = 8 * 2**30  # largest single array read from a .npy/.npz/idx file (8 GiB)
NPY_MAGIC = b"\x93NUMPY"
# What a corrupt or hostile zip archive / .npy header can raise while being read.
ARCHIVE_ERRORS = (OSError, ValueError, EOFError, RuntimeError, NotImplementedError, zipfile.BadZipFile,
                  zlib.error, lzma.LZMAError, SyntaxError, tokenize.TokenError)


class InputError(SslmonError):
    """A file that cannot be read as embeddings; the message names the file."""


@dataclass
class EmbeddingSet:
    """Embeddings of an evaluation set, with optional labels and a labelled train split."""

    name: str
    path: str | None
    embeddings: np.ndarray
    labels: np.ndarray | None = None
    train_embeddings: np.ndarray | None = None
    train_labels: np.ndarray | None = None


def check_regular_file(path: Path, what: str = "file") -> None:
    """InputError unless ``path`` is an existing regular file (not a directory, FIFO or device,
    whose reading could block forever or never end)."""
    if not path.exists():
        raise InputError(f"{path}: {'broken symbolic link or link loop' if path.is_symlink() else f'no such {what}'}")
    if not path.is_file():
        kind = "a directory" if path.is_dir() else "not a regular file (FIFO, socket or device)"
        raise InputError(f"{path}: {kind}, expected a {what}")


def _read_npy(f: IO[bytes], available: int, where: str) -> np.ndarray:
    """The array of one ``.npy`` stream holding ``available`` bytes in all (header included).

    The header's shape x itemsize must fit in what follows the header and in MAX_ARRAY_BYTES;
    object dtypes (which need unpickling) are refused.
    """
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
    else:
        raise InputError(f"{where}: unsupported .npy format version {version[0]}.{version[1]}")
    if dtype.hasobject:
        raise InputError(f"{where}: object array (dtype {dtype}), which needs unpickling; refused")
    nbytes = math.prod(shape) * dtype.itemsize
    left = available - f.tell()
    if nbytes > left:
        raise InputError(f"{where}: header claims shape {shape} of {dtype} ({nbytes} bytes) but the file holds {left}")
    if nbytes > MAX_ARRAY_BYTES:
        raise InputError(f"{where}: array of shape {shape} is {nbytes} bytes, above the limit of {MAX_ARRAY_BYTES}")
    out = np.empty(math.prod(shape), dtype)
    if nbytes and f.readinto(out.view(np.uint8)) != nbytes:
        raise InputError(f"{where}: truncated array data")
    return out.reshape(shape, order="F" if fortran else "C")


def read_npy(path: Path) -> np.ndarray:
    """The array in a ``.npy`` file (checked as in :func:`_read_npy`); InputError naming the file."""
    check_regular_file(path)
    try:
        with open(path, "rb") as f:
            return _read_npy(f, path.stat().st_size, str(path))
    except ARCHIVE_ERRORS as exc:
        raise InputError(f"{path}: not a readable .npy file ({one_line(exc)})") from None


def read_npz(path: Path, keys: Collection[str] | None = None) -> tuple[dict[str, np.ndarray], list[str]]:
    """Arrays ``keys`` (all when None) of an ``.npz`` archive that holds them, and the names of all its arrays.

    Each member's size is bounded by its zip entry's declared size (zipfile never reads past it).
    """
    check_regular_file(path)
    try:
        with zipfile.ZipFile(path) as archive:
            members = {info.filename.removesuffix(".npy"): info for info in archive.infolist()
                       if info.filename.endswith(".npy")}
            arrays = {}
            for key, info in members.items():
                if keys is None or key in keys:
                    with archive.open(info) as f:
                        arrays[key] = _read_npy(f, info.file_size, f"{path}: array '{key}'")
    except ARCHIVE_ERRORS as exc:
        raise InputError(f"{path}: not a readable .npz archive ({one_line(exc)})") from None
    return arrays, sorted(members)


def _check(path: Path, key: str, arr: np.ndarray, ndim: int) -> np.ndarray:
    """``arr`` after checking its dtype (real numbers or booleans; strings too for labels) and shape."""
    strings = ndim == 1 and arr.dtype.kind in "US"
    if not (strings or arr.dtype.kind in "biuf"):
        raise InputError(f"{path}: array '{key}' has unsupported dtype {arr.dtype} (expected real numbers)")
    if arr.ndim != ndim:
        want = "(n, d)" if ndim == 2 else "(n,)"
        raise InputError(f"{path}: array '{key}' must have shape {want}, got {arr.shape}")
    if ndim == 2 and 0 in arr.shape:
        raise InputError(f"{path}: array '{key}' has shape {arr.shape}; needs at least one row and one dimension")
    if ndim == 1 and arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise InputError(f"{path}: array '{key}' holds NaN or Inf labels")
    return arr


def _encode_string_labels(out: EmbeddingSet) -> None:
    """Class-name labels (string arrays) become integer codes, the sorted names of both splits numbered 0, 1, ..."""
    given = [y for y in (out.labels, out.train_labels) if y is not None]
    if not any(y.dtype.kind in "US" for y in given):
        return
    if not all(y.dtype.kind in "US" for y in given):
        raise InputError(f"{out.path}: labels and train_labels must both be class names or both numbers")
    names = np.unique(np.concatenate([y.astype(str) for y in given]))
    if out.labels is not None:
        out.labels = np.searchsorted(names, out.labels.astype(str))
    if out.train_labels is not None:
        out.train_labels = np.searchsorted(names, out.train_labels.astype(str))


def load_embeddings(path: str | Path) -> EmbeddingSet:
    """Read one embedding file, raising InputError (one line, naming the file) when it is unusable.

    Labels may be integers, finite floats, booleans or class names (strings, numbered in sorted order).
    """
    path = Path(path)
    if path.suffix not in EMBEDDING_SUFFIXES:
        raise InputError(f"{path}: not an embedding file (expected .npz or .npy)")
    check_regular_file(path)
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic != NPY_MAGIC and not magic.startswith(b"PK"):
        raise InputError(f"{path}: not a numpy {path.suffix} file (unrecognised header)")
    if magic == NPY_MAGIC:
        return EmbeddingSet(path.stem, str(path), _check(path, "array", read_npy(path), 2))
    arrays, names = read_npz(path, ("embeddings", "labels", "train_embeddings", "train_labels"))
    if "embeddings" not in arrays:
        raise InputError(f"{path}: no array 'embeddings' (found: {', '.join(names) or 'none'})")
    Z = _check(path, "embeddings", arrays["embeddings"], 2)
    out = EmbeddingSet(path.stem, str(path), Z)
    if "labels" in arrays:
        out.labels = _check(path, "labels", arrays["labels"], 1)
        if len(out.labels) != len(Z):
            raise InputError(f"{path}: {len(out.labels)} labels for {len(Z)} embeddings")
    if ("train_embeddings" in arrays) != ("train_labels" in arrays):
        raise InputError(f"{path}: 'train_embeddings' and 'train_labels' must come together")
    if "train_embeddings" in arrays:
        out.train_embeddings = _check(path, "train_embeddings", arrays["train_embeddings"], 2)
        out.train_labels = _check(path, "train_labels", arrays["train_labels"], 1)
        if len(out.train_labels) != len(out.train_embeddings):
            raise InputError(f"{path}: {len(out.train_labels)} train labels for {len(out.train_embeddings)} train embeddings")
        if out.train_embeddings.shape[1] != Z.shape[1]:
            raise InputError(f"{path}: train embeddings are {out.train_embeddings.shape[1]}-d, embeddings {Z.shape[1]}-d")
    _encode_string_labels(out)
    return out
