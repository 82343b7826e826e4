"""sslmon's Python API, the one door to scoring: the CLI, ``sslmon watch`` and the Lightning callback all go through it.

- :func:`evaluate` -- metrics of an embedding array (no torch model, no files).
- :func:`score_model` -- embed images with an ``nn.Module`` and evaluate them: a :class:`~sslmon.results.Result`.
- :func:`score` -- checkpoint files and folders, or embedding files (``.npz``/``.npy``): a :class:`~sslmon.results.Run`.
- :func:`compare` -- torchvision models by name: a :class:`~sslmon.results.Run`.
- :func:`select` -- the checkpoint to keep among runs, and why: a :class:`Choice`.

Every setting of a run is a field of the frozen :class:`Options` (the CLI flags and YAML keys have the same names);
its ``None`` fields take the domain defaults in :meth:`Options.resolve`, the one place they are decided. Progress goes
through plain callbacks: ``log(line)``, ``on_progress(task, done, total)``, ``on_result(run, record)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from functools import partial
import math
import os
from pathlib import Path
import time
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from sslmon._text import one_line
from sslmon.errors import OptionsError, SslmonError
from sslmon.executors import EXECUTORS
from sslmon.evaluation import DEFAULT_SEEDS, DEFAULT_UMAP_EPOCHS, PRESETS, EvalConfig, Evaluation, evaluate_embeddings, layout_note
from sslmon.metrics import METRICS, Z3_KMEANS_VARIANTS
from sslmon.results import Failure, OnResult, Result, Run
from sslmon.alarms import ALARM_METRICS, relative_spread
from sslmon.recommend import EVIDENCE_ENTROPY, MODELS_DEFAULT, has_epochs
from sslmon.selection import CONSENSUS, DEFAULT_CONSENSUS, EPOCH, check_ranked

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
    images (stratified; None: all, and ``train_limit`` follows ``limit``), ``image_size`` (imagefolder, pixels; None:
    the images' native size for checkpoints, 224 for torchvision models),
    ``trust_data`` (allow dataset pickles that can run code). Encoders: ``arch`` of checkpoints (``auto`` matches
    keys and shapes), ``trust_checkpoints``, torchvision ``weights`` (``default`` or ``none``), ``offline`` (never
    download). Evaluation: ``k`` (k1 clusters; None: the number of distinct labels), ``seed`` (data seed), ``seeds``
    (UMAP/k-means seeds), ``preset`` (``paper``: umap-learn's own layout epochs, the default; ``fast``: 100 epochs,
    H(Z3) then not the paper's), ``umap_epochs`` (None: the preset's), ``z3_kmeans`` (what cosine k-means clusters: ``paper`` or ``centred``
    Z3, see :data:`sslmon.metrics.Z3_KMEANS_VARIANTS`), ``metrics`` (None: all the data allows), ``bin_factor``
    (entropy bin width in stds of Z3), ``lidar_views`` (views per image for LiDAR, on up to LIDAR_IMAGES images;
    0: no LiDAR). Ranking: ``rank_by`` (a metric, ``consensus`` or ``epoch``), ``exclude_init``;
    ``reference_values``: also score Gaussian noise of the same shape (:func:`add_reference_values`). Execution: ``device``
    (``auto``: cuda, then mps, then cpu, for every kind of input), ``precision``, ``batch_size``, ``cache``,
    ``save_z3`` (folder for ``NAME.z3.npz``), ``executor`` (``local`` or ``ray``), ``ray_address``,
    ``gpus_per_task``, ``cpus_per_task``.
    """

    dataset: str | None = None
    limit: int | None = None
    train_limit: int | None = None
    image_size: int | None = None
    trust_data: bool = False
    arch: str = "auto"
    trust_checkpoints: bool = False
    weights: str = "default"
    offline: bool = False
    k: int | None = None
    seed: int = 0
    seeds: tuple[int, ...] = DEFAULT_SEEDS
    preset: str = "paper"
    umap_epochs: int | None = DEFAULT_UMAP_EPOCHS
    z3_kmeans: str = "paper"
    metrics: tuple[str, ...] | None = None
    bin_factor: float | None = None
    lidar_views: int = 0
    rank_by: str | None = None
    exclude_init: bool = True
    reference_values: bool = True
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
        _check(self.rank_by in (None, CONSENSUS, EPOCH, *METRICS), "rank_by",
               f"'{self.rank_by}' is neither '{EPOCH}', '{CONSENSUS}' nor a metric; valid metrics: {', '.join(METRICS)}")
        try:
            check_ranked(self.rank_by or CONSENSUS)
        except ValueError as exc:
            raise OptionsError(f"rank_by: {exc}", param="rank_by") from None
        _check(self.z3_kmeans in Z3_KMEANS_VARIANTS, "z3_kmeans",
               f"must be one of {', '.join(Z3_KMEANS_VARIANTS)}, got {self.z3_kmeans!r}")
        _check(self.preset in PRESETS, "preset", f"must be one of {', '.join(PRESETS)}, got {self.preset!r}")
        _check(self.umap_epochs is None or self.preset == "paper" or self.umap_epochs == PRESETS[self.preset], "preset",
               f"preset {self.preset} lays out {PRESETS.get(self.preset)} epochs; umap_epochs {self.umap_epochs} contradicts it")
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
        ``batch_size`` 256, 64 for torchvision models (they run at 224 px and more); ``rank_by`` epoch order for a
        training run's checkpoints (the last milestone recommended; :mod:`sslmon.recommend`), H(Z3) for models and
        embedding files; ``train_limit`` = ``limit``. The metrics that ``rank_by`` needs, those of the collapse alarm
        (:data:`~sslmon.alarms.ALARM_METRICS`), and ``lidar`` with ``lidar_views``, are added to ``metrics``;
        ``exclude_init`` is off for models (randomly initialised torchvision models are different models, not the
        init milestone of a run)."""
        models = kind == "models"
        rank_by = self.rank_by or (EPOCH if kind == "checkpoints" else MODELS_DEFAULT)
        metrics = self.metrics
        if metrics is not None:
            ranked = DEFAULT_CONSENSUS if rank_by == CONSENSUS else () if rank_by == EPOCH else (rank_by,)
            needed = (*ranked, *ALARM_METRICS, *(("lidar",) if self.lidar_views else ()))
            metrics = tuple(dict.fromkeys((*metrics, *needed)))  # in order, each once
        return replace(self, rank_by=rank_by, metrics=metrics, exclude_init=self.exclude_init and not models,
                       bin_factor=self.bin_factor or (0.8 if models else 0.4),
                       batch_size=self.batch_size or (64 if models else 256),
                       image_size=self.image_size or (224 if models else None),
                       train_limit=self.train_limit or self.limit)

    def eval_config(self, k: int | None, device: str) -> EvalConfig:
        """The evaluation settings (call on resolved options)."""
        epochs = self.umap_epochs if self.umap_epochs is not None else PRESETS[self.preset]
        return EvalConfig(k=k, seed=self.seed, seeds=self.seeds, umap_epochs=epochs,
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
                  reference=ev.reference, source=source or {}, metrics_std=ev.metrics_std, per_seed=ev.per_seed,
                  notes=ev.notes, spread=relative_spread(Z) if two_d else None)


class EmbeddingError(SslmonError):
    """The forward pass failed (wrong input size for the model, out of memory, ...); the message names the model."""


def as_images(images: Any, what: str = "images") -> torch.Tensor:
    """``images`` as the uint8 (n, C, H, W) tensor that :func:`embed` takes, from a numpy array or a tensor:
    (n, H, W) gets one channel, channels-last (n, H, W, C) with C = 1 or 3 is moved first. OptionsError naming
    ``what`` for anything else (another dtype, rank or number of channels)."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(images)) if isinstance(images, np.ndarray) else images
    if not isinstance(x, torch.Tensor):
        raise OptionsError(f"{what}: expected a numpy array or a torch tensor, got {type(images).__name__}", param=what)
    if x.dtype != torch.uint8:
        raise OptionsError(f"{what}: expected uint8 pixels (0-255), got {x.dtype}; for floats in [0, 1] pass "
                           "(x * 255).round() as uint8", param=what)
    if x.ndim == 3:
        x = x.unsqueeze(1)
    elif x.ndim == 4 and x.shape[1] not in (1, 3) and x.shape[-1] in (1, 3):
        x = x.permute(0, 3, 1, 2)
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise OptionsError(f"{what}: expected shape (n, H, W), (n, C, H, W) or (n, H, W, C) with C = 1 or 3, got "
                           f"{tuple(x.shape)}", param=what)
    return x


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
    """Embeddings (n, d) float32 of uint8 ``images`` (n, C, H, W; also numpy, (n, H, W) or channels-last: see
    :func:`as_images`) through ``model`` in eval mode under ``torch.inference_mode``; each submodule's train/eval
    mode is restored afterwards. EmbeddingError naming ``name`` when the forward pass fails."""
    from sslmon.models.embed import embed_images, resolve_device

    images = as_images(images)

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


