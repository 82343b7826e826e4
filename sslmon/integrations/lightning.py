"""SSLMonitor: a Lightning callback that scores the backbone with sslmon while a run trains.

At the init milestone (before the first training epoch) and after every ``every_n_epochs``-th
training epoch it embeds a fixed evaluation set with the module's backbone (eval mode,
``torch.inference_mode``, on the module's device; the previous train/eval mode of every submodule
is restored), evaluates it through :func:`sslmon.api.score_embeddings` and

- logs each defined metric as ``sslmon/<metric>`` (plus ``sslmon/epoch``, and ``sslmon/collapse``: 1.0 when the
  milestone is flagged ``collapse`` by :func:`sslmon.alarms.collapse_flag`, else 0.0) to every Lightning logger:
  through ``pl_module.log`` in ``on_train_epoch_end`` (so ``ModelCheckpoint``/``EarlyStopping`` can
  monitor them), and through the loggers' ``log_metrics`` at step 0 for the init milestone (Lightning
  allows ``self.log`` in ``on_train_start`` only into the first epoch's aggregate, which would mix
  the init values with those of epoch 1);
- with ``stop_on_collapse``, stops training (``trainer.should_stop = True``, as ``EarlyStopping`` does) at the
  first milestone flagged ``collapse``, with a warning naming it;
- appends one JSON line per milestone to a JSONL file, the records of ``sslmon score -o x.jsonl``
  (:func:`sslmon.io.runfile.jsonl_line`) after a header with the evaluation config, flushed and fsync'd as each is
  written.

A record's ``epoch`` counts the finished training epochs (0 = init) and its name is ``epoch_0003``.
With several processes only global rank 0 embeds and scores; the values are broadcast so every rank
logs the same numbers (a metric can be monitored on every rank). Scoring runs in the training
thread: a background thread did not pay on a 2-core CPU (bench/bench_callback_thread.py, docs/api.md).
"""

from __future__ import annotations

import os
from pathlib import Path
import warnings
from typing import Any, Callable, Sequence

import lightning.pytorch as pl
from torch import nn

from sslmon import rules
from sslmon.alarms import collapse_flag
from sslmon.api import Options, score_model
from sslmon.io.datasets import ImageSet, load_dataset
from sslmon.io.runfile import jsonl_header, jsonl_line
from sslmon.metrics import VIEW_BASED
from sslmon.results import Result

BackboneSpec = str | nn.Module | Callable[[pl.LightningModule], nn.Module] | None
DEFAULT_BACKBONES = ("backbone", "encoder")
JSONL_NAME = "sslmon.jsonl"
CALLBACK_LIMIT = 2000  # evaluation (and train) images when no options are given: scoring must not slow training much
# The Options fields that the callback's own keyword arguments set (a convenience that builds the Options).
OPTION_KEYWORDS = ("dataset", "limit", "metrics", "seeds", "k", "batch_size", "lidar_views")


