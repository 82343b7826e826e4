"""sslmon's Python API, the one door to scoring: the CLI, ``sslmon watch`` and the Lightning callback all go through it.

- :func:`evaluate` -- metrics of an embedding array (no torch model, no files).
- :func:`score_model` -- embed images with an ``nn.Module`` and evaluate them: a :class:`~sslmon.results.Result`.
- :func:`score` -- checkpoint files and folders, or embedding files (``.npz``/``.npy``): a :class:`~sslmon.results.Run`.
- :func:`compare` -- torchvision models by name: a :class:`~sslmon.results.Run`.

Every setting of a run is a field of the frozen :class:`Options` (the CLI flags and YAML keys have the same names);
its ``None`` fields take the domain defaults in :meth:`Options.resolve`, the one place they are decided. Progress goes
through plain callbacks: ``log(line)``, ``on_progress(task, done, total)``, ``on_result(run, record)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from functools import partial
from pathlib import Path
import time
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from sslmon._text import one_line
from sslmon.errors import OptionsError, SslmonError
from sslmon.executors import EXECUTORS
from sslmon.evaluation import DEFAULT_SEEDS, DEFAULT_UMAP_EPOCHS, EvalConfig, Evaluation, evaluate_embeddings
from sslmon.metrics import METRICS, Z3_KMEANS_VARIANTS
from sslmon.results import Failure, OnResult, Result, Run
from sslmon.selection import CONSENSUS, DEFAULT_CONSENSUS

if TYPE_CHECKING:
    import torch
    from torch import nn

    from sslmon.io.cache import ResultCache
    from sslmon.io.datasets import ImageSet
    from sslmon.models.encoders import Encoder

Log = Callable[[str], None]
OnProgress = Callable[[str, int, int], None]  # (task, done, total): "encoders" and "embedding NAME", in items
PRECISIONS = ("fp32", "bf16")
EMBEDDING_SUFFIXES = (".npz", ".npy")
TRAIN_SPLIT_METRICS = ("knn_acc", "lp_acc", "lp_acc_se")  # fitted on the train split when there is one
LIDAR_IMAGES = 1000  # images (a seeded random subset) whose augmented views LiDAR uses (the paper also uses a subset)


@dataclass(frozen=True)
class Options:
    """The settings of one scoring run. ``None`` means "the default for what is scored" (see :meth:`resolve`).

    Images: ``dataset`` (None: the embedded Fashion-MNIST; ``fashion-mnist[:DIR]``, ``cifar10:DIR``,
    ``cifar100:DIR``, ``imagefolder:DIR``, ``npz:FILE``), ``limit`` evaluation images and ``train_limit`` train
    images (stratified; None: all, and ``train_limit`` follows ``limit``), ``image_size`` (imagefolder, pixels),
    ``trust_data`` (allow dataset pickles that can run code). Encoders: ``arch`` of checkpoints (``auto`` matches
    keys and shapes), ``trust_checkpoints``, torchvision ``weights`` (``default`` or ``none``), ``offline`` (never
    download). Evaluation: ``k`` (k1 clusters; None: the number of distinct labels), ``seed`` (data seed), ``seeds``
    (UMAP/k-means seeds), ``umap_epochs``, ``z3_kmeans`` (what cosine k-means clusters: ``paper`` or ``centred``
    Z3, see :data:`sslmon.metrics.Z3_KMEANS_VARIANTS`), ``metrics`` (None: all the data allows), ``bin_factor``
    (entropy bin width in stds of Z3), ``lidar_views`` (views per image for LiDAR, on up to LIDAR_IMAGES images;
    0: no LiDAR). Ranking: ``rank_by`` (a metric or ``consensus``), ``exclude_init``. Execution: ``device``
    (``auto``: cuda, then mps, then cpu, for every kind of input), ``precision``, ``batch_size``, ``cache``,
    ``save_z3`` (folder for ``NAME.z3.npz``), ``executor`` (``local`` or ``ray``), ``ray_address``,
    ``gpus_per_task``, ``cpus_per_task``.
    """

    dataset: str | None = None
    limit: int | None = None
    train_limit: int | None = None
    image_size: int = 224
    trust_data: bool = False
    arch: str = "auto"
    trust_checkpoints: bool = False
    weights: str = "default"
    offline: bool = False
    k: int | None = None
    seed: int = 0
    seeds: tuple[int, ...] = DEFAULT_SEEDS
    umap_epochs: int = DEFAULT_UMAP_EPOCHS
    z3_kmeans: str = "paper"
    metrics: tuple[str, ...] | None = None
    bin_factor: float | None = None
    lidar_views: int = 0
    rank_by: str | None = None
    exclude_init: bool = True
    device: str = "auto"
    precision: str = "fp32"
    batch_size: int | None = None
    cache: bool = True
    save_z3: Path | None = None
    executor: str = "local"
    ray_address: str | None = None
    gpus_per_task: float | None = None
    cpus_per_task: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "seeds", tuple(self.seeds))
        if self.metrics is not None:
            object.__setattr__(self, "metrics", tuple(self.metrics))
        _check(len(self.seeds) > 0 and min(self.seeds) >= 0 and len(set(self.seeds)) == len(self.seeds),
               "seeds", f"{list(self.seeds)} is not a list of at least one distinct seed >= 0")
        for name in ("limit", "train_limit", "umap_epochs", "batch_size"):
            value = getattr(self, name)
            _check(value is None or value >= 1, name, f"must be >= 1, got {value}")
        _check(self.k is None or self.k >= 2, "k", f"must be >= 2, got {self.k}")
        _check(self.bin_factor is None or self.bin_factor > 0, "bin_factor", f"must be > 0, got {self.bin_factor}")
        _check(self.lidar_views == 0 or self.lidar_views >= 2, "lidar_views", f"must be 0 (off) or >= 2, got {self.lidar_views}")
        unknown = [m for m in self.metrics or () if m not in METRICS]
        _check(not unknown and self.metrics != (), "metrics",
               f"unknown metric(s) {', '.join(unknown) or 'none given'}; valid: {', '.join(METRICS)}")
        _check(self.rank_by in (None, CONSENSUS, *METRICS), "rank_by",
               f"'{self.rank_by}' is neither '{CONSENSUS}' nor a metric; valid metrics: {', '.join(METRICS)}")
        _check(self.z3_kmeans in Z3_KMEANS_VARIANTS, "z3_kmeans",
               f"must be one of {', '.join(Z3_KMEANS_VARIANTS)}, got {self.z3_kmeans!r}")
        _check(self.precision in PRECISIONS, "precision", f"must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        _check(self.weights in ("default", "none"), "weights", f"must be 'default' or 'none', got {self.weights!r}")
        _check(self.executor in EXECUTORS, "executor", f"must be one of {', '.join(EXECUTORS)}, got {self.executor!r}")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], **defaults: Any) -> Options:
        """Options from a mapping such as the CLI's parsed flags: keys that are not fields are ignored, ``None``
        keeps the default (``defaults`` first, then the field's)."""
        names = {f.name for f in fields(cls)}
        given = {key: value for key, value in values.items() if key in names and value is not None}
        return cls(**{**defaults, **given})

    def resolve(self, kind: str) -> Options:
        """The domain defaults for ``kind`` (``checkpoints``, ``embeddings`` or ``models``), in one place:
        ``bin_factor`` 0.4 for SSL encoders and embeddings, 0.8 for supervised ImageNet models (as in the paper);
        ``batch_size`` 256, 64 for torchvision models (they run at 224 px and more); ``rank_by`` the consensus of
        label-free metrics for a training run's checkpoints (docs/selection.md), RankMe for models;
        ``train_limit`` = ``limit``. The metrics that ``rank_by`` needs, and ``lidar`` with ``lidar_views``, are
        added to ``metrics``."""
        models = kind == "models"
        rank_by = self.rank_by or ("rankme" if models else CONSENSUS)
        metrics = self.metrics
        if metrics is not None:
            needed = (*(DEFAULT_CONSENSUS if rank_by == CONSENSUS else (rank_by,)), *(("lidar",) if self.lidar_views else ()))
            metrics = metrics + tuple(m for m in needed if m not in metrics)
        return replace(self, rank_by=rank_by, metrics=metrics,
                       bin_factor=self.bin_factor or (0.8 if models else 0.4),
                       batch_size=self.batch_size or (64 if models else 256),
                       train_limit=self.train_limit or self.limit)

    def eval_config(self, k: int | None, device: str) -> EvalConfig:
        """The evaluation settings (call on resolved options)."""
        return EvalConfig(k=k, seed=self.seed, seeds=self.seeds, umap_epochs=self.umap_epochs,
                          bin_factor=self.bin_factor or 0.4, device=device, z3_kmeans=self.z3_kmeans)


def _check(ok: bool, param: str, problem: str) -> None:
    if not ok:
        raise OptionsError(f"{param}: {problem}", param=param)


# --------------------------------------------------------------------------- arrays and models


def evaluate(
    Z: Any,
    labels: Any = None,
    *,
    config: EvalConfig = EvalConfig(),
    metrics: Sequence[str] | None = None,
    train_embeddings: Any = None,
    train_labels: Any = None,
    views: Any = None,
) -> Evaluation:
    """The metrics of embeddings ``Z`` (n, d): see :func:`sslmon.evaluation.evaluate_embeddings` (never raises for
    degenerate data: a metric without a value is ``None`` with its reason in ``errors``). ``views``: embeddings of
    augmented views of some of the images (n_images, n_views, d), for LiDAR."""
    return evaluate_embeddings(Z, labels, train_embeddings, train_labels, config, list(metrics) if metrics else None, views)


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
    """:func:`evaluate` into a :class:`Result` record; with ``z3_path``, Z3, C1, C2 and the labels of the first
    evaluation seed are saved there (see :mod:`sslmon.io.z3file`), for ``sslmon plot``. ``views``: embeddings of
    augmented views (n_images, n_views, d), for LiDAR."""
    ev = evaluate(Z, labels, config=config, metrics=metrics, train_embeddings=train_embeddings, train_labels=train_labels,
                  views=views)
    if z3_path is not None and ev.Z3 is not None:
        from sslmon.io.z3file import write_z3

        write_z3(z3_path, ev.Z3, epoch=epoch, c1=ev.C1, c2=ev.C2, labels=labels)
    shape = getattr(Z, "shape", None)
    two_d = shape is not None and len(shape) == 2
    return Result(name=name, path=path, metrics=ev.metrics, errors=ev.errors, timings=ev.timings, epoch=epoch,
                  n_samples=int(shape[0]) if two_d else None, dim=int(shape[1]) if two_d else None, k=ev.k,
                  reference=ev.reference, source=source or {}, metrics_std=ev.metrics_std, per_seed=ev.per_seed)


class EmbeddingError(SslmonError):
    """The forward pass failed (wrong input size for the model, out of memory, ...); the message names the model."""


def embed(
    model: nn.Module,
    images: torch.Tensor,
    *,
    mean: Sequence[float],
    std: Sequence[float],
    input_size: int | None = None,
    batch_size: int = 256,
    device: str | torch.device = "auto",
    precision: str = "fp32",
    name: str = "model",
    on_progress: OnProgress | None = None,
) -> np.ndarray:
    """Embeddings (n, d) float32 of uint8 ``images`` (n, C, H, W) through ``model`` in eval mode under
    ``torch.inference_mode``; each submodule's train/eval mode is restored afterwards. EmbeddingError naming
    ``name`` when the forward pass fails."""
    from sslmon.models.embed import embed_images, resolve_device

    dev = device if not isinstance(device, str) else resolve_device(device)
    task, total, done = f"embedding {name}", len(images), 0

    def advance(k: int) -> None:
        nonlocal done
        done += k
        if on_progress is not None:
            on_progress(task, done, total)

    modes = [(m, m.training) for m in model.modules()]
    try:
        return embed_images(model, images, mean, std, input_size, batch_size, dev, on_batch=advance, precision=precision)  # type: ignore[arg-type]
    except (RuntimeError, ValueError) as exc:
        raise EmbeddingError(f"{name}: embedding failed ({one_line(exc)})") from None
    finally:
        for module, training in modes:
            module.training = training


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
) -> Result:
    """Embed ``images`` (uint8 (n, C, H, W); grayscale is repeated to 3 channels, ``(x/255 - mean) / std``, resized
    to ``input_size`` when given) with ``model`` and evaluate them. The train split is embedded only when it has
    labels and a metric fitted on it (``knn_acc``, ``lp_acc``) is wanted. ``config.device`` follows ``device``.
    ``lidar_views`` >= 2 (and ``lidar`` wanted): that many augmented views (:mod:`sslmon.models.augment`, seeded
    with ``config.seed``) of each of up to :data:`LIDAR_IMAGES` images are embedded too, for LiDAR."""
    from sslmon.models.embed import resolve_device

    dev = device if not isinstance(device, str) else resolve_device(device)
    wanted = set(metrics) if metrics is not None else set(METRICS)
    use_train = train_images is not None and train_labels is not None and bool(set(TRAIN_SPLIT_METRICS) & wanted)
    run = partial(embed, model, mean=mean, std=std, input_size=input_size, batch_size=batch_size, device=dev,
                  precision=precision, name=name, on_progress=on_progress)
    t0 = time.perf_counter()
    Z = run(images)
    Z_train = run(train_images) if use_train else None
    t_embed = time.perf_counter() - t0
    views = _lidar_views(run, images, lidar_views, config.seed, dev, name, on_progress) if lidar_views and "lidar" in wanted else None
    t_views = time.perf_counter() - t0 - t_embed
    result = score_embeddings(Z, labels, config=replace(config, device="cpu" if dev.type == "mps" else dev.type),
                              metrics=metrics, train_embeddings=Z_train, train_labels=train_labels if use_train else None,
                              name=name, path=path, epoch=epoch, source=source, z3_path=z3_path, views=views)
    result.timings = {"embed": round(t_embed, 4), **({"embed_views": round(t_views, 4)} if views is not None else {}), **result.timings}
    return result