LONG_EMBEDDING_S = 60.0  # a CPU embedding estimated to take longer (seconds) is announced before it goes on
QUICK_LIMIT = 2000  # the --limit that the announcement suggests for a quick look


def embedding_estimate(n_images: int, size: int, images_per_s: float) -> str | None:
    """The line said before a long CPU embedding of ``n_images`` images at ``size`` px, at ``images_per_s`` (images
    per second, measured on the first batch); None when it would take under :data:`LONG_EMBEDDING_S` seconds."""
    seconds = n_images / images_per_s
    if seconds < LONG_EMBEDDING_S:
        return None
    hint = f"; --limit {QUICK_LIMIT} for a quick look" if n_images > QUICK_LIMIT else ""
    minutes = math.ceil(seconds / 60)
    return f"note: embedding {n_images:,} images at {size} px on the CPU: about {minutes} minute{'s' * (minutes > 1)}{hint}"


class FirstBatchClock:
    """An :data:`OnProgress` that times the first embedding batch (from its creation to the first ``embedding``
    progress call) and logs :func:`embedding_estimate` for all ``n_images`` once; every call goes on to ``inner``.
    ``clock``: seconds (``time.perf_counter``; a test gives its own)."""

    def __init__(self, n_images: int, size: int, log: Log, inner: OnProgress | None = None,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.n_images, self.size, self.log, self.inner, self.clock = n_images, size, log, inner, clock
        self.start: float | None = clock()

    def __call__(self, task: str, done: int, total: int) -> None:
        if self.start is not None and task.startswith("embedding") and done > 0:
            elapsed, self.start = self.clock() - self.start, None
            line = embedding_estimate(self.n_images, self.size, done / elapsed) if elapsed > 0 else None
            if line:
                self.log(line)
        if self.inner is not None:
            self.inner(task, done, total)


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
    with ``config.seed``) of each of up to :data:`LIDAR_IMAGES` images are embedded too, for LiDAR. ``log``: on the
    CPU, a long embedding is announced with its estimated time (:class:`FirstBatchClock`)."""
    from sslmon.models.embed import resolve_device

    dev = device if not isinstance(device, str) else resolve_device(device)
    images = as_images(images)
    train_images = None if train_images is None else as_images(train_images, "train_images")
    wanted = set(metrics) if metrics is not None else set(METRICS)
    use_train = train_images is not None and train_labels is not None and bool(set(TRAIN_SPLIT_METRICS) & wanted)
    if log is not None and dev.type == "cpu":
        n_images = len(images) + (len(train_images) if use_train and train_images is not None else 0)
        on_progress = FirstBatchClock(n_images, input_size or images.shape[-1], log, on_progress)
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
    """One encoder to score: how to load it (picklable, so a Ray worker can), what identifies its content for
    the cache, and the training run it belongs to (:attr:`Result.run`; None: a model of no run)."""

    name: str
    path: str | None
    load: Callable[[], Encoder]
    content: Callable[[], str]
    run: str | None = None


@dataclass
class _Job:
    """What every encoder's task shares: the images, the settings, and (local executor only) the progress callback."""

    data: ImageSet
    options: Options
    config: EvalConfig
    on_progress: OnProgress | None = field(default=None, repr=False)
    log: Log | None = field(default=None, repr=False)  # local executor only, as on_progress


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
                "input_size": enc.input_size, **({"training": enc.training} if enc.training else {})},
        z3_path=z3_path, on_progress=job.on_progress, lidar_views=opts.lidar_views, log=job.log,
    )
    result.timings = {"load": round(t_load, 4), **result.timings}
    result.run = source.run
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
            + (f", {len(data.train_images)} train" if data.train_images is not None else "")
            + f", {data.images.shape[-2]}x{data.images.shape[-1]} px")
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
        _say_layout(self.config, log)
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
        resized: set[int] = set()  # input sizes the images were resized to (said once each)

        def add(index: int, record: Result | Failure) -> None:
            slots[index] = record
            (run.failures if isinstance(record, Failure) else run.results).append(record)
            size, native = (record.source.get("input_size") if isinstance(record, Result) else None), self.data.images.shape[-1]
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
        local = self.executor.name == "local"
        job = _Job(self.data, opts, self.config, self.on_progress if local else None, self.log if local else None)
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
        missing = [r.name for i, r in slots.items() if isinstance(r, Result) and z3_paths[i] and not z3_paths[i].exists()]
        if missing and self.log:
            self.log(f"note: `save_z3` wrote no Z3 file for {len(missing)} result(s) ({_names(missing)}): the metrics "
                     "asked for do not need the UMAP layout Z3; add one that does, such as entropy_z3")
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


