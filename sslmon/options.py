"""The settings of one scoring run: the frozen :class:`Options` (the CLI flags and YAML keys have the same names), its
checks (the bounds declared once in :mod:`sslmon.rules`) and :meth:`Options.resolve`, the one place where its ``None``
fields take the domain defaults of what is scored."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Mapping

from sslmon import rules
from sslmon.alarms import ALARM_METRICS
from sslmon.errors import OptionsError
from sslmon.evaluation import DEFAULT_SEEDS, DEFAULT_UMAP_EPOCHS, PRESETS, EvalConfig
from sslmon.executors import EXECUTORS
from sslmon.metrics import METRICS, VIEW_BASED, Z3_KMEANS_VARIANTS
from sslmon.recommend import MODELS_DEFAULT
from sslmon.rules import LIDAR_IMAGES, PRECISIONS
from sslmon.selection import CONSENSUS, DEFAULT_CONSENSUS, EPOCH, INPUT, RULES, check_ranked

__all__ = ["LIDAR_IMAGES", "PRECISIONS", "Options"]


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
        rules.check_seeds(self.seeds)
        for name in ("limit", "train_limit", "umap_epochs", "batch_size", "k", "bin_factor", "lidar_views"):
            rules.check(name, getattr(self, name))
        unknown = [m for m in self.metrics or () if m not in METRICS]
        if unknown or self.metrics == ():
            rules.fail("metrics", f"unknown metric(s) {', '.join(unknown) or 'none given'}; valid: {', '.join(METRICS)}")
        if self.rank_by not in (None, *RULES, *METRICS):
            rules.fail("rank_by", f"'{self.rank_by}' is neither '{EPOCH}', '{CONSENSUS}', '{INPUT}' nor a metric; valid metrics: "
                       f"{', '.join(METRICS)}")
        try:
            check_ranked(self.rank_by or CONSENSUS)
        except ValueError as exc:
            raise OptionsError(f"rank_by: {exc}", param="rank_by") from None
        rules.check_choice("z3_kmeans", self.z3_kmeans, Z3_KMEANS_VARIANTS)
        rules.check_choice("preset", self.preset, PRESETS)
        if self.umap_epochs is not None and self.preset != "paper" and self.umap_epochs != PRESETS[self.preset]:
            rules.fail("preset", f"preset {self.preset} lays out {PRESETS[self.preset]} epochs; umap_epochs "
                       f"{self.umap_epochs} contradicts it")
        rules.check("precision", self.precision)
        rules.check("weights", self.weights)
        rules.check_choice("executor", self.executor, EXECUTORS)

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
        training run's checkpoints (the last milestone recommended; :mod:`sslmon.recommend`), no ranking (input order,
        :data:`~sslmon.recommend.MODELS_DEFAULT`) for models and embedding files; ``train_limit`` = ``limit``. The
        metrics that ``rank_by`` needs, those of the collapse alarm (:data:`~sslmon.alarms.ALARM_METRICS`), and ``lidar`` with ``lidar_views``, are added to ``metrics``;
        ``exclude_init`` is off for models (randomly initialised torchvision models are different models, not the
        init milestone of a run)."""
        models = kind == "models"
        rank_by = self.rank_by or (EPOCH if kind == "checkpoints" else MODELS_DEFAULT)
        metrics = self.metrics
        if metrics is not None:
            ranked = DEFAULT_CONSENSUS if rank_by == CONSENSUS else () if rank_by in (EPOCH, INPUT) else (rank_by,)
            needed = (*ranked, *ALARM_METRICS, *(VIEW_BASED if self.lidar_views else ()))
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