def _lidar_views(run: Callable[..., np.ndarray], images: torch.Tensor, n_views: int, seed: int, device: torch.device,
                 name: str, on_progress: OnProgress | None) -> np.ndarray:
    """Embeddings (m, n_views, d) of ``n_views`` augmented views of m = min(n, LIDAR_IMAGES) images (a random
    subset drawn with ``seed``); progress as one task, ``embedding NAME views``."""
    import torch

    from sslmon.models.augment import uint8_views

    m = min(len(images), LIDAR_IMAGES)
    subset = torch.as_tensor(np.sort(np.random.default_rng(seed).permutation(len(images))[:m]))
    task = f"embedding {name} views"
    out = []
    for v, view in enumerate(uint8_views(images[subset], n_views, seed, device)):
        report = None if on_progress is None else (lambda _, done, __, v=v: on_progress(task, v * m + done, n_views * m))
        out.append(run(view, on_progress=report))
    return np.stack(out, axis=1)


# --------------------------------------------------------------------------- encoders on an image set


@dataclass
class Source:
    """One encoder to score: how to load it (picklable, so a Ray worker can) and what identifies its content for
    the cache."""

    name: str
    path: str | None
    load: Callable[[], Encoder]
    content: Callable[[], str]


@dataclass
class _Job:
    """What every encoder's task shares: the images, the settings, and (local executor only) the progress callback."""

    data: ImageSet
    options: Options
    config: EvalConfig
    on_progress: OnProgress | None = field(default=None, repr=False)


