"""The Python API behind the CLI: score inputs into a :class:`~sslmon.results.Run`.

A training loop can call :func:`score_embeddings` on arrays directly; the CLI
calls :func:`score_embedding_files` for embedding files and :func:`score_sources`
with :func:`checkpoint_sources` or :func:`torchvision_sources` for encoders.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial
import io
from pathlib import Path
import time
from typing import Any, Callable, Iterable

import numpy as np
import torch
import torchvision
from rich.progress import Progress

from sslmon._text import one_line
from sslmon.cache import ResultCache, array_digest, file_digest
from sslmon.datasets import ImageSet
from sslmon.embed import Precision, embed_images, resolve_device
from sslmon.encoders import CheckpointError, Encoder, find_checkpoints, load_checkpoint, load_torchvision
from sslmon.evaluate import EvalConfig, evaluate_embeddings
from sslmon.inputs import InputError, load_embeddings
from sslmon.output import OutputError, write_atomic
from sslmon.report import printable
from sslmon.results import Failure, OnResult, Result, Run

Log = Callable[[str], None]


def score_embeddings(
    Z: Any,
    labels: Any = None,
    train_embeddings: Any = None,
    train_labels: Any = None,
    config: EvalConfig = EvalConfig(),
    metrics: list[str] | None = None,
    name: str = "embeddings",
    path: str | None = None,
    epoch: int | None = None,
    source: dict[str, Any] | None = None,
    z3_path: Path | None = None,
) -> Result:
    """Evaluate one set of embeddings into a :class:`Result` (never raises for bad data).

    With ``z3_path``, Z3 and the cluster labels C1/C2 (and the labels) are saved there as ``.npz``
    (arrays ``z3``, ``c1``, ``c2``, ``labels``, ``epoch``) for plotting.
    """
    ev = evaluate_embeddings(Z, labels, train_embeddings, train_labels, config, metrics)
    if z3_path is not None and ev.Z3 is not None:
        extra = {key: arr for key, arr in (("c1", ev.C1), ("c2", ev.C2), ("labels", labels)) if arr is not None}
        buffer = io.BytesIO()
        np.savez(buffer, z3=ev.Z3, epoch=-1 if epoch is None else epoch, **extra)
        write_atomic(z3_path, buffer.getvalue())  # a killed run leaves no truncated file that a cache hit would trust
    shape = getattr(Z, "shape", None)
    return Result(
        name=name,
        path=path,
        metrics=ev.metrics,
        errors=ev.errors,
        timings=ev.timings,
        epoch=epoch,
        n_samples=int(shape[0]) if shape is not None and len(shape) == 2 else None,
        dim=int(shape[1]) if shape is not None and len(shape) == 2 else None,
        k=ev.k,
        reference=ev.reference,
        source=source or {},
        metrics_std=ev.metrics_std,
        per_seed=ev.per_seed,
    )


def score_embedding_files(
    paths: Iterable[str | Path],
    config: EvalConfig = EvalConfig(),
    metrics: list[str] | None = None,
    log: Log | None = None,
    on_result: OnResult | None = None,
) -> Run:
    """Score each ``.npz``/``.npy`` file; unreadable files become failures, the rest are scored.

    ``on_result(run, record)`` is called as each file's result or failure is added."""
    run = Run(config={**config.as_dict(), "metrics": metrics})
    for path in paths:
        try:
            emb = load_embeddings(path)
            if config.k is None and emb.labels is None:
                raise InputError(f"{path}: no labels to take k from; pass --k (the number of clusters k1)")
        except InputError as exc:
            run.failures.append(Failure(str(path), str(exc)))
            if log:
                log(f"error: {exc}")
            if on_result:
                on_result(run, run.failures[-1])
            continue
        if log:
            log(f"scoring {emb.path} ({emb.embeddings.shape[0]} x {emb.embeddings.shape[1]})")
        run.results.append(
            score_embeddings(
                emb.embeddings,
                emb.labels,
                emb.train_embeddings,
                emb.train_labels,
                config,
                metrics,
                name=emb.name,
                path=emb.path,
            )
        )
        if on_result:
            on_result(run, run.results[-1])
    return run


