"""The run layer: scoring orchestrated. :class:`Scorer` scores :class:`~sslmon.models.sources.Source` objects --
checkpoints, torchvision models, embedding files -- with one set of :class:`~sslmon.options.Options`: one results
cache, one executor (local or Ray), results in input order, a failure per input that fails, Z3 files when asked.
Below it, :func:`score_model` (embed images with a model, then evaluate) and :func:`score_embeddings` (evaluate an
array into a :class:`~sslmon.results.Result`); beside it, the reference values (Gaussian noise, the init milestone).

:mod:`sslmon.api` is the door to all of this; nothing here imports it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
import time
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from sslmon import rules
from sslmon._text import one_line
from sslmon.alarms import relative_spread
from sslmon.callbacks import Log, OnProgress
from sslmon.errors import OptionsError, SslmonError
from sslmon.evaluation import EvalConfig, evaluate_embeddings, layout_note
from sslmon.io.z3file import z3_paths
from sslmon import metrics as M
from sslmon.models.sources import EMBEDDINGS, ENCODER, Source
from sslmon.options import Options
from sslmon.results import Failure, OnResult, Result, Run
from sslmon.selection import CONSENSUS, DEFAULT_CONSENSUS

if TYPE_CHECKING:
    import torch
    from torch import nn

    from sslmon.io.cache import ResultCache
    from sslmon.io.datasets import ImageSet



# --------------------------------------------------------------------------- one embedding, one model


def score_embeddings(
    Z: Any,
    labels: Any = None,
    *,
    config: EvalConfig = EvalConfig(),
    metrics: Sequence[str] | None = None,
    train_embeddings: Any = None,
    train_labels: Any = None,
    name: str = "embeddings",
    path: str | None = None,
    epoch: int | None = None,
    source: dict[str, Any] | None = None,
    z3_path: Path | None = None,
    views: Any = None,
) -> Result:
    """:func:`sslmon.api.evaluate` (:func:`~sslmon.evaluation.evaluate_embeddings`) into a :class:`Result` record; with ``z3_path``, Z3, C1, C2 and the labels of the first
    evaluation seed are saved there (see :mod:`sslmon.io.z3file`), for ``sslmon plot``. ``views``: embeddings of
    augmented views (n_images, n_views, d), for LiDAR."""
    ev = evaluate_embeddings(Z, labels, train_embeddings, train_labels, config, list(metrics) if metrics else None, views)
    if z3_path is not None and ev.Z3 is not None:
        from sslmon.io.z3file import write_z3

        write_z3(z3_path, ev.Z3, epoch=epoch, c1=ev.C1, c2=ev.C2, labels=labels)
    shape = getattr(Z, "shape", None)
    two_d = shape is not None and len(shape) == 2
    return Result(name=name, path=path, metrics=ev.metrics, errors=ev.errors, timings=ev.timings, epoch=epoch,
                  n_samples=int(shape[0]) if two_d else None, dim=int(shape[1]) if two_d else None, k=ev.k,
                  reference=ev.reference, source=source or {}, metrics_std=ev.metrics_std, per_seed=ev.per_seed,
                  notes=ev.notes, spread=relative_spread(Z) if two_d else None)


def score_model(
    model: nn.Module,
    images: torch.Tensor,
    labels: Any = None,
    *,
    config: EvalConfig = EvalConfig(),
    metrics: Sequence[str] | None = None,
    train_images: torch.Tensor | None = None,
    train_labels: Any = None,
    mean: Sequence[float] = (0.5, 0.5, 0.5),
    std: Sequence[float] = (0.5, 0.5, 0.5),
    input_size: int | None = None,
    batch_size: int = 256,
    device: str | torch.device = "auto",
    precision: str = "fp32",
    name: str = "model",
    path: str | None = None,
    epoch: int | None = None,
    source: dict[str, Any] | None = None,
    z3_path: Path | None = None,
    on_progress: OnProgress | None = None,
    lidar_views: int = 0,
    log: Log | None = None,
) -> Result:
    """Embed ``images`` (uint8 (n, C, H, W), also numpy, (n, H, W) or channels-last: :func:`as_images`; grayscale
    is repeated to 3 channels, ``(x/255 - mean) / std``, resized
    to ``input_size`` when given) with ``model`` and evaluate them. The train split is embedded only when it has
    labels and a metric fitted on it (``knn_acc``, ``lp_acc``) is wanted. ``config.device`` follows ``device``.
    ``lidar_views`` >= 2 (and ``lidar`` wanted): that many augmented views (:mod:`sslmon.models.augment`, seeded
    with ``config.seed``) of each of up to :data:`~sslmon.rules.LIDAR_IMAGES` images are embedded too, for LiDAR.
    ``log``: on the CPU, a long embedding is announced with its estimated time (:class:`FirstBatchClock`)."""
    from sslmon.models.embed import FirstBatchClock, as_images, embed, embed_views

    dev = device if not isinstance(device, str) else rules.resolve_device(device)
    images = as_images(images)
    train_images = None if train_images is None else as_images(train_images, "train_images")
    wanted = set(metrics) if metrics is not None else set(M.METRICS)
    use_train = train_images is not None and train_labels is not None and bool(set(M.TRAIN_SPLIT) & wanted)
    if log is not None and dev.type == "cpu":
        n_images = len(images) + (len(train_images) if use_train and train_images is not None else 0)
        on_progress = FirstBatchClock(n_images, input_size or images.shape[-1], log, on_progress)
    run = partial(embed, model, mean=mean, std=std, input_size=input_size, batch_size=batch_size, device=dev,
                  precision=precision, name=name, on_progress=on_progress)
    t0 = time.perf_counter()
    Z = run(images)
    Z_train = run(train_images) if use_train else None
    t_embed = time.perf_counter() - t0
    views = embed_views(run, images, lidar_views, config.seed, dev, name, on_progress) if lidar_views and set(M.VIEW_BASED) & wanted else None
    t_views = time.perf_counter() - t0 - t_embed
    result = score_embeddings(Z, labels, config=replace(config, device=rules.evaluation_device(dev)),
                              metrics=metrics, train_embeddings=Z_train, train_labels=train_labels if use_train else None,
                              name=name, path=path, epoch=epoch, source=source, z3_path=z3_path, views=views)
    result.timings = {"embed": round(t_embed, 4), **({"embed_views": round(t_views, 4)} if views is not None else {}), **result.timings}
    return result


# --------------------------------------------------------------------------- sources on an image set


@dataclass
class _Job:
    """What every source's task shares: the images (None for embedding files), the settings, and (local executor
    only) the progress and log callbacks."""

    data: ImageSet | None
    options: Options
    config: EvalConfig
    on_progress: OnProgress | None = field(default=None, repr=False)
    log: Log | None = field(default=None, repr=False)  # local executor only, as on_progress


def _score_task(item: tuple[Source, Path | None], job: _Job) -> Result:
    """Load, embed and evaluate one encoder, or load and evaluate one embedding file (in a worker under
    ``executor='ray'``, which then writes the Z3 file: its folder, like the inputs, must be on a filesystem the
    workers share)."""
    source, z3_path = item
    if source.kind == EMBEDDINGS:
        return _score_embedding_file(source, z3_path, job)
    t0 = time.perf_counter()
    enc = source.load()
    t_load = time.perf_counter() - t0
    data, opts = job.data, job.options
    assert data is not None, "an encoder is scored on images"
    mean, std = enc.mean or data.mean, enc.std or data.std
    result = score_model(
        enc.model, data.images, data.labels, config=job.config, metrics=opts.metrics, train_images=data.train_images,
        train_labels=data.train_labels, mean=mean, std=std, input_size=enc.input_size, batch_size=opts.batch_size or 256,
        device=opts.device, precision=opts.precision, name=source.name, path=source.path, epoch=enc.epoch,
        source={"arch": enc.arch, "notes": enc.notes, "normalization": {"mean": list(mean), "std": list(std)},
                "input_size": enc.input_size, **({"training": enc.training} if enc.training else {})},
        z3_path=z3_path, on_progress=job.on_progress, lidar_views=opts.lidar_views, log=job.log,
    )
    result.timings = {"load": round(t_load, 4), **result.timings}
    result.run = source.run
    return result


def _score_embedding_file(source: Source, z3_path: Path | None, job: _Job) -> Result:
    """Load and evaluate one embedding file; k1 from its labels unless ``k`` is given (:func:`cluster_count`)."""
    emb = source.load()
    k = cluster_count(job.options.k, emb.labels, str(source.path))
    if job.log:
        job.log(f"scoring {emb.path} ({emb.embeddings.shape[0]} x {emb.embeddings.shape[1]})")
    return score_embeddings(emb.embeddings, emb.labels, config=replace(job.config, k=k), metrics=job.options.metrics,
                            train_embeddings=emb.train_embeddings, train_labels=emb.train_labels, name=emb.name,
                            path=emb.path, z3_path=z3_path)


def load_images(options: Options, log: Log | None = None) -> ImageSet:
    """The evaluation images of ``options`` (resolved: ``train_limit`` follows ``limit``); DatasetError when bad.
    Without labels (and without ``metrics``) ``log`` gets one line saying the label-based metrics are left out."""
    from sslmon.io.datasets import load_dataset

    data = load_dataset(options.dataset, limit=options.limit, train_limit=options.train_limit, seed=options.seed,
                        image_size=options.image_size, trust_data=options.trust_data)
    if log:
        log(f"dataset {data.name}: {len(data.images)} images"
            + (f", {len(data.train_images)} train" if data.train_images is not None else "")
            + f", {data.images.shape[-2]}x{data.images.shape[-1]} px")
        if data.labels is None and options.metrics is None:
            log(f"note: {data.name} has no labels: the label-based metrics ({', '.join(M.LABEL_BASED)}) are left out")
    return data


def cluster_count(k: int | None, labels: Any, what: str) -> int:
    """k1: ``k`` when given, else the number of distinct labels (the same rule for every input); OptionsError
    naming ``what`` when there is neither."""
    if k is not None:
        return k
    if labels is None or len(labels) == 0:
        raise OptionsError(f"{what} has no labels to take the number of clusters from: give k (k1)", param="k")
    return int(len(np.unique(np.asarray(labels))))


def cache_settings(config: EvalConfig, options: Options, device: str) -> dict[str, Any]:
    """What besides the input and the images can change a result, and so goes into the cache key: the evaluation
    settings, the metrics asked for, the precision and the device type. Names, paths, ``batch_size``, output
    options and informational fields of the run's config (``layout_workers``: bit-identical results) are not part of it."""
    settings = {key: value for key, value in config.as_dict().items() if key != "layout_workers"}
    return {**settings, "metrics": None if options.metrics is None else sorted(options.metrics),
            "precision": options.precision, "device": device, **_lidar_config(options)}