def _score_task(item: tuple[Source, Path | None], job: _Job) -> Result:
    """Load, embed and evaluate one encoder (in a worker under ``executor='ray'``, which then writes the Z3 file:
    its folder, like the checkpoints, must be on a filesystem the workers share)."""
    source, z3_path = item
    t0 = time.perf_counter()
    enc = source.load()
    t_load = time.perf_counter() - t0
    data, opts = job.data, job.options
    mean, std = enc.mean or data.mean, enc.std or data.std
    result = score_model(
        enc.model, data.images, data.labels, config=job.config, metrics=opts.metrics, train_images=data.train_images,
        train_labels=data.train_labels, mean=mean, std=std, input_size=enc.input_size, batch_size=opts.batch_size or 256,
        device=opts.device, precision=opts.precision, name=source.name, path=source.path, epoch=enc.epoch,
        source={"arch": enc.arch, "notes": enc.notes, "normalization": {"mean": list(mean), "std": list(std)},
                "input_size": enc.input_size},
        z3_path=z3_path, on_progress=job.on_progress, lidar_views=opts.lidar_views,
    )
    result.timings = {"load": round(t_load, 4), **result.timings}
    return result


def load_images(options: Options, log: Log | None = None) -> ImageSet:
    """The evaluation images of ``options`` (resolved: ``train_limit`` follows ``limit``); DatasetError when bad.
    Without labels (and without ``metrics``) ``log`` gets one line saying the label-based metrics are left out."""
    from sslmon.io.datasets import load_dataset
    from sslmon.metrics import LABEL_BASED

    data = load_dataset(options.dataset, limit=options.limit, train_limit=options.train_limit, seed=options.seed,
                        image_size=options.image_size, trust_data=options.trust_data)
    if log:
        log(f"dataset {data.name}: {len(data.images)} images"
            + (f", {len(data.train_images)} train" if data.train_images is not None else ""))
        if data.labels is None and options.metrics is None:
            log(f"note: {data.name} has no labels: the label-based metrics ({', '.join(LABEL_BASED)}) are left out")
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
    """Scores encoder sources on one image set with one set of options (one results cache, one executor), as many
    times as asked: ``score`` and ``compare`` call it once, ``sslmon watch`` once per batch of new checkpoints.
    A context manager: ``close()`` releases the executor (a Ray instance it started)."""

    def __init__(self, data: ImageSet, options: Options, *, log: Log | None = None,
                 on_progress: OnProgress | None = None, run_config: Mapping[str, Any] | None = None) -> None:
        from sslmon.models.embed import resolve_device
        from sslmon.executors import make_executor

        self.data, self.options, self.log, self.on_progress = data, options, log, on_progress
        dev = resolve_device(options.device)
        self.device = "cpu" if dev.type == "mps" else dev.type
        k = cluster_count(options.k, data.labels, f"dataset {data.name}")
        self.config = options.eval_config(k, self.device)
        self.executor = make_executor(options.executor, address=options.ray_address, gpus_per_task=options.gpus_per_task,
                                      cpus_per_task=options.cpus_per_task)
        self.run_config = {**self.config.as_dict(), "metrics": None if options.metrics is None else list(options.metrics),
                           "dataset": data.name, "n_samples": len(data.images),
                           "n_train": None if data.train_images is None else len(data.train_images),
                           "batch_size": options.batch_size, "device": dev.type, "precision": options.precision,
                           "executor": self.executor.name, **_lidar_config(options), **(run_config or {}), **_rank_config(options)}
        self.cache: ResultCache | None = None
        if options.cache:
            from sslmon.io.cache import ResultCache, array_digest

            self.cache = ResultCache(warn=log)
            self._dataset_digest = array_digest(data.images, data.labels, data.train_images, data.train_labels)
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
        z3_paths = _z3_paths(sources, opts.save_z3)
        run = Run(config=dict(self.run_config), exclude_init=opts.exclude_init)
        slots: dict[int, Result | Failure] = {}
        todo: list[int] = []
        keys: dict[int, str] = {}

        def add(index: int, record: Result | Failure) -> None:
            slots[index] = record
            (run.failures if isinstance(record, Failure) else run.results).append(record)
            if isinstance(record, Failure) and self.log:
                self.log(f"error: {record.error}")
            if on_result:
                on_result(run, record)
            if self.on_progress:
                self.on_progress("encoders", len(slots), len(sources))

        for i, source in enumerate(sources):
            try:
                cached = self._cached(i, source, keys, z3_paths[i])
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
        job = _Job(self.data, opts, self.config, self.on_progress if self.executor.name == "local" else None)
        if self.log and todo:
            for i in todo[:1] if self.executor.name == "local" else todo:
                self.log(f"scoring {sources[i].name}")
        try:
            for j, outcome in self.executor.run(_score_task, [(sources[i], z3_paths[i]) for i in todo], job):
                i = todo[j]
                if isinstance(outcome, BaseException):
                    add(i, _failure(sources[i], outcome))
                else:
                    if self.cache is not None and i in keys:
                        self.cache.put(keys[i], outcome)
                    add(i, outcome)
                if self.log and self.executor.name == "local" and j + 1 < len(todo):
                    self.log(f"scoring {sources[todo[j + 1]].name}")
        finally:  # input order, also for what finished before a Ctrl-C
            run.results = [r for _, r in sorted(slots.items()) if isinstance(r, Result)]
            run.failures = [f for _, f in sorted(slots.items()) if isinstance(f, Failure)]
        return run

    def _cached(self, index: int, source: Source, keys: dict[int, str], z3_path: Path | None) -> Result | None:
        """The cached result of ``source`` under its name and path, or None (then ``keys[index]`` is set)."""
        if self.cache is None:
            return None
        from sslmon.io.cache import cache_key

        keys[index] = cache_key(source.content(), self._dataset_digest, self._settings)
        if z3_path is not None and not z3_path.exists():
            return None  # the Z3 file is only written when the result is computed
        result = self.cache.get(keys[index])
        if result is None:
            return None
        if self.log:
            self.log(f"cached: {source.name} (same content, images and settings; the option cache=False recomputes)")
        return replace(result, name=source.name, path=source.path)


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