# --------------------------------------------------------------------------- encoders on images


@dataclass
class Source:
    """One encoder to score: how to load it and what identifies its content for the cache."""

    name: str
    path: str | None
    load: Callable[[], Encoder]
    content: Callable[[], str]


def _score_source(
    source: Source,
    data: ImageSet,
    config: EvalConfig,
    metrics: list[str] | None,
    batch_size: int,
    device: torch.device,
    progress: Progress | None,
    z3_path: Path | None = None,
    precision: Precision = "fp32",
) -> Result:
    """Load, embed the evaluation (and train) images, evaluate. Raises CheckpointError or RuntimeError."""
    t0 = time.perf_counter()
    enc = source.load()
    t_load = time.perf_counter() - t0
    mean, std = enc.mean or data.mean, enc.std or data.std
    n_train = 0 if data.train_images is None else len(data.train_images)
    task = progress.add_task(printable(f"embedding {source.name}"), total=len(data.images) + n_train) if progress else None
    advance = (lambda k: progress.advance(task, k)) if progress else None
    t0 = time.perf_counter()
    try:
        embed = partial(embed_images, enc.model, mean=mean, std=std, input_size=enc.input_size, batch_size=batch_size,
                        device=device, on_batch=advance, precision=precision)
        Z = embed(data.images)
        Z_train = None
        if data.train_images is not None and data.train_labels is not None:
            Z_train = embed(data.train_images)
    except (RuntimeError, ValueError) as exc:
        raise CheckpointError(f"{source.path or source.name}: embedding failed ({one_line(exc)})") from None
    finally:
        if progress:
            progress.remove_task(task)
    t_embed = time.perf_counter() - t0
    result = score_embeddings(
        Z, data.labels, Z_train, data.train_labels if Z_train is not None else None, config, metrics,
        name=source.name, path=source.path, epoch=enc.epoch,
        source={"arch": enc.arch, "notes": enc.notes, "normalization": {"mean": list(mean), "std": list(std)},
                "input_size": enc.input_size},
        z3_path=z3_path,
    )
    result.timings = {"load": round(t_load, 4), "embed": round(t_embed, 4), **result.timings}
    return result



