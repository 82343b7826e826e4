"""sslmon's Python API, the one door to scoring: the CLI, ``sslmon watch`` and the Lightning callback all go through it.

- :func:`evaluate` -- metrics of an embedding array (no torch model, no files).
- :func:`score_embeddings` -- the same into a :class:`~sslmon.results.Result` record.
- :func:`score_model` -- embed images with an ``nn.Module`` and evaluate them: a :class:`~sslmon.results.Result`.
- :func:`score` -- checkpoint files and folders, or embedding files (``.npz``/``.npy``): a :class:`~sslmon.results.Run`.
- :func:`compare` -- torchvision models by name: a :class:`~sslmon.results.Run`.
- :func:`select` -- the checkpoint to keep among runs, and why: a :class:`Choice`.

Every setting of a run is a field of the frozen :class:`~sslmon.options.Options` (the CLI flags and YAML keys have the
same names); its ``None`` fields take the domain defaults in :meth:`Options.resolve`, the one place they are decided,
and its bounds are declared once in :mod:`sslmon.rules`. Progress goes through plain callbacks: ``log(line)``,
``on_progress(task, done, total)``, ``on_result(run, record)``.

The house behind the door: :mod:`sslmon.run` scores (the :class:`~sslmon.run.Scorer`: cache, executor, order, failures,
Z3 files), :mod:`sslmon.models.sources` says what is scored (checkpoints, torchvision models, embedding files),
:mod:`sslmon.models.embed` embeds images. Their public names are importable from here too.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from importlib import import_module
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

from sslmon.callbacks import Log, OnProgress
from sslmon.errors import OptionsError, SslmonError
from sslmon.evaluation import EvalConfig, Evaluation, evaluate_embeddings
from sslmon.io.inputs import EMBEDDING_SUFFIXES
from sslmon.io.z3file import z3_name
from sslmon.metrics import METRICS
from sslmon.models.sources import Source, checkpoint_sources, embedding_sources, torchvision_sources
from sslmon.options import LIDAR_IMAGES, PRECISIONS, Options
from sslmon.recommend import EVIDENCE_ACROSS, MODELS_DEFAULT, NO_RANKING, Recommendation, has_epochs
from sslmon.results import Failure, OnResult, Result, Run
from sslmon.run import (NOISE_NAME, Scorer, add_reference_values, cache_settings, cluster_count,
                        load_images, noise_reference, score_embeddings, score_model)
from sslmon.selection import EPOCH, INPUT

_EMBEDDING = ("EmbeddingError", "FirstBatchClock", "LONG_EMBEDDING_S", "QUICK_LIMIT", "as_images", "embed",
              "embedding_estimate")  # sslmon.models.embed's, on first use (see __getattr__)
__all__ = [
    "ACROSS_RUNS_NOTE", "EMBEDDING_SUFFIXES", "LIDAR_IMAGES", "NOISE_NAME", "PRECISIONS", "SELECT_WINDOW",
    "Choice", "EvalConfig", "Evaluation", "Failure", "Log", "NoChoice", "NothingToSelect", "OnProgress",
    "OnResult", "Options", "Result", "Run", "Scorer", "Source", "add_reference_values", "cache_settings",
    "checkpoint_sources", "cluster_count", "compare", "evaluate", "load_images", "noise_reference", "score",
    "score_embedding_files", "score_embeddings", "score_model", "select", "torchvision_sources", "z3_name", *_EMBEDDING,
]


def __getattr__(name: str) -> Any:
    """The embedding helpers of :mod:`sslmon.models.embed` (``embed``, ``as_images``, ...), imported on first use:
    that module imports torch, which the command line must not load to print its help."""
    if name in _EMBEDDING:
        return getattr(import_module("sslmon.models.embed"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --------------------------------------------------------------------------- arrays


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


# --------------------------------------------------------------------------- inputs on an image set, files


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
    """Score each ``.npz``/``.npy`` file (see :mod:`sslmon.io.inputs`) through the same :class:`~sslmon.run.Scorer`
    as checkpoints (so ``cache``, ``executor`` and ``save_z3`` mean the same); an unreadable file is a failure, the
    others are scored. The device rule is the same as for checkpoints (``auto``: cuda when there is one)."""
    opts = options.resolve("embeddings")
    if opts.lidar_views and log:
        log("note: lidar_views has no effect on embedding files: LiDAR needs sslmon to embed augmented views of the images")
    with Scorer(None, opts, log=log) as scorer:
        run = scorer.score(embedding_sources(paths), on_result)
        add_reference_values(run, scorer.config, opts, log)
        return run


# --------------------------------------------------------------------------- select: the checkpoint to keep


class NothingToSelect(SslmonError):
    """No run gave a checkpoint that can be chosen; the message says why, one line."""


ACROSS_RUNS_NOTE = f"{NO_RANKING} (docs/evidence/README.md, Q1 and Q4)"
CHOOSE_HINT = "--rank-by KEY chooses by a metric"


@dataclass
class Choice:
    """What :func:`select` chose: the checkpoint (``path``, ``name``, ``epoch``, the ``run`` argument it came from;
    all None when nothing was chosen among several runs, :class:`NoChoice`), the ``rule`` and ``reason``, the
    ``evidence`` behind the rule and a ``note`` on its limits; ``candidates``: each run's recommended checkpoint
    with the across-runs ``value`` (when a metric was asked) and its ``flags``; ``excluded``: what was passed over
    and why; ``failures``: inputs that could not be scored."""

    path: str | None
    name: str | None
    epoch: int | None
    run: str | None
    rule: str
    reason: str
    evidence: str
    note: str | None = None
    candidates: list[dict[str, Any]] = field(default_factory=list)
    excluded: list[dict[str, Any]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class NoChoice(NothingToSelect):
    """Several runs each gave a candidate, but no metric was asked to choose among them (the default: no label-free
    ranking beat a random pick across runs, :data:`ACROSS_RUNS_NOTE`); ``choice`` holds the candidates, nothing chosen."""

    def __init__(self, choice: Choice) -> None:
        super().__init__(f"no choice among {len(choice.candidates)} runs: {choice.reason}; {CHOOSE_HINT}")
        self.choice = choice


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
    milestone not flagged ``collapse`` by default; a run of one input, such as an embedding file: that input).
    With several candidates, the best by ``options.rank_by`` when it is a metric is chosen; without one, nothing is
    chosen: :class:`NoChoice` holds the candidates (:data:`ACROSS_RUNS_NOTE`). A run that cannot be scored is listed
    in ``failures``; NothingToSelect when no checkpoint can be chosen."""
    from sslmon.alarms import run_flags
    from sslmon.recommend import recommend

    key = options.rank_by if options.rank_by in METRICS else None  # the rule across runs: only a metric asked for
    if len(runs) > 1 and key is not None and options.metrics is not None and key not in options.metrics:
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
        single = run.config["rank_by"] == INPUT and len(run.results) == 1  # a run of one input: that input
        choice = _only_input(run, flags[0]) if single else recommend(run, run.config["rank_by"], flags)
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
    if key is None:
        raise NoChoice(Choice(None, None, None, None, "no choice among runs (no metric asked)", NO_RANKING,
                              EVIDENCE_ACROSS, None, [entry for _, entry, _ in candidates], excluded, failures))
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
                  f"within a run: {candidates[0][2].evidence}; across runs: as asked (--rank-by {key})",
                  f"--rank-by {key} as asked; {ACROSS_RUNS_NOTE}",
                  [entry for _, entry, _ in candidates], excluded, failures)


def _only_input(run: Run, flags: list[dict[str, str]]) -> Recommendation:
    """The recommendation of a run of one input that is not ranked (an embedding file): that input, unless it is
    flagged ``collapse``."""
    result = run.results[0]
    collapse = next((f for f in flags if f["code"] == "collapse"), None)
    if collapse is not None:
        return Recommendation(None, None, None, "the run's only input", "its only input is flagged collapse", EVIDENCE_ACROSS,
                              [{"name": result.name, "why": f"collapse: {collapse['message']}"}], result.run)
    return Recommendation(result.name, result.path, result.epoch, "the run's only input", "the only input of its run",
                          EVIDENCE_ACROSS, [], result.run, result)


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
    from sslmon.io.tensorboard import open_log
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
    board = open_log(tensorboard)
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
    from sslmon.io.tensorboard import open_log
    from sslmon.models.archs import check_arch
    from sslmon.models.augment import AugmentConfig
    from sslmon.rules import resolve_device
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
    board = open_log(tensorboard)
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