def _z3_paths(sources: Sequence[Source], folder: Path | None) -> list[Path | None]:
    """``folder/<name>.z3.npz`` per source; OptionsError naming two sources whose files would collide."""
    if folder is None:
        return [None] * len(sources)
    seen: dict[str, Source] = {}
    for source in sources:
        name = f"{Path(source.name).stem}.z3.npz"
        if name in seen:
            first = seen[name]
            raise OptionsError(f"save_z3: {first.path or first.name} and {source.path or source.name} would both be saved "
                               f"as {name}; give each folder its own save_z3 folder (one run per score)", param="save_z3")
        seen[name] = source
    return [folder / f"{Path(s.name).stem}.z3.npz" for s in sources]


def checkpoint_sources(paths: Iterable[str | Path], *, arch: str = "auto", trust: bool = False) -> list[Source]:
    """Sources for checkpoint files and folders (a folder expands to its checkpoints in epoch order);
    CheckpointError for a folder that cannot be listed."""
    from sslmon.models.encoders import find_checkpoints, load_checkpoint

    sources = []
    for path in map(Path, paths):
        for f in find_checkpoints(path) if path.is_dir() else [path]:
            sources.append(Source(f.name, str(f), partial(load_checkpoint, f, arch=arch, trust=trust),
                                  partial(_checkpoint_identity, f, arch, trust)))
    return sources