def z3_name(name: str) -> str:
    """``<stem>.z3.npz`` of an input's name; a stem too long for a file name (255 bytes with the suffix) is cut and
    ends in ``-`` and 12 hex digits of its SHA-256, so the file can be written and two long names stay apart."""
    import hashlib

    from sslmon.io.output import NAME_MAX
    from sslmon.io.z3file import SUFFIX

    stem = Path(name).stem
    if len(os.fsencode(stem + SUFFIX)) <= NAME_MAX:
        return stem + SUFFIX
    tag = "-" + hashlib.sha256(os.fsencode(stem)).hexdigest()[:12]
    room = NAME_MAX - len(SUFFIX) - len(tag)
    cut = os.fsencode(stem)[:room].decode("utf-8", "ignore")  # whole characters only
    return cut + tag + SUFFIX


def _z3_paths(sources: Sequence[Source], folder: Path | None) -> list[Path | None]:
    """``folder/<name>.z3.npz`` per source (see :func:`z3_name`); OptionsError naming two sources whose files would
    collide."""
    if folder is None:
        return [None] * len(sources)
    seen: dict[str, Source] = {}
    for source in sources:
        name = z3_name(source.name)
        if name in seen:
            first = seen[name]
            raise OptionsError(f"save_z3: {first.path or first.name} and {source.path or source.name} would both be saved "
                               f"as {name}; give each folder its own save_z3 folder (one run per score)", param="save_z3")
        seen[name] = source
    return [folder / z3_name(s.name) for s in sources]


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
    from sslmon.io.cache import file_digest
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
    missing = [p for p in paths if not os.path.lexists(p)]
    if missing and len(missing) == len(paths):  # nothing to score: say so before any dataset is loaded
        raise OptionsError(f"{', '.join(map(str, missing))}: no such file or folder", param="paths")
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
        run = scorer.score(sources, on_result)
        add_reference_values(run, scorer.config, opts, log)
    if options.rank_by is None and run.results and not has_epochs(run.results):
        run.config["rank_by"] = MODELS_DEFAULT  # checkpoints without epochs are different models, not a run
    return run


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
        run = scorer.score(sources, on_result)
        add_reference_values(run, scorer.config, opts, log)
        return run


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
    if opts.save_z3 is not None and log:
        log("note: `save_z3` writes nothing for embedding files (Z3 files are saved for checkpoints); no Z3 file written")
    dev = resolve_device(opts.device)
    device = "cpu" if dev.type == "mps" else dev.type
    _say_layout(opts.eval_config(opts.k, device), log)
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
    add_reference_values(run, opts.eval_config(opts.k, device), opts, log)
    return run