class Scorer:
    """Scores sources with one set of (resolved) options -- one results cache, one executor -- as many times as
    asked: ``score``, ``compare`` and the embedding files call it once, ``sslmon watch`` once per batch of new
    checkpoints. ``data``: the image set that encoders embed; None for embedding files (each brings its own
    embeddings and labels, and its own k1 unless ``options.k`` is given). A context manager: ``close()`` releases
    the executor (a Ray instance it started)."""

    def __init__(self, data: ImageSet | None, options: Options, *, log: Log | None = None,
                 on_progress: OnProgress | None = None, run_config: Mapping[str, Any] | None = None) -> None:
        from sslmon.executors import make_executor

        self.data, self.options, self.log, self.on_progress = data, options, log, on_progress
        dev = rules.resolve_device(options.device)
        self.device = rules.evaluation_device(dev)
        k = options.k if data is None else cluster_count(options.k, data.labels, f"dataset {data.name}")
        self.config = options.eval_config(k, self.device)
        self.executor = make_executor(options.executor, address=options.ray_address, gpus_per_task=options.gpus_per_task,
                                      cpus_per_task=options.cpus_per_task)
        _say_layout(self.config, log)
        metrics = {"metrics": None if options.metrics is None else list(options.metrics)}
        if data is None:
            self.run_config = {**self.config.as_dict(), **metrics, "device": dev.type, **_rank_config(options)}
        else:
            self.run_config = {**self.config.as_dict(), **metrics, "dataset": data.name, "n_samples": len(data.images),
                               "n_train": None if data.train_images is None else len(data.train_images),
                               "batch_size": options.batch_size, "device": dev.type, "precision": options.precision,
                               "executor": self.executor.name, **_lidar_config(options), **(run_config or {}),
                               **_rank_config(options)}
        self.cache: ResultCache | None = None
        if options.cache:
            from sslmon.io.cache import ResultCache, array_digest

            self.cache = ResultCache(warn=log)
            self._dataset_digest = ("embedding files" if data is None else
                                    array_digest(data.images, data.labels, data.train_images, data.train_labels))
            self._settings = cache_settings(self.config, options, self.device)

    def __enter__(self) -> Scorer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.executor.close()

    def score(self, sources: Sequence[Source], on_result: OnResult | None = None) -> Run:
        """Score each source; one that fails becomes a :class:`Failure` and the others go on. Results and failures
        are in the order of ``sources``; ``on_result(run, record)`` is called as each arrives."""
        opts = self.options
        z3s = z3_paths(sources, opts.save_z3)
        run = Run(config=dict(self.run_config), exclude_init=opts.exclude_init)
        slots: dict[int, Result | Failure] = {}
        todo: list[int] = []
        keys: dict[int, str] = {}
        resized: set[int] = set()  # input sizes the images were resized to (said once each)

        def add(index: int, record: Result | Failure) -> None:
            slots[index] = record
            (run.failures if isinstance(record, Failure) else run.results).append(record)
            size = record.source.get("input_size") if isinstance(record, Result) else None
            native = None if self.data is None else self.data.images.shape[-1]
            if self.log and isinstance(size, int) and size != native and size not in resized:
                resized.add(size)
                self.log(f"note: images resized from {native} to {size} px for {record.name} (the input size it "
                         f"expects){' and the others of that size' if len(sources) > 1 else ''}")
            if isinstance(record, Failure) and self.log:
                self.log(f"error: {record.error}")
            if on_result:
                on_result(run, record)
            if self.on_progress:
                self.on_progress("encoders", len(slots), len(sources))

        for i, source in enumerate(sources):
            try:
                cached = self._cached(i, source, keys, z3s[i])
            except Exception as exc:
                add(i, _failure(source, exc))
                continue
            if cached is not None:
                add(i, cached)
            else:
                todo.append(i)
        check_paths = getattr(self.executor, "check_paths", None)  # workers elsewhere must see the checkpoints
        if check_paths is not None and todo:
            check_paths([p for p in (sources[i].path for i in todo) if p is not None])
        local = self.executor.name == "local"
        job = _Job(self.data, opts, self.config, self.on_progress if local else None, self.log if local else None)
        if self.log and todo:
            for i in todo[:1] if local else todo:
                self._say_scoring(sources[i])
        try:
            for j, outcome in self.executor.run(_score_task, [(sources[i], z3s[i]) for i in todo], job):
                i = todo[j]
                if isinstance(outcome, BaseException):
                    add(i, _failure(sources[i], outcome))
                else:
                    if self.cache is not None and i in keys:
                        self.cache.put(keys[i], outcome)
                    add(i, outcome)
                if self.log and local and j + 1 < len(todo):
                    self._say_scoring(sources[todo[j + 1]])
        finally:  # input order, also for what finished before a Ctrl-C
            run.results = [r for _, r in sorted(slots.items()) if isinstance(r, Result)]
            run.failures = [f for _, f in sorted(slots.items()) if isinstance(f, Failure)]
        missing = [r.name for i, r in slots.items() if isinstance(r, Result) and z3s[i] and not z3s[i].exists()]
        if missing and self.log:
            self.log(f"note: `save_z3` wrote no Z3 file for {len(missing)} result(s) ({_names(missing)}): the metrics "
                     "asked for do not need the UMAP layout Z3; add one that does, such as entropy_z3")
        return run

    def _say_scoring(self, source: Source) -> None:
        """``scoring NAME`` before an encoder is scored (an embedding file's task says it itself, with its shape, on the
        local executor)."""
        if self.log and (source.kind == ENCODER or self.executor.name != "local"):
            self.log(f"scoring {source.name}")

    def _cached(self, index: int, source: Source, keys: dict[int, str], z3_path: Path | None) -> Result | None:
        """The cached result of ``source`` under its name and path, or None (then ``keys[index]`` is set when the
        source has an identity)."""
        if self.cache is None:
            return None
        from sslmon.io.cache import cache_key

        content = source.content()
        if content is None:
            return None
        keys[index] = cache_key(content, self._dataset_digest, self._settings)
        if z3_path is not None and not z3_path.exists():
            return None  # the Z3 file is only written when the result is computed
        result = self.cache.get(keys[index])
        if result is None:
            return None
        if self.log:
            self.log(f"cached: {source.name} (same content, images and settings; `cache=False` recomputes)")
        return replace(result, name=source.name, path=source.path, run=source.run)