def _checkpoint_identity(path: Path, arch: str, trust: bool) -> str:
    """A checkpoint's identity in the cache: its bytes, its file name (the epoch may come from it), the architecture
    asked for and trust (a file read with trust_checkpoints is never served without it)."""
    from sslmon.io.cache import file_digest

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


def score(
    paths: Iterable[str | Path],
    *,
    options: Options = Options(),
    log: Log | None = None,
    on_result: OnResult | None = None,
    on_progress: OnProgress | None = None,
) -> Run:
    """Score checkpoint files and folders on ``options.dataset``, or embedding files (``.npz``/``.npy``, all or none
    of ``paths``). An input that fails is a :class:`Failure` in the run, the others are scored; a bad dataset or
    option raises an :class:`SslmonError`."""
    paths = [Path(p) for p in paths]
    embedding_files = [p for p in paths if p.suffix in EMBEDDING_SUFFIXES]
    if embedding_files and len(embedding_files) != len(paths):
        raise OptionsError("paths: give either embedding files (.npz/.npy) or checkpoints, not both", param="paths")
    if embedding_files:
        return score_embedding_files(paths, options=options, log=log, on_result=on_result)
    opts = options.resolve("checkpoints")
    sources = checkpoint_sources(paths, arch=opts.arch, trust=opts.trust_checkpoints)
    if not sources:
        raise OptionsError("paths: no checkpoint files (.pt .pth .ckpt .bin .safetensors) found", param="paths")
    with Scorer(load_images(opts, log), opts, log=log, on_progress=on_progress,
                run_config={"arch": opts.arch, "limit": opts.limit}) as scorer:
        return scorer.score(sources, on_result)


