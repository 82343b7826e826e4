"""The inputs that the run layer scores, as :class:`Source` objects: checkpoint files and folders, torchvision models
by name, and embedding files. A source says how to load its input (picklable, so that a Ray worker can) and what
identifies its content for the results cache; nothing heavy is imported until a source is loaded."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

if TYPE_CHECKING:
    from sslmon.models.encoders import Encoder

ENCODER, EMBEDDINGS = "encoder", "embeddings"  # what a source's load() gives: an Encoder, or an EmbeddingSet


@dataclass
class Source:
    """One encoder to score: how to load it (picklable, so a Ray worker can), what identifies its content for
    the cache, the training run it belongs to (:attr:`Result.run`; None: a model of no run), and its ``kind``:
    :data:`ENCODER` (``load()`` gives an :class:`~sslmon.models.encoders.Encoder` to embed images with) or
    :data:`EMBEDDINGS` (an :class:`~sslmon.io.inputs.EmbeddingSet` to evaluate as it is)."""

    name: str
    path: str | None
    load: Callable[[], Any]
    content: Callable[[], str | None]  # None: no identity (not cached)
    run: str | None = None
    kind: str = ENCODER


def checkpoint_sources(paths: Iterable[str | Path], *, arch: str = "auto", trust: bool = False) -> list[Source]:
    """Sources for checkpoint files and folders (a folder expands to its checkpoints in epoch order);
    CheckpointError for a folder that cannot be listed. Each source's ``run`` is the folder given, or a checkpoint
    file's parent folder (as written, normalised: ``runs/a/`` and ``runs/a/epoch_1.pt`` are both run ``runs/a``)."""
    from sslmon.models.encoders import find_checkpoints, load_checkpoint

    sources = []
    for path in map(Path, paths):
        folder = path if path.is_dir() else path.parent
        for f in find_checkpoints(path) if path.is_dir() else [path]:
            sources.append(Source(f.name, str(f), partial(load_checkpoint, f, arch=arch, trust=trust),
                                  partial(_checkpoint_identity, f, arch, trust), run=str(folder)))
    return sources


def _checkpoint_identity(path: Path, arch: str, trust: bool) -> str:
    """A checkpoint's identity in the cache: its bytes, its file name (the epoch may come from it), the architecture
    asked for and trust (a file read with trust_checkpoints is never served without it). A FIFO, device, folder or
    broken link is an InputError naming it, found before anything is opened or hashed."""
    from sslmon.io.output import file_digest
    from sslmon.io.inputs import check_regular_file

    check_regular_file(path, "checkpoint")
    return f"{file_digest(path)} name={path.name} arch={arch} trust={trust}"


def torchvision_sources(names: Iterable[str], *, weights: str = "default", seed: int = 0, download: bool | None = None,
                        progress: bool | None = None) -> list[Source]:
    """Sources for torchvision models by name, with their default pretrained weights or ``none`` (random init seeded
    with ``seed``). ``download`` (None: unless SSLMON_OFFLINE=1), ``progress`` (None: on a terminal): see
    :func:`sslmon.models.encoders.load_torchvision`."""
    import torchvision

    version = f"torchvision {torchvision.__version__}"  # its default weights can change between releases
    return [Source(n, None, partial(_load_torchvision, n, weights, seed, download, progress),
                   partial(str, f"{version}:{n}:{weights}:{seed}")) for n in names]


def _load_torchvision(name: str, weights: str, seed: int, download: bool | None, progress: bool | None) -> Encoder:
    import torch

    from sslmon.models.encoders import load_torchvision

    torch.manual_seed(seed)
    return load_torchvision(name, weights=weights, download=download, progress=progress)


def embedding_sources(paths: Iterable[str | Path]) -> list[Source]:
    """Sources for embedding files (``.npz``/``.npy``, :func:`sslmon.io.inputs.load_embeddings`), of no run, named
    by the file's stem; the cache knows each by its bytes and its file name."""
    from sslmon.io.inputs import load_embeddings

    return [Source(Path(p).stem, str(p), partial(load_embeddings, p), partial(_file_identity, Path(p), "embedding file"),
                   kind=EMBEDDINGS) for p in paths]


def _file_identity(path: Path, what: str) -> str | None:
    """An embedding file's identity in the cache: its bytes and its name; None (not cached) for a file that is not a
    readable regular file (FIFO, device, folder, broken link: never opened or hashed here), whose loading then
    reports why, in input order with the others."""
    from sslmon.io.output import file_digest
    from sslmon.io.inputs import InputError, check_regular_file

    try:
        check_regular_file(path)
        return f"{what} {file_digest(path)} name={path.name}"
    except (InputError, OSError):
        return None