def _names(names: Sequence[str], shown: int = 3) -> str:
    """``a, b, c`` or ``a, b, c, ... (7 in all)``."""
    return ", ".join(names[:shown]) + (f", ... ({len(names)} in all)" if len(names) > shown else "")


def _failure(source: Source, exc: BaseException) -> Failure:
    """One line naming the source: an sslmon error as it is, an OS error by its reason, else the exception type."""
    where = source.path or source.name
    if isinstance(exc, SslmonError):
        message = str(exc)
    elif isinstance(exc, OSError) and exc.strerror:
        message = f"{where}: {exc.strerror.lower()}"
    else:
        message = f"{where}: {type(exc).__name__}: {one_line(exc)}"
    return Failure(where, message, getattr(exc, "param", None))


def _say_layout(config: EvalConfig, log: Log | None) -> None:
    """Say once per run when the layout is not the paper's (see :func:`sslmon.evaluation.layout_note`)."""
    note = layout_note(config.umap_epochs)
    if note and log:
        log(note)


def _lidar_config(opts: Options) -> dict[str, Any]:
    """``lidar_views`` for a run's config and cache key, only when LiDAR's views are computed (so earlier keys hold)."""
    return {"lidar_views": opts.lidar_views, "lidar_images": rules.LIDAR_IMAGES} if opts.lidar_views else {}