def _say_layout(config: EvalConfig, log: Log | None) -> None:
    """Say once per run when the layout is not the paper's (see :func:`sslmon.evaluation.layout_note`)."""
    note = layout_note(config.umap_epochs)
    if note and log:
        log(note)


def _lidar_config(opts: Options) -> dict[str, Any]:
    """``lidar_views`` for a run's config and cache key, only when LiDAR's views are computed (so earlier keys hold)."""
    return {"lidar_views": opts.lidar_views, "lidar_images": LIDAR_IMAGES} if opts.lidar_views else {}


def _rank_config(opts: Options) -> dict[str, Any]:
    """How a run is ranked, for its config: ``rank_by``, the consensus members, ``exclude_init``."""
    members = {"consensus_metrics": list(DEFAULT_CONSENSUS)} if opts.rank_by == CONSENSUS else {}
    return {"rank_by": opts.rank_by, **members, "exclude_init": opts.exclude_init}


# --------------------------------------------------------------------------- select: the checkpoint to keep


class NothingToSelect(SslmonError):
    """No run gave a checkpoint that can be chosen; the message says why, one line."""


ACROSS_RUNS_NOTE = ("not validated: there is no label-free evidence yet for choosing among runs (issue 17); "
                    "H(Z3) is the paper's only metric significant across architectures (Table II)")


