"""The Python API behind the CLI: score inputs into a :class:`~sslmon.results.Run`.

A training loop can call :func:`score_embeddings` on arrays directly; the CLI
calls :func:`score_embedding_files`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable

from sslmon.evaluate import EvalConfig, evaluate_embeddings
from sslmon.inputs import InputError, load_embeddings
from sslmon.results import Failure, Result, Run

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
) -> Result:
    """Evaluate one set of embeddings into a :class:`Result` (never raises for bad data)."""
    ev = evaluate_embeddings(Z, labels, train_embeddings, train_labels, config, metrics)
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
    )


def score_embedding_files(
    paths: Iterable[str | Path],
    config: EvalConfig = EvalConfig(),
    metrics: list[str] | None = None,
    log: Log | None = None,
) -> Run:
    """Score each ``.npz``/``.npy`` file; unreadable files become failures, the rest are scored."""
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
    return run
