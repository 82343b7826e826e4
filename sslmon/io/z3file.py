"""Z3 files, written and read here: ``NAME.z3.npz`` of ``sslmon score --save-z3``, read by ``sslmon plot``.

An ``.npz`` archive of plain arrays (no pickles): ``z3`` (n, 3) floats, the 3-d UMAP projection of the embeddings
that the clustering and entropy metrics use; ``epoch``, one integer (-1 = unknown); optionally ``c1`` and ``c2``
(n,) integers, the k-means clusters with k1 and k2 = 2 k1 clusters; ``labels`` (n,), the classes (numbers or
names). Written atomically; read with the size and dtype checks of :func:`sslmon.io.inputs.read_npz`.
"""

from __future__ import annotations

from dataclasses import dataclass
import hashlib
import io
import os
from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np

from sslmon.errors import OptionsError, SslmonError
from sslmon.io.inputs import InputError, read_npz
from sslmon.io.output import NAME_MAX, write_atomic

SUFFIX = ".z3.npz"
UNKNOWN_EPOCH = -1
MAX_COORDINATE = 1e6  # UMAP lays points out within some tens of units; far beyond is not a layout (and cannot be drawn)
# Per array, the numpy dtype kinds it may have and their description.
KINDS = {"z3": ("iuf", "real numbers"), "c1": ("iu", "integers"), "c2": ("iu", "integers"),
         "labels": ("biufUS", "numbers or class names")}


class Named(Protocol):
    """What names a Z3 file: an input's ``name`` (its file stem is used) and ``path`` (None for a model by name)."""

    name: str
    path: str | None


class Z3FileError(SslmonError, ValueError):
    """A file that is not a sound Z3 file; the message names it, on one line."""


@dataclass(frozen=True)
class Z3File:
    """The arrays of one Z3 file (see the module docstring); ``epoch`` None when unknown."""

    z3: np.ndarray
    epoch: int | None = None
    c1: np.ndarray | None = None
    c2: np.ndarray | None = None
    labels: np.ndarray | None = None


def _checked(where: str, z3: Any, epoch: Any, columns: dict[str, Any]) -> Z3File:
    """The arrays as a Z3File after checking dtypes and shapes; ValueError starting with ``where``."""
    arrays = {key: np.asarray(value) for key, value in {"z3": z3, **columns}.items() if value is not None}
    for key, arr in arrays.items():
        kinds, expected = KINDS[key]
        if arr.dtype.kind not in kinds:
            raise ValueError(f"{where}array '{key}' has dtype {arr.dtype}, expected {expected}")
    points = arrays["z3"]
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"{where}z3 has shape {points.shape}, expected (n, 3)")
    for key, arr in arrays.items():
        if key != "z3" and arr.shape != (len(points),):
            raise ValueError(f"{where}{key} has shape {arr.shape}, expected ({len(points)},)")
    epoch = np.asarray(UNKNOWN_EPOCH if epoch is None else epoch)
    if epoch.shape != () or epoch.dtype.kind not in "iu":
        raise ValueError(f"{where}epoch must be one integer, got {epoch.dtype} array of shape {epoch.shape}")
    if int(epoch) < UNKNOWN_EPOCH:
        raise ValueError(f"{where}epoch is {int(epoch)}; expected {UNKNOWN_EPOCH} (unknown) or an epoch >= 0")
    return Z3File(epoch=None if int(epoch) == UNKNOWN_EPOCH else int(epoch), **arrays)


def write_z3(path: str | Path, z3: Any, *, epoch: int | None = None, c1: Any = None, c2: Any = None, labels: Any = None) -> None:
    """Write a Z3 file atomically (a killed run leaves no truncated file). ValueError for arrays of the wrong
    shape or dtype (see the module docstring); :class:`~sslmon.io.output.OutputError` naming the file when it
    cannot be written."""
    checked = _checked("", z3, epoch, {"c1": c1, "c2": c2, "labels": labels})
    buffer = io.BytesIO()
    extra = {key: getattr(checked, key) for key in ("c1", "c2", "labels") if getattr(checked, key) is not None}
    np.savez(buffer, z3=checked.z3, epoch=np.int64(UNKNOWN_EPOCH if checked.epoch is None else checked.epoch), **extra)
    write_atomic(Path(path), buffer.getvalue())


def read_z3(path: str | Path) -> Z3File:
    """The arrays of a Z3 file; Z3FileError naming the file when it is unreadable, lacks ``z3`` or holds arrays
    of the wrong shape or dtype (nothing is unpickled; array sizes are checked before they are read)."""
    path = Path(path)
    try:
        arrays, names = read_npz(path, ("z3", "epoch", *(key for key in KINDS if key != "z3")))
    except InputError as exc:
        raise Z3FileError(str(exc)) from None
    if "z3" not in arrays:
        raise Z3FileError(f"{path}: no array 'z3' (found: {', '.join(names) or 'none'}); not a Z3 file from --save-z3")
    try:
        saved = _checked(f"{path}: ", arrays.pop("z3"), arrays.pop("epoch", None), arrays)
    except ValueError as exc:
        raise Z3FileError(str(exc)) from None
    if len(saved.z3) == 0:
        raise Z3FileError(f"{path}: z3 holds no points")
    bad = int((~np.isfinite(saved.z3) | (np.abs(saved.z3) > MAX_COORDINATE)).any(axis=1).sum())
    if bad:
        raise Z3FileError(f"{path}: {bad} of {len(saved.z3)} z3 rows hold NaN, Inf or coordinates beyond "
                          f"+-{MAX_COORDINATE:g}; not a UMAP layout from --save-z3")
    return saved


def z3_name(name: str) -> str:
    """``<stem>.z3.npz`` of an input's name; a stem too long for a file name (255 bytes with the suffix) is cut and
    ends in ``-`` and 12 hex digits of its SHA-256, so the file can be written and two long names stay apart."""
    stem = Path(name).stem
    if len(os.fsencode(stem + SUFFIX)) <= NAME_MAX:
        return stem + SUFFIX
    tag = "-" + hashlib.sha256(os.fsencode(stem)).hexdigest()[:12]
    room = NAME_MAX - len(SUFFIX) - len(tag)
    cut = os.fsencode(stem)[:room].decode("utf-8", "ignore")  # whole characters only
    return cut + tag + SUFFIX


def z3_paths(sources: Sequence[Named], folder: Path | None) -> list[Path | None]:
    """``folder/<name>.z3.npz`` per source (anything with a ``name`` and a ``path``, such as a
    :class:`~sslmon.models.sources.Source`; see :func:`z3_name`); OptionsError naming two sources whose files would
    collide. None each when ``folder`` is None (no Z3 files asked for)."""
    if folder is None:
        return [None] * len(sources)
    seen: dict[str, Named] = {}
    for source in sources:
        name = z3_name(source.name)
        if name in seen:
            first = seen[name]
            raise OptionsError(f"save_z3: {first.path or first.name} and {source.path or source.name} would both be saved "
                               f"as {name}; give each folder its own save_z3 folder (one run per score)", param="save_z3")
        seen[name] = source
    return [folder / z3_name(s.name) for s in sources]