@dataclass
class Choice:
    """What :func:`select` chose: the checkpoint (``path``, ``name``, ``epoch``, the ``run`` argument it came from),
    the ``rule`` and ``reason``, the ``evidence`` behind the rule and a ``note`` on its limits; ``candidates``: each
    run's recommended checkpoint with the across-runs ``value`` and its ``flags``; ``excluded``: what was passed
    over and why; ``failures``: inputs that could not be scored."""

    path: str | None
    name: str
    epoch: int | None
    run: str
    rule: str
    reason: str
    evidence: str
    note: str | None = None
    candidates: list[dict[str, Any]] = field(default_factory=list)
    excluded: list[dict[str, Any]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def select(
    runs: Sequence[str | Path],
    *,
    options: Options = Options(),
    log: Log | None = None,
    on_progress: OnProgress | None = None,
) -> Choice:
    """The checkpoint to keep among ``runs`` (each a checkpoint folder or file, or an embedding file): each run is
    scored with the options and the cache of :func:`score` (a checkpoint folder ranked by epoch: only the milestones
    the rule needs, :func:`_select_run`) and gives its recommendation (:func:`sslmon.recommend.recommend`: the last
    milestone not flagged ``collapse`` by default). With several runs,
    the one with the best H(Z3) (or ``options.rank_by`` when it is a metric) among those recommendations is chosen,
    with :data:`ACROSS_RUNS_NOTE`. A run that cannot be scored is listed in ``failures``; NothingToSelect when no
    checkpoint can be chosen."""
    from sslmon.alarms import run_flags
    from sslmon.recommend import recommend

    key = options.rank_by if options.rank_by in METRICS else MODELS_DEFAULT  # the rule across runs
    if len(runs) > 1 and options.metrics is not None and key not in options.metrics:
        options = replace(options, metrics=(*options.metrics, key))
    candidates: list[tuple[Result, dict[str, Any], Any]] = []
    excluded: list[dict[str, Any]] = []
    failures: list[str] = []
    for run_path in map(str, runs):
        try:
            run, scored = _select_run(Path(run_path), options, log, on_progress)
        except SslmonError as exc:
            failures.append(str(exc))
            continue
        failures += [f.error for f in run.failures]
        flags = run_flags(run.results)
        choice = recommend(run, run.config["rank_by"], flags)
        excluded += [{"run": run_path, **e} for e in choice.excluded]
        if choice.result is None:
            excluded.append({"run": run_path, "name": None, "why": choice.reason})
            continue
        entry = {"run": run_path, "name": choice.name, "path": choice.path, "epoch": choice.epoch, "rule": choice.rule,
                 "reason": choice.reason, "flags": flags[run.results.index(choice.result)], "scored": scored}
        candidates.append((choice.result, entry, choice))
    if not candidates:
        why = "; ".join(f"{e['run']}: {e['why']}" for e in excluded if e["name"] is None) or "; ".join(failures) or "no runs"
        raise NothingToSelect(f"nothing to select: {why}")
    if len(candidates) == 1:
        result, entry, choice = candidates[0]
        return Choice(result.path, result.name, result.epoch, entry["run"], choice.rule, choice.reason, choice.evidence,
                      None, [entry], excluded, failures)
    spec = METRICS[key]
    scored = []
    for result, entry, _ in candidates:
        value = result.metrics.get(key)
        entry["value"] = value
        if value is None:
            excluded.append({"run": entry["run"], "name": result.name, "why": f"{key} undefined: {result.errors.get(key, 'not computed')}"})
        else:
            scored.append((spec.sort_key(value), result, entry))
    if not scored:
        raise NothingToSelect(f"nothing to select: {key} is undefined on every run's recommended checkpoint")
    _, result, entry = min(scored, key=lambda t: t[0])
    how = f"{spec.better}" if spec.target is None else f"closest to {spec.target:g}"
    return Choice(result.path, result.name, result.epoch, entry["run"], f"each run's recommendation, then the best {key} ({how})",
                  f"{key} = {result.metrics[key]:.4g}, the best of {len(scored)} runs' recommended checkpoints",
                  f"within a run: {candidates[0][2].evidence}; across runs: {EVIDENCE_ENTROPY}",
                  ACROSS_RUNS_NOTE if key == MODELS_DEFAULT else f"--rank-by {key} as asked; {ACROSS_RUNS_NOTE}",
                  [entry for _, entry, _ in candidates], excluded, failures)


SELECT_WINDOW = 4  # select scores a run's newest milestones (and its first) in windows of this many, doubling


def _select_run(path: Path, options: Options, log: Log | None, on_progress: OnProgress | None) -> tuple[Run, str]:
    """The run that :func:`select` judges for one RUN argument, and what of it was scored. A checkpoint folder whose
    file names all carry the epoch, ranked by epoch (the default): only its first (the init milestone, for the
    exclusion rule) and its newest :data:`SELECT_WINDOW` milestones are scored, and twice as many newest ones each
    time every trained milestone scored so far is flagged collapse (the rule needs the newest one that is not; the
    plateau and noise flags need the last 4). Anything else is scored whole, as :func:`score` does."""
    from sslmon.models.encoders import parse_epoch
    from sslmon.recommend import recommend

    opts = options.resolve("checkpoints")
    sources = checkpoint_sources([path], arch=opts.arch, trust=opts.trust_checkpoints) if path.is_dir() else []
    if opts.rank_by != EPOCH or not sources or any(parse_epoch(Path(str(s.path))) is None for s in sources):
        run = score([path], options=options, log=log, on_progress=on_progress)
        return run, f"all {len(run.results) + len(run.failures)} inputs"
    done: dict[int, Result | Failure] = {}
    width = SELECT_WINDOW
    with Scorer(load_images(opts, log), opts, log=log, on_progress=on_progress,
                run_config={"arch": opts.arch, "limit": opts.limit}) as scorer:
        while True:
            todo = [i for i in sorted({0, *range(max(0, len(sources) - width), len(sources))}) if i not in done]
            part = scorer.score([sources[i] for i in todo])
            by_path = {str(record.path): record for record in [*part.results, *part.failures]}
            done.update({i: by_path[str(sources[i].path)] for i in todo if str(sources[i].path) in by_path})
            run = Run(config=part.config, exclude_init=opts.exclude_init,
                      results=[r for _, r in sorted(done.items()) if isinstance(r, Result)],
                      failures=[f for _, f in sorted(done.items()) if isinstance(f, Failure)])
            if recommend(run, EPOCH).result is not None or width >= len(sources):
                break
            width *= 2
    newest = min(width, len(sources))
    return run, (f"all {len(sources)} milestones" if newest >= len(sources) - 1 else
                 f"{len(done)} of {len(sources)} milestones: the first and the newest {newest}")


# --------------------------------------------------------------------------- reference values

NOISE_NAME = "noise N(0,1)"  # the structureless reference embedding, as the table names it


def noise_reference(n: int, d: int, config: EvalConfig, metrics: Sequence[str] | None = None, *,
                    cache: bool = True, log: Log | None = None) -> Result:
    """The label-free metrics of a structureless embedding of the same shape: i.i.d. standard Gaussian noise (n, d),
    float32, drawn with ``config.seed``, through the same evaluation (``config``: k, seeds, UMAP, bin factor). Cached
    in the ``reference`` folder of sslmon's cache folder per (n, d, settings) (``cache``)."""
    from sslmon.metrics import LABEL_FREE

    wanted = [m for m in (metrics or LABEL_FREE) if m in LABEL_FREE and m != "lidar"]
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
    from sslmon.metrics import LABEL_FREE

    if not options.reference_values or not run.results:
        return
    noise = []
    for n, d, k in sorted({(r.n_samples, r.dim, r.k) for r in run.results if r.n_samples and r.dim and r.k}):
        ref = noise_reference(n, d, replace(config, k=k), options.metrics, cache=options.cache, log=log)
        noise.append({"n": n, "d": d, "k": k, "data_seed": config.seed, "metrics": ref.metrics, "metrics_std": ref.metrics_std})
    init = next((r for r in run.results if r.is_init), None)
    run.reference_values = {
        "noise": noise,
        "init": None if init is None else {"name": init.name, "metrics": {m: v for m, v in init.metrics.items() if m in LABEL_FREE}},
    }


# --------------------------------------------------------------------------- commands beyond scoring
# Thin doors for what the command line does besides scoring (each imports its heavy module when called).
from collections.abc import Callable  # noqa: E402 - this block's own names, whatever the door above imports


class UsageError(OptionsError):
    """A setting refused before any work (a bad training setting, names that do not match the files); ``param``
    names it. The command line reports it as a usage error of that option."""


def watch(folder: Path, options: Options | None = None, *, output: Path | None = None, protect: Sequence[Path] = (),
          poll: float = 5.0, until_idle: float | None = None, fail_if: Sequence[Any] = (), exit_on: Sequence[str] = (),
          tensorboard: Path | None = None, log: Log | None = None,
          on_change: Callable[[Run, str], None] | None = None) -> tuple[Any, bool]:
    """Follow a training run's checkpoint folder (:func:`sslmon.watch.watch`): score each complete checkpoint once,
    appending one JSON line each to ``output`` (locked; a restart skips what it holds; it must not be one of
    ``protect``, the run's inputs), its metrics to the TensorBoard folder ``tensorboard``; ``poll`` and
    ``until_idle`` in seconds, ``fail_if`` parsed gates (:func:`sslmon.conditions.parse_condition`), ``exit_on``
    alarm codes. ``on_change(run, rank_by)`` after each new result. Returns the watch's Outcome (its run's config
    holds rank_by and exclude_init) and whether writing ``output`` failed."""
    from contextlib import nullcontext

    from sslmon.io.output import ResultsFile, check_target
    from sslmon.io.runfile import jsonl_header
    from sslmon.watch import Held, WatchError, read_held, watch as follow

    say: Log = log or (lambda msg: None)
    if not folder.is_dir():
        raise WatchError(f"{folder}: not a directory")
    options = (options or Options()).resolve("checkpoints")
    out = None
    if output is not None:
        check_target(output, list(protect))
        out = ResultsFile(output, "jsonl", say, append=True)
        out.lock()  # a second watch on the same file is refused: it would write every record twice
    held = read_held(output, say) if output is not None else Held()
    scorer = Scorer(load_images(options, say), options, run_config={"arch": options.arch, "limit": options.limit},
                    log=lambda msg: None if msg.startswith("error:") else say(msg))  # watch reports failures itself
    if out is not None and output is not None and not (output.is_file() and output.stat().st_size):
        out.stream(jsonl_header(scorer.run_config))  # a new output starts with its header
    board = _tensorboard_log(tensorboard)
    rank_by = options.rank_by or EPOCH
    say(f"watching {folder} every {poll:g} s" + (f" (until idle for {until_idle:g} s)" if until_idle is not None else ""))
    logged = {id(r) for r in held.results}  # results in TensorBoard (those held from an earlier watch were, then)

    def show(run: Run) -> None:
        for result in run.results if board is not None else ():
            if id(result) not in logged:
                board.add_result(result)
                logged.add(id(result))
        if on_change is not None:
            on_change(run, rank_by)

    with scorer, board or nullcontext():
        outcome = follow(folder, scorer.score, lambda f: checkpoint_sources([f], arch=options.arch, trust=options.trust_checkpoints),
                         held, out, say, poll, until_idle, fail_if, rank_by, options.exclude_init, on_change=show,
                         exit_on=exit_on)
    if out is not None:
        out.close()
    outcome.run.config.update(rank_by=rank_by, exclude_init=options.exclude_init)
    return outcome, out is not None and out.failed


def _tensorboard_log(folder: Path | None) -> Any:
    """The TensorBoard log of ``folder`` (None: none)."""
    if folder is None:
        return None
    from sslmon.io.tensorboard import TensorBoardLog

    return TensorBoardLog(folder)


def train(method: str, out: Path, *, dataset: str | None = None, trust_data: bool = False, train_limit: int | None = None,
          image_size: int | None = None, arch: str = "convnet-small", epochs: int = 10, every: int = 1,
          batch_size: int = 256, lr: float | None = None, head_width: int = 2048, weight_decay: float | None = None,
          temperature: float | None = None, crop_min: float = 0.2, jitter: float = 0.8, seed: int = 0,
          device: str = "auto", half: bool = False, tensorboard: Path | None = None, log: Log | None = None) -> list[Path]:
    """Train an encoder with ``method`` (:mod:`sslmon.training.train`) on the dataset's train split (all images when
    it has none; the evaluation split gives the held-out loss) and write its milestones into the folder ``out``;
    ``crop_min``: smallest area fraction of the random resized crop, ``jitter``: colour-jitter probability; the
    losses also go to the TensorBoard folder ``tensorboard``. Returns the milestone paths; UsageError for a bad
    setting."""
    from contextlib import nullcontext

    from sslmon.io.datasets import load_dataset
    from sslmon.models.archs import check_arch
    from sslmon.models.augment import AugmentConfig
    from sslmon.models.embed import resolve_device
    from sslmon.training.train import HELDOUT_IMAGES, train as run_training

    say: Log = log or (lambda msg: None)
    try:
        check_arch(arch)
        dev = resolve_device(device)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out}: is a file, not a folder (name a folder for the milestones)", param="out")
    data = load_dataset(dataset, train_limit=train_limit, seed=seed, image_size=image_size, trust_data=trust_data)
    images = data.train_images if data.train_images is not None else data.images
    heldout = data.images if data.train_images is not None else None  # the evaluation split: not trained on
    say(f"training {method} {arch} on {len(images)} images of {data.name} ({dev.type})"
        + (f"; held-out SSL loss on {min(len(heldout), HELDOUT_IMAGES)} evaluation images" if heldout is not None else ""))
    board = _tensorboard_log(tensorboard)
    try:
        with board or nullcontext():
            paths = run_training(method, images, arch, out, epochs, every, batch_size, seed, dev, mean=data.mean, std=data.std,
                                 lr=lr, weight_decay=weight_decay, head_width=head_width, temperature=temperature,
                                 augment_cfg=AugmentConfig(crop_scale=(crop_min, 1.0), jitter_p=jitter), half=half,
                                 heldout=heldout, log=say, on_epoch=board.add if board is not None else None)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    say(f"wrote {len(paths)} milestones to {out}")
    return paths


