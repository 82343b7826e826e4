"""Embedding files: ``.npz`` (``embeddings``, optional ``labels``, ``train_embeddings``,
``train_labels``) and ``.npy`` (embeddings only), from any modality."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
import zipfile

import numpy as np

from sslmon._text import one_line

EMBEDDING_SUFFIXES = (".npz", ".npy")


class InputError(Exception):
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


def _check(path: Path, key: str, arr: np.ndarray, ndim: int) -> np.ndarray:
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise InputError(f"{path}: array '{key}' has non-numeric dtype {arr.dtype}")
    if arr.ndim != ndim:
        want = "(n, d)" if ndim == 2 else "(n,)"
        raise InputError(f"{path}: array '{key}' must have shape {want}, got {arr.shape}")
    return arr


def load_embeddings(path: str | Path) -> EmbeddingSet:
    """Read one embedding file, raising InputError (one line, naming the file) when it is unusable."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.suffix not in EMBEDDING_SUFFIXES:
        raise InputError(f"{path}: not an embedding file (expected .npz or .npy)")
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic != b"\x93NUMPY" and not magic.startswith(b"PK"):
        raise InputError(f"{path}: not a numpy {path.suffix} file (unrecognised header)")
    try:
        data = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise InputError(f"{path}: not a readable numpy file ({one_line(exc)})") from None
    if isinstance(data, np.ndarray):
        return EmbeddingSet(path.stem, str(path), _check(path, "array", data, 2))
    with data:
        keys = set(data.files)
        if "embeddings" not in keys:
            raise InputError(f"{path}: no array 'embeddings' (found: {', '.join(sorted(keys)) or 'none'})")
        try:
            arrays = {k: data[k] for k in ("embeddings", "labels", "train_embeddings", "train_labels") if k in keys}
        except (ValueError, OSError, zipfile.BadZipFile) as exc:
            raise InputError(f"{path}: corrupt array data ({one_line(exc)})") from None
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
    return out