def compare(
    names: Iterable[str],
    *,
    options: Options = Options(),
    log: Log | None = None,
    on_result: OnResult | None = None,
    on_progress: OnProgress | None = None,
    download_progress: bool | None = None,
) -> Run:
    """Score torchvision models by name on ``options.dataset`` (images resized to each model's weights resolution).
    ``download_progress``: a download bar on stderr (None: when stderr is a terminal)."""
    from sslmon.models.archs import check_arch

    names = list(names)
    for name in names:
        try:
            check_arch(name)
        except ValueError as exc:
            raise OptionsError(str(exc), param="names") from None
    opts = options.resolve("models")
    download = False if opts.offline else None  # None: download unless SSLMON_OFFLINE=1
    sources = torchvision_sources(names, weights=opts.weights, seed=opts.seed, download=download, progress=download_progress)
    with Scorer(load_images(opts, log), opts, log=log, on_progress=on_progress,
                run_config={"weights": opts.weights, "limit": opts.limit}) as scorer:
        return scorer.score(sources, on_result)


def score_embedding_files(
    paths: Iterable[str | Path], *, options: Options = Options(), log: Log | None = None, on_result: OnResult | None = None,
) -> Run:
    """Score each ``.npz``/``.npy`` file (see :mod:`sslmon.io.inputs`); an unreadable file is a failure, the others
    are scored. The device rule is the same as for checkpoints (``auto``: cuda when there is one)."""
    from sslmon.models.embed import resolve_device
    from sslmon.io.inputs import InputError, load_embeddings

    opts = options.resolve("embeddings")
    if opts.lidar_views and log:
        log("note: lidar_views has no effect on embedding files: LiDAR needs sslmon to embed augmented views of the images")
    dev = resolve_device(opts.device)
    device = "cpu" if dev.type == "mps" else dev.type
    run = Run(config={**opts.eval_config(opts.k, device).as_dict(), "metrics": None if opts.metrics is None else list(opts.metrics),
                      "device": dev.type, **_rank_config(opts)}, exclude_init=opts.exclude_init)
    for path in paths:
        try:
            emb = load_embeddings(path)
            k = cluster_count(opts.k, emb.labels, str(path))
        except (InputError, OptionsError) as exc:
            run.failures.append(Failure(str(path), str(exc), exc.param))
            if log:
                log(f"error: {exc}")
            if on_result:
                on_result(run, run.failures[-1])
            continue
        if log:
            log(f"scoring {emb.path} ({emb.embeddings.shape[0]} x {emb.embeddings.shape[1]})")
        run.results.append(score_embeddings(
            emb.embeddings, emb.labels, config=opts.eval_config(k, device), metrics=opts.metrics,
            train_embeddings=emb.train_embeddings, train_labels=emb.train_labels, name=emb.name, path=emb.path))
        if on_result:
            on_result(run, run.results[-1])
    return run


def _lidar_config(opts: Options) -> dict[str, Any]:
    """``lidar_views`` for a run's config and cache key, only when LiDAR's views are computed (so earlier keys hold)."""
    return {"lidar_views": opts.lidar_views, "lidar_images": LIDAR_IMAGES} if opts.lidar_views else {}


def _rank_config(opts: Options) -> dict[str, Any]:
    """How a run is ranked, for its config: ``rank_by``, the consensus members, ``exclude_init``."""
    members = {"consensus_metrics": list(DEFAULT_CONSENSUS)} if opts.rank_by == CONSENSUS else {}
    return {"rank_by": opts.rank_by, **members, "exclude_init": opts.exclude_init}