def load_results(paths: Sequence[Path], names: Sequence[str] | None = None, log: Log | None = None,
                 warn_sizes: bool = True) -> list[Any]:
    """Results files (JSON or JSON Lines) as named runs (:class:`sslmon.meta.correlate.NamedRun`), named by ``names``
    (default: the file stems); warnings go to ``log``, with ``warn_sizes`` the one line when the files mix numbers
    of images."""
    from sslmon.io.runfile import load_run
    from sslmon.meta.correlate import NamedRun, run_names, sample_size_warning

    try:
        labels = run_names(list(paths), list(names) if names is not None else None)
    except ValueError as exc:
        raise UsageError(str(exc), param="name") from None
    runs = [NamedRun(name, str(path), load_run(path, log=log)) for path, name in zip(paths, labels)]
    warning = sample_size_warning(runs) if warn_sizes else None
    if warning is not None and log is not None:
        log(warning)
    return runs


@dataclass
class Correlations:
    """The correlations of each run's metrics with ``against`` (:func:`correlate`); ``lacking``: the runs that hold
    no ``against`` value (left out)."""

    runs: list[Any]
    against: str
    lacking: list[Any]

    def json(self) -> str:
        """The JSON document of ``sslmon correlate -f json``."""
        from sslmon.meta.correlate import to_json

        return to_json(self.runs, self.against)

    def table(self, console: Any) -> None:
        """The correlation and selection tables, printed on the Rich ``console``."""
        from sslmon.meta.report_correlate import render_table

        render_table(self.runs, self.against, console)