def _rank_config(opts: Options) -> dict[str, Any]:
    """How a run is ranked, for its config: ``rank_by``, the consensus members, ``exclude_init``."""
    members = {"consensus_metrics": list(DEFAULT_CONSENSUS)} if opts.rank_by == CONSENSUS else {}
    return {"rank_by": opts.rank_by, **members, "exclude_init": opts.exclude_init}


# --------------------------------------------------------------------------- reference values

NOISE_NAME = "noise N(0,1)"  # the structureless reference embedding, as the table names it


def noise_reference(n: int, d: int, config: EvalConfig, metrics: Sequence[str] | None = None, *,
                    cache: bool = True, log: Log | None = None) -> Result:
    """The label-free metrics of a structureless embedding of the same shape: i.i.d. standard Gaussian noise (n, d),
    float32, drawn with ``config.seed``, through the same evaluation (``config``: k, seeds, UMAP, bin factor). Cached
    in the ``reference`` folder of sslmon's cache folder per (n, d, settings) (``cache``)."""
    wanted = [m for m in (metrics or M.LABEL_FREE) if m in M.LABEL_FREE and m not in M.VIEW_BASED]
    key, store = None, None
    if cache:
        from sslmon.io.cache import ResultCache, cache_key, default_cache_dir

        # apart from the encoders' entries; an unwritable cache folder was already reported by the results cache
        store = ResultCache(default_cache_dir() / "reference", warn=None)
        key = cache_key(f"gaussian-noise float32 n={n} d={d}", "none", {**config.as_dict(), "metrics": sorted(wanted)})
        cached = store.get(key)
        if cached is not None:
            return cached
    Z = np.random.default_rng(config.seed).standard_normal((n, d)).astype(np.float32)
    if log:
        log(f"scoring the reference: Gaussian noise {n} x {d}")
    result = score_embeddings(Z, None, config=config, metrics=wanted, name=NOISE_NAME)
    if store is not None and key is not None:
        store.put(key, result)
    return result


def add_reference_values(run: Run, config: EvalConfig, options: Options, log: Log | None = None) -> None:
    """Fill ``run.reference_values``: ``noise``, one entry per distinct (n, d, k) of the results (usually one:
    one extra evaluation per result set), each ``{"n", "d", "k", "data_seed", "metrics", "metrics_std"}`` of
    :func:`noise_reference`; and ``init``, the label-free metrics of the init (epoch 0) milestone when there is one.
    Nothing when ``options.reference_values`` is off."""
    if not options.reference_values or not run.results:
        return
    noise = []
    for n, d, k in sorted({(r.n_samples, r.dim, r.k) for r in run.results if r.n_samples and r.dim and r.k}):
        ref = noise_reference(n, d, replace(config, k=k), options.metrics, cache=options.cache, log=log)
        noise.append({"n": n, "d": d, "k": k, "data_seed": config.seed, "metrics": ref.metrics, "metrics_std": ref.metrics_std})
    init = next((r for r in run.results if r.is_init), None)
    run.reference_values = {
        "noise": noise,
        "init": None if init is None else {"name": init.name, "metrics": {m: v for m, v in init.metrics.items() if m in M.LABEL_FREE}},
    }