class SSLMonitor(pl.Callback):
    """Score the module's backbone with sslmon's label-free metrics during training.

    ``options``: an :class:`sslmon.api.Options`, checked as everywhere else; the callback uses its ``dataset`` (a
    :func:`sslmon.io.datasets.load_dataset` spec, loaded once: ``limit`` evaluation and ``train_limit`` (default
    ``limit``) train images, stratified), ``metrics`` (default: all that the dataset allows: the label-free ones for
    unlabelled data), ``seeds``, ``seed``, ``k`` (k1 for k-means; default: the number of classes, required for
    unlabelled data), ``umap_epochs``/``preset``, ``bin_factor``, ``z3_kmeans``, ``batch_size`` (images per forward
    pass; default 256), ``precision`` and ``lidar_views`` (N >= 2 adds LiDAR, from N augmented views of up to 1000
    evaluation images). The device is the module's. Instead of ``options``, the keywords ``dataset`` (default
    ``"default"``), ``limit`` (default :data:`CALLBACK_LIMIT`), ``metrics``, ``seeds`` (a count or a list; default
    0, 1, 2), ``k``, ``batch_size`` and ``lidar_views`` build one (not both).

    ``every_n_epochs``: score after every n-th epoch (and at init). ``backbone``: the attribute name of the
    backbone on the module, an ``nn.Module``, or a callable ``module -> nn.Module``; default the module's
    ``backbone``, else ``encoder``. Its output (flattened per image) is the embedding. ``output``: the JSONL file
    (default ``trainer.log_dir/sslmon.jsonl``). ``mean``/``std``/``input_size``: the input normalisation and size
    the backbone expects (default: the dataset's per-channel statistics and native size). ``stop_on_collapse``: stop
    training at the first milestone flagged ``collapse`` (``sslmon/collapse`` = 1).
    """

    def __init__(
        self,
        options: Options | None = None,
        *,
        every_n_epochs: int = 1,
        backbone: BackboneSpec = None,
        output: str | os.PathLike[str] | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        input_size: int | None = None,
        stop_on_collapse: bool = False,
        **settings: Any,
    ) -> None:
        self.options = opts = options_from(options, settings)
        rules.check("every_n_epochs", every_n_epochs)
        self.config = opts.eval_config(opts.k, "cpu")  # score_model evaluates where the module's device allows
        self.dataset = "default" if opts.dataset is None else opts.dataset
        self.limit = opts.limit
        self.every_n_epochs = every_n_epochs
        self.backbone = backbone
        self.metrics = list(opts.metrics) if opts.metrics is not None else None
        if self.metrics is not None and opts.lidar_views:
            self.metrics += [m for m in VIEW_BASED if m not in self.metrics]
        self.output = Path(output) if output is not None else None
        self.mean, self.std, self.input_size, self.batch_size = mean, std, input_size, opts.batch_size or 256
        self.lidar_views = opts.lidar_views
        self.stop_on_collapse = stop_on_collapse
        self._data: ImageSet | None = None
        self.results: list[Result] = []  # the milestones scored in this process (rank 0)

    # ------------------------------------------------------------------ Lightning hooks

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """The init milestone (only when training starts from scratch, not on resume)."""
        if trainer.current_epoch == 0 and trainer.global_step == 0:
            self._milestone(trainer, pl_module, 0, in_hook=False)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Score after every ``every_n_epochs``-th finished epoch."""
        finished = trainer.current_epoch + 1
        if finished % self.every_n_epochs == 0:
            self._milestone(trainer, pl_module, finished, in_hook=True)

    # ------------------------------------------------------------------ scoring

    def _milestone(self, trainer: pl.Trainer, pl_module: pl.LightningModule, epoch: int, in_hook: bool) -> None:
        """Score on global rank 0, append its record, and log its values.

        At an epoch's end (``in_hook``) the values go through ``pl_module.log``, broadcast from rank 0
        so every rank logs the same numbers; the init milestone goes to the loggers at step 0.
        """
        values = self._record(trainer, self.score(pl_module, epoch)) if trainer.is_global_zero else {}
        values = trainer.strategy.broadcast(values, src=0)  # every rank learns of a collapse, and stops with rank 0
        if self.stop_on_collapse and values.get("sslmon/collapse"):
            trainer.should_stop = True
            if trainer.is_global_zero:
                warnings.warn(f"SSLMonitor: stopping training: epoch {epoch} is flagged collapse "
                              f"({collapse_flag(self.results[-1])['message']})", stacklevel=2)  # type: ignore[index]
        if not in_hook:
            if trainer.is_global_zero:
                for logger in trainer.loggers:
                    logger.log_metrics(values, step=trainer.global_step)
            return
        for key, value in values.items():
            # identical on every rank after the broadcast: sync_dist's mean changes nothing and silences
            # Lightning's advice to sync epoch-level values in a distributed run
            pl_module.log(key, value, on_step=False, on_epoch=True, sync_dist=True)

    def _record(self, trainer: pl.Trainer, result: Result) -> dict[str, float]:
        """Keep ``result``, append its JSONL record; ``{"sslmon/<metric>": value}`` of its defined metrics."""
        self.results.append(result)
        path = self._output_path(trainer)
        if not (path.is_file() and path.stat().st_size):  # a new file starts with its header
            self._append(path, jsonl_header({**self.config.as_dict(), "metrics": None if self.metrics is None else list(self.metrics)}))
        self._append(path, jsonl_line(result))
        values = {f"sslmon/{key}": value for key, value in result.metrics.items() if value is not None}
        values["sslmon/epoch"] = float(result.epoch or 0)
        values["sslmon/collapse"] = float(collapse_flag(result) is not None)
        return values

    def score(self, pl_module: pl.LightningModule, epoch: int) -> Result:
        """Embed the evaluation set (and the train split when a metric needs it) with the current weights
        and evaluate it: the milestone's :class:`~sslmon.results.Result`, named ``epoch_0003``."""
        data = self._dataset()
        model = self._backbone(pl_module)
        mean, std = self.mean or data.mean, self.std or data.std
        return score_model(
            model, data.images, data.labels, config=self.config, metrics=self.metrics, train_images=data.train_images,
            train_labels=data.train_labels, mean=mean, std=std, input_size=self.input_size, batch_size=self.batch_size,
            device=pl_module.device, precision=self.options.precision, name=f"epoch_{epoch:04d}", epoch=epoch,
            source={"lightning_module": type(pl_module).__name__, "backbone": type(model).__name__,
                    "dataset": data.name, "normalization": {"mean": list(mean), "std": list(std)},
                    "input_size": self.input_size},
            lidar_views=self.lidar_views,
        )

    def _dataset(self) -> ImageSet:
        if self._data is None:
            opts = self.options
            self._data = load_dataset(self.dataset, limit=opts.limit, train_limit=opts.train_limit or opts.limit,
                                      seed=opts.seed, image_size=opts.image_size, trust_data=opts.trust_data)
            if self.config.k is None and self._data.num_classes is None:
                raise ValueError(f"SSLMonitor: dataset {self._data.name} has no labels: pass k (the number of clusters k1)")
        return self._data

    def _backbone(self, pl_module: pl.LightningModule) -> nn.Module:
        """The module to embed with (see the class docstring); ValueError naming what was looked for."""
        spec = self.backbone
        if isinstance(spec, nn.Module):
            return spec
        if callable(spec):
            model = spec(pl_module)
        else:
            names = DEFAULT_BACKBONES if spec is None else (spec,)
            model = next((getattr(pl_module, n) for n in names if isinstance(getattr(pl_module, n, None), nn.Module)), None)
            if model is None:
                raise ValueError(f"SSLMonitor: {type(pl_module).__name__} has no nn.Module attribute "
                                 f"{' or '.join(repr(n) for n in names)}; pass backbone=NAME or a callable")
        if not isinstance(model, nn.Module):
            raise ValueError(f"SSLMonitor: backbone callable returned {type(model).__name__}, not an nn.Module")
        return model

    def _output_path(self, trainer: pl.Trainer) -> Path:
        return self.output if self.output is not None else Path(trainer.log_dir or trainer.default_root_dir) / JSONL_NAME

    @staticmethod
    def _append(path: Path, line: str) -> None:
        """Append one JSON line and fsync it, so a reader (``tail -f``, ``sslmon correlate``) sees it at once."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())


def options_from(options: Options | None, settings: dict[str, Any]) -> Options:
    """The callback's :class:`~sslmon.api.Options`: ``options`` as given, or built from the keyword arguments of
    :data:`OPTION_KEYWORDS` (``seeds`` also a count; ``limit`` :data:`CALLBACK_LIMIT` unless given); TypeError for
    an unknown keyword or for both."""
    unknown = [key for key in settings if key not in OPTION_KEYWORDS]
    if unknown:
        raise TypeError(f"SSLMonitor: unexpected keyword argument(s) {', '.join(unknown)}; options go in "
                        f"Options(...) or as {', '.join(OPTION_KEYWORDS)}")
    if options is not None:
        if settings:
            raise TypeError(f"SSLMonitor: give options=Options(...) or the keywords {', '.join(settings)}, not both")
        return options
    if settings.get("seeds") is not None:
        settings["seeds"] = rules.seeds_from(settings["seeds"])
    settings.setdefault("limit", CALLBACK_LIMIT)
    return Options.from_mapping(settings)