def correlate(paths: Sequence[Path], against: str = "lp_acc", *, names: Sequence[str] | None = None,
              consensus: Sequence[str] | None = None, log: Log | None = None) -> Correlations:
    """Correlate each metric of the results files with the reference metric ``against`` across each run's checkpoints
    (the paper's Table I) and the selection each metric would make (``consensus``: the metrics of the consensus row,
    default :data:`sslmon.selection.DEFAULT_CONSENSUS`)."""
    from sslmon.meta.correlate import correlate_run
    from sslmon.selection import DEFAULT_CONSENSUS

    consensus = DEFAULT_CONSENSUS if consensus is None else consensus

    loaded = load_results(paths, names, log)
    lacking = [named for named in loaded if all(v is None for v in named.run.values(against))]
    return Correlations([correlate_run(named, against, list(consensus)) for named in loaded if all(named is not x for x in lacking)],
                        against, lacking)


def _z3_epochs(epochs: Sequence[int] | None, z3: Path | None) -> None:
    if epochs is not None and z3 is None:
        raise UsageError("selects the Z3 scatters: give --z3 DIR too", param="epochs")


def _cannot_write(folder: Path | None, exc: OSError) -> SslmonError:
    from sslmon.io.output import OutputError

    return OutputError(f"{folder}: cannot write the figures ({(exc.strerror or type(exc).__name__).lower()})")