def score_sources(
    sources: list[Source],
    data: ImageSet,
    config: EvalConfig = EvalConfig(),
    metrics: list[str] | None = None,
    batch_size: int = 256,
    device: str = "auto",
    cache: ResultCache | None = None,
    progress: Progress | None = None,
    log: Log | None = None,
    run_config: dict[str, Any] | None = None,
    save_z3: Path | None = None,
    precision: Precision = "fp32",
    on_result: OnResult | None = None,
) -> Run:
    """Score each source in order; a source that fails becomes a failure and the others go on.

    ``save_z3``: a folder that receives ``<name>.z3.npz`` per source (see :func:`score_embeddings`); two sources
    that would share a file are a ValueError before anything is scored. ``on_result(run, record)`` is called as
    each result or failure is added. A cached result is reported under the name and path of the source asked for.
    ``precision``: of the forward passes, ``fp32`` or ``bf16`` (see :func:`sslmon.embed.embed_images`).
    """
    z3_names = [f"{Path(source.name).stem}.z3.npz" for source in sources]
    if save_z3 is not None:
        _check_z3_names(sources, z3_names)
    dev = resolve_device(device)
    if config.k is None:
        if data.num_classes is None:
            raise ValueError(f"dataset {data.name} has no labels: pass --k (the number of clusters k1)")
        config = replace(config, k=data.num_classes)
    config = replace(config, device=dev.type if dev.type != "mps" else "cpu")
    run = Run(config={**config.as_dict(), "metrics": metrics, "dataset": data.name,
                      "n_samples": len(data.images), "n_train": None if data.train_images is None else len(data.train_images),
                      "batch_size": batch_size, "device": dev.type, "precision": precision, **(run_config or {})})
    dataset_digest = array_digest(data.images, data.labels, data.train_images, data.train_labels) if cache else ""
    overall = progress.add_task("encoders", total=len(sources)) if progress else None
    for source, z3_name in zip(sources, z3_names):
        failed = len(run.failures)
        try:
            z3_path = save_z3 / z3_name if save_z3 is not None else None
            key = cache.key(source.content(), dataset_digest, run.config) if cache else None
            reuse = cache is not None and (z3_path is None or z3_path.exists())
            result = cache.get(key) if reuse else None
            if result is not None:
                result = replace(result, name=source.name, path=source.path)
                if log:
                    log(f"cached: {source.name} (same file, dataset and settings; --no-cache recomputes)")
            else:
                if log:
                    log(f"scoring {source.name}")
                result = _score_source(source, data, config, metrics, batch_size, dev, progress, z3_path, precision)
                if cache:
                    cache.put(key, result)
            run.results.append(result)
        except Exception as exc:  # one bad encoder never loses the results of the others
            where = source.path or source.name
            if isinstance(exc, (CheckpointError, OutputError)):
                message = str(exc)
            elif isinstance(exc, OSError) and exc.strerror:
                message = f"{where}: {exc.strerror.lower()}"
            else:
                message = f"{where}: {type(exc).__name__}: {one_line(exc)}"
            run.failures.append(Failure(where, message))
            if log:
                log(f"error: {message}")
        if on_result:
            on_result(run, run.failures[-1] if len(run.failures) > failed else run.results[-1])
        if progress:
            progress.advance(overall)
    return run


def _check_z3_names(sources: list[Source], z3_names: list[str]) -> None:
    """ValueError naming the first two sources whose Z3 files would have the same name."""
    seen: dict[str, Source] = {}
    for source, name in zip(sources, z3_names):
        if name in seen:
            first = seen[name]
            raise ValueError(f"--save-z3: {first.path or first.name} and {source.path or source.name} would both be saved as "
                             f"{name}; give each folder its own --save-z3 folder (one run per sslmon score)")
        seen[name] = source


def checkpoint_sources(paths: Iterable[str | Path], arch: str = "auto", trust: bool = False) -> list[Source]:
    """Sources for checkpoint files and folders (folders expand to their checkpoints, epoch order)."""
    sources = []
    for path in map(Path, paths):
        files = find_checkpoints(path) if path.is_dir() else [path]
        for f in files:
            sources.append(Source(f.name, str(f), partial(load_checkpoint, f, arch=arch, trust=trust),
                                  partial(_checkpoint_identity, f, arch, trust)))
    return sources


def _checkpoint_identity(path: Path, arch: str, trust: bool) -> str:
    """What identifies a checkpoint's result in the cache: its bytes, and the file name (the epoch may come from
    it), the architecture asked for and trust (a file read with --trust-checkpoints is never served without it)."""
    return f"{file_digest(path)} name={path.name} arch={arch} trust={trust}"


def torchvision_sources(
    names: Iterable[str], weights: str = "default", seed: int = 0, download: bool | None = None,
    progress: bool | None = None,
) -> list[Source]:
    """Sources for torchvision models by name, with their default pretrained weights or ``none`` (seeded random init).

    ``download`` (None: unless SSLMON_OFFLINE=1), ``progress`` (None: on a terminal): see :func:`load_torchvision`.
    """

    def load(name: str) -> Encoder:
        torch.manual_seed(seed)
        return load_torchvision(name, weights=weights, download=download, progress=progress)

    version = f"torchvision {torchvision.__version__}"  # its default weights can change between releases
    return [Source(n, None, partial(load, n), lambda n=n: f"{version}:{n}:{weights}:{seed}") for n in names]