def plot(paths: Sequence[Path], out: Path, *, z3: Path | None = None, against: str = "lp_acc",
         names: Sequence[str] | None = None, epochs: Sequence[int] | None = None, log: Log | None = None) -> list[Path]:
    """PNG figures of the results files into the folder ``out`` (:func:`sslmon.meta.plots.make_plots`): each metric
    against epoch and against ``against``, and Z3 scatters of the ``epochs`` (default: first, middle, last) from
    the ``z3`` folder. Returns the files written."""
    from sslmon.meta.plots import make_plots

    _z3_epochs(epochs, z3)
    runs = load_results(paths, names, log)
    try:
        return make_plots(runs, out, against, z3, list(epochs) if epochs is not None else None, log=log)
    except OSError as exc:
        raise _cannot_write(out, exc) from None


def report(paths: Sequence[Path], output: Path, *, z3: Path | None = None, against: str = "lp_acc",
           names: Sequence[str] | None = None, epochs: Sequence[int] | None = None, figures: Path | None = None,
           figure_format: str = "png", log: Log | None = None) -> None:
    """Write one self-contained HTML report of the results files to ``output`` (:mod:`sslmon.meta.report_html`);
    ``figures``: also each figure as a ``figure_format`` file in this folder."""
    from sslmon.io.output import check_target, write_atomic
    from sslmon.meta.report_html import build_report

    _z3_epochs(epochs, z3)
    check_target(output, list(paths))
    runs = load_results(paths, names, log, warn_sizes=False)
    try:
        write_atomic(output, build_report(runs, against, z3, list(epochs) if epochs is not None else None, figures,
                                          figure_format, log=log))
    except OSError as exc:
        raise _cannot_write(figures, exc) from None


def metric_specs() -> list[Any]:
    """Every metric's :class:`~sslmon.metrics.MetricSpec`, in the registry's order."""
    return list(METRICS.values())


def archs() -> list[str]:
    """The architecture names that checkpoints' ``arch`` and :func:`compare` accept."""
    from sslmon.models.archs import list_archs

    return list(list_archs())
