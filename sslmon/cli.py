"""The ``sslmon`` command line: a thin layer over :mod:`sslmon.api`.

Exit codes: 0 success; 1 a ``--fail-if`` condition held; 2 some input failed
(the others are still reported and written), the ``-o`` file could not be written
(the results go to stdout) or a usage error; 130 interrupted (Ctrl-C) after the
finished results were written.
"""

from __future__ import annotations

from contextlib import nullcontext
from enum import Enum
import io
from pathlib import Path
import sys
from typing import TYPE_CHECKING, Annotated, Any, Callable, NoReturn, Optional, Sequence, get_args, get_origin

import typer
from rich.console import Console
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from sslmon import __version__
from sslmon._text import one_line
from sslmon.conditions import Condition, judge as judge_results, parse_condition
from sslmon.config import (FOLDER_CONFIG, ConfigError, check_folder_key, check_type, folder_config, option_name, yaml_value,
                           read_yaml)
from sslmon.evaluate import EvalConfig
from sslmon.inputs import EMBEDDING_SUFFIXES
from sslmon.metrics import METRICS
from sslmon.output import OutputError, ResultsFile, check_target, write_atomic
from sslmon.report import printable, ranked_table, render, render_table
from sslmon.runfile import jsonl_line
from sslmon.results import Failure, OnResult, Result, Run
from sslmon.selection import CONSENSUS, DEFAULT_CONSENSUS

if TYPE_CHECKING:
    from sslmon.correlate import NamedRun

app = typer.Typer(
    name="sslmon",
    help="Label-free monitoring of self-supervised encoders: rank checkpoints by the quality of their embedding space.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)


class OutputFormat(str, Enum):
    table = "table"
    json = "json"
    jsonl = "jsonl"
    csv = "csv"


class PrecisionChoice(str, Enum):
    fp32 = "fp32"
    bf16 = "bf16"


class Judge(str, Enum):
    latest = "latest"
    best = "best"
    each = "each"


def _version(value: bool) -> None:
    if value:
        typer.echo(f"sslmon {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[Optional[bool], typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")] = None,
) -> None:
    """sslmon ranks encoders by label-free metrics (Xu, Lowe & Trappenberg 2024)."""


def _metric_key(value: str) -> str:
    if value not in METRICS:
        raise typer.BadParameter(f"'{value}' is not a metric; valid: {', '.join(METRICS)}")
    return value


def _rank_by(value: str) -> str:
    if value == CONSENSUS or value in METRICS:
        return value
    raise typer.BadParameter(f"'{value}' is neither '{CONSENSUS}' nor a metric; valid metrics: {', '.join(METRICS)}")


def _device(value: str) -> str:
    """Check a --device name (``auto`` always passes; ``tpu`` or an absent CUDA is a usage error, not a traceback)."""
    if value != "auto":
        from sslmon.embed import resolve_device

        try:
            resolve_device(value)
        except (ValueError, RuntimeError) as exc:
            raise typer.BadParameter(one_line(exc))
    return value


# Options shared by `score` and `compare` (one definition each).
K = Annotated[Optional[int], typer.Option("--k", min=2, help="k1, the number of k-means clusters (k2 = 2*k1). Default: the number of classes; required without labels.")]
Seed = Annotated[int, typer.Option(min=0, max=2**32 - 1, help="Data seed: image subsets (--limit), the reference split of knn_acc/lp_acc, random init. UMAP and k-means use --seeds.")]
Seeds = Annotated[Optional[str], typer.Option("--seeds", callback=lambda v: _seed_list(v), help="Evaluation seeds of UMAP and k-means: a count S (seeds 0..S-1) or a list such as 0,5,7. Metrics are the mean over the seeds (std and per-seed values in JSON). Default 3.")]
UmapEpochs = Annotated[Optional[int], typer.Option("--umap-epochs", min=1, help="UMAP layout epochs (default 100, chosen in docs/speed.md; umap-learn's own default is 500 up to 10k points).")]
RankBy = Annotated[str, typer.Option("--rank-by", callback=_rank_by, help=f"Metric to rank by (see `sslmon metrics`), or '{CONSENSUS}': the mean rank over {','.join(DEFAULT_CONSENSUS)} (docs/selection.md).")]
Metrics = Annotated[Optional[str], typer.Option("--metrics", help="Comma-separated metric keys to compute (default: all the inputs allow).")]
BinFactor = Annotated[Optional[float], typer.Option("--bin-factor", min=0.01, help="Entropy bin width in stds of Z3. Default 0.4 (score: SSL encoders), 0.8 (compare: supervised ImageNet models), as in the paper.")]
Fmt = Annotated[OutputFormat, typer.Option("--format", "-f", help="Output format on stdout.")]
Output = Annotated[Optional[Path], typer.Option("--output", "-o", help="Also write the results to this file (.json, .jsonl or .csv; format from --format when given).")]
Device = Annotated[str, typer.Option(callback=_device, help="Torch device: auto (cuda, then mps, then cpu), cpu, cuda, mps.")]
PrecisionOpt = Annotated[PrecisionChoice, typer.Option("--precision", help="Forward passes in fp32 (default: CPU and GPU agree) or bf16 (bfloat16 autocast, faster on recent GPUs); recorded in config.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or messages on stderr (errors are still printed).")]
Dataset = Annotated[Optional[str], typer.Option("--dataset", "-d", help="Images to embed: default (embedded Fashion-MNIST), fashion-mnist[:DIR], cifar10:DIR, cifar100:DIR, imagefolder:DIR, npz:FILE.")]
Limit = Annotated[Optional[int], typer.Option("--limit", min=1, help="Stratified subset of N evaluation images (and of N train images unless --train-limit).")]
TrainLimit = Annotated[Optional[int], typer.Option("--train-limit", min=1, help="Stratified subset of N train images (for knn_acc and lp_acc).")]
ImageSize = Annotated[int, typer.Option("--image-size", min=8, help="imagefolder only: images are resized and centre-cropped to this size.")]
BatchSize = Annotated[int, typer.Option("--batch-size", min=1, help="Images per forward pass.")]
NoCache = Annotated[bool, typer.Option("--no-cache", help="Recompute even when the results cache has this checkpoint, dataset and settings.")]
FailIf = Annotated[Optional[list[str]], typer.Option("--fail-if", help='Exit 1 when a condition such as "rankme<40" or "knn_acc<=0.8" holds for the judged result (repeatable).')]
JudgeOpt = Annotated[Judge, typer.Option("--judge", help="Which result --fail-if judges: latest (highest epoch, else last input), best (rank 1), each (any result).")]
SaveZ3 = Annotated[Optional[Path], typer.Option("--save-z3", help="Folder to save each input's Z3 (UMAP 3-d), C1/C2 and labels as NAME.z3.npz, for `sslmon plot`.")]
Arch = Annotated[str, typer.Option("--arch", help="Architecture of the checkpoints (see `sslmon archs`); auto matches keys and shapes.")]
TrustCheckpoints = Annotated[bool, typer.Option("--trust-checkpoints", help="Allow checkpoints that need full unpickling (can run code: only for files you trust).")]
TrustData = Annotated[bool, typer.Option("--trust-data", help="Allow dataset files (CIFAR pickles) that need full unpickling (can run code: only for files you trust).")]
ConfigFile = Annotated[Optional[Path], typer.Option("--config", help=f"YAML file of options (keys as the long option names). A {FOLDER_CONFIG} in a checkpoint folder is read too (evaluation settings only); the command line wins.")]


def _seed_list(value: Optional[str]) -> Optional[tuple[int, ...]]:
    """``"3"`` -> (0, 1, 2); ``"0,5,7"`` -> (0, 5, 7); None stays None (the default)."""
    if value is None or isinstance(value, tuple):
        return value
    try:
        parts = [int(p) for p in str(value).split(",") if p.strip()]
    except ValueError:
        parts = []
    if "," not in str(value) and len(parts) == 1:
        parts = list(range(parts[0])) if parts[0] >= 1 else []
    if not parts or min(parts) < 0 or len(set(parts)) != len(parts):
        raise typer.BadParameter(f"'{value}' is not a seed count (>= 1) or a list of distinct seeds >= 0 such as 0,1,2", param_hint="--seeds")
    return tuple(parts)


def _eval_config(opts: dict[str, Any], bin_factor: float, device: str = "cpu") -> EvalConfig:
    """The evaluation settings from the parsed options (defaults from EvalConfig where not given)."""
    extra: dict[str, Any] = {}
    if opts["seeds"] is not None:
        extra["seeds"] = opts["seeds"]
    if opts["umap_epochs"] is not None:
        extra["umap_epochs"] = opts["umap_epochs"]
    return EvalConfig(k=opts["k"], seed=opts["seed"], bin_factor=bin_factor, device=device, **extra)


def _metric_list(value: Optional[str], rank_by: Optional[str], option: str = "--metrics") -> Optional[list[str]]:
    """The comma-separated metric keys of ``option`` (plus ``rank_by`` when given and missing)."""
    if value is None:
        return None
    names = [m.strip() for m in value.split(",") if m.strip()]
    unknown = [m for m in names if m not in METRICS]
    if unknown or not names:
        raise typer.BadParameter(f"unknown metric(s) {', '.join(unknown) or repr(value)}; valid: {', '.join(METRICS)}", param_hint=option)
    needed = list(DEFAULT_CONSENSUS) if rank_by == CONSENSUS else [] if rank_by is None else [rank_by]
    return names + [m for m in needed if m not in names]


def _say(msg: str) -> None:
    """One line to stderr, as written: no markup, no highlighting, never wrapped, control characters escaped."""
    err.print(printable(msg), highlight=False, soft_wrap=True, markup=False)


def _logger(quiet: bool) -> Callable[[str], None]:
    """Progress lines to stderr unless quiet; error and warning lines always."""

    def log(msg: str) -> None:
        if not quiet or msg.startswith(("error:", "warning:")):
            _say(msg)

    return log


def _fail(exc: Exception) -> NoReturn:
    """``error: <one-line message naming the file>`` on stderr, then exit 2."""
    _say(f"error: {exc}")
    raise typer.Exit(2)


def _progress(quiet: bool) -> Progress | None:
    """Rich progress bars on stderr, only when stderr is a terminal and not --quiet."""
    if quiet or not err.is_terminal:
        return None
    return Progress(TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err, transient=True)


def _apply_yaml(ctx: typer.Context, config: Optional[Path], folder_files: Sequence[Path] = ()) -> None:
    """Fill options the user did not give on the command line from --config, then from the folders' own files
    (untrusted: evaluation settings only, see :mod:`sslmon.config`). A refused file is one error line, exit 2."""
    params = {p.name: p for p in ctx.command.params}
    set_by_file: set[str] = set()  # an earlier file wins
    files = [(config, False)] if config else []
    for path, untrusted in [*files, *((f, True) for f in folder_files)]:
        try:
            data = read_yaml(path)
            for key, value in data.items():
                name = option_name(key)
                if name not in params or name in ("paths", "names", "folder", "config"):
                    raise ConfigError(f"{path}: unknown option '{key}'")
                if untrusted:
                    check_folder_key(path, key)
                value = check_type(path, key, yaml_value(name, value), _option_type(params[name]), params[name].multiple)
                if ctx.get_parameter_source(name).name == "DEFAULT" and name not in set_by_file:
                    try:
                        ctx.params[name] = params[name].process_value(ctx, value)  # coercion, bounds, callback
                    except Exception as exc:
                        raise ConfigError(f"{path}: option '{key}': {one_line(exc)}") from None
                    set_by_file.add(name)
        except ConfigError as exc:
            _fail(exc)


def _option_type(param: Any) -> type:
    """The Python type an option takes (int, float, bool, else str), for checking values read from YAML."""
    annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    if annotation is None:  # typer versions whose options are plain click options
        annotation = {"integer": int, "integer range": int, "float": float, "float range": float, "boolean": bool}.get(
            param.type.name, str)
    if get_origin(annotation) is list:
        annotation = get_args(annotation)[0]
    return annotation if annotation in (int, float, bool) else str


def _stdout_console() -> Console:
    """stdout console: the terminal's width, or unlimited when piped (tables are never squeezed into 80 columns)."""
    out = Console()
    return out if out.is_terminal else Console(width=1000)


def _results_file(output: Optional[Path], fmt: OutputFormat, inputs: list[Path], append: bool = False) -> ResultsFile | None:
    """The -o file (format from --format, else from the suffix), checked before any scoring: exit 2 when refused.
    ``append``: stream after what the file holds (see :class:`ResultsFile`)."""
    if output is None:
        return None
    try:
        check_target(output, inputs)
    except OutputError as exc:
        _fail(exc)
    suffix = output.suffix.lstrip(".")
    file_fmt = fmt.value if fmt != OutputFormat.table else (suffix if suffix in {"json", "jsonl", "csv"} else "json")
    return ResultsFile(output, file_fmt, _say, append)


def _input_files(paths: list[Path], config: Optional[Path], dataset: Optional[str]) -> list[Path]:
    """Every file the run reads (the files of folder inputs included), so that -o cannot overwrite one."""
    files = [p for p in (config, Path(dataset.split(":", 1)[1]).expanduser() if dataset and ":" in dataset else None) if p]
    for path in paths:
        files += _entries(path) if path.is_dir() else [path]
    return files


def _entries(folder: Path) -> list[Path]:
    """The entries of a folder input, sorted; none when it cannot be listed (scoring then reports why)."""
    try:
        return sorted(folder.iterdir())
    except OSError:
        return []


def _scoring(score_fn: Callable[[OnResult], Run], out: ResultsFile | None) -> tuple[Run | None, bool]:
    """Run ``score_fn``, streaming each finished record to the -o file; on Ctrl-C return what finished.

    Returns (run, interrupted); the run is None when Ctrl-C came before the first result."""
    latest: list[Run] = []

    def on_result(run: Run, item: Result | Failure) -> None:
        latest[:] = [run]
        if out is not None:
            out.stream(jsonl_line(item))

    try:
        return score_fn(on_result), False
    except KeyboardInterrupt:
        return (latest[0] if latest else None), True


def _finish(run: Run | None, rank_by: str, fmt: OutputFormat, out: ResultsFile | None, conditions: list[Condition],
            which: Judge, interrupted: bool = False, exclude_init: bool = False) -> None:
    """Write the -o file and/or stdout, then exit 130 if interrupted, 2 if some input failed or -o could not be
    written (the results then go to stdout), 1 if a --fail-if condition held, else 0.

    ``exclude_init``: the epoch-0 milestone is reported but neither ranked nor judged."""
    if run is None:
        _say("interrupted before any result finished")
        raise typer.Exit(130)
    run.exclude_init = exclude_init
    run.config["rank_by"] = rank_by
    if rank_by == CONSENSUS:
        run.config["consensus_metrics"] = list(DEFAULT_CONSENSUS)
    run.config["exclude_init"] = exclude_init
    written = out is not None and out.finish(render(run, rank_by, out.fmt))
    if written:
        _say(f"wrote {out.path} ({out.fmt})")
    if fmt == OutputFormat.table:
        render_table(run, rank_by, _stdout_console())
    elif not written:
        typer.echo(render(run, rank_by, fmt.value), nl=False)
    if interrupted:
        _say(f"interrupted: the {len(run.results)} finished result(s) were reported")
        raise typer.Exit(130)
    tripped = judge_results(run.gated(), conditions, which.value, rank_by) if conditions else []
    for message in tripped:
        _say(f"fail-if: {message}")
    if run.failures or (out is not None and out.failed):
        raise typer.Exit(2)
    if tripped:
        raise typer.Exit(1)


def _conditions(fail_if: Optional[list[str]]) -> list[Condition]:
    try:
        return [parse_condition(c) for c in fail_if or []]
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--fail-if")


def _score_encoders(sources_fn: Callable[[], list], opts: dict[str, Any], bin_factor: float, run_config: dict[str, Any],
                    on_result: OnResult) -> Run:
    """Load the dataset once and score each encoder source; bad dataset or empty source list is a usage error."""
    from sslmon.encoders import CheckpointError

    log = _logger(opts["quiet"])
    try:
        sources = sources_fn()
    except CheckpointError as exc:  # a folder that cannot be listed
        _fail(exc)
    if not sources:
        raise typer.BadParameter("no checkpoint files (.pt .pth .ckpt .bin .safetensors) found", param_hint="PATHS")
    data = _load_data(opts, log)
    progress = _progress(opts["quiet"])
    with progress or nullcontext():
        return _scorer(data, opts, bin_factor, run_config, log, progress)(sources, on_result)


def _load_data(opts: dict[str, Any], log: Callable[[str], None]) -> Any:
    """The evaluation images (an ImageSet); a bad dataset is one error line, exit 2. Without labels (and without
    --metrics) one line says that the label-based metrics are left out."""
    from sslmon.datasets import DatasetError, load_dataset
    from sslmon.metrics import LABEL_BASED

    try:
        with err.status("decoding dataset") if not opts["quiet"] and err.is_terminal else nullcontext():
            data = load_dataset(opts["dataset"], limit=opts["limit"], train_limit=opts["train_limit"] or opts["limit"],
                                seed=opts["seed"], image_size=opts["image_size"], trust_data=opts["trust_data"])
    except DatasetError as exc:
        _fail(exc)
    log(f"dataset {data.name}: {len(data.images)} images" + (f", {len(data.train_images)} train" if data.train_images is not None else ""))
    if data.labels is None and opts["metrics"] is None:
        log(f"note: {data.name} has no labels: the label-based metrics ({', '.join(LABEL_BASED)}) are left out")
    return data


def _scorer(data: Any, opts: dict[str, Any], bin_factor: float, run_config: dict[str, Any], log: Callable[[str], None],
            progress: Progress | None) -> Callable[[list, OnResult], Run]:
    """``score(sources, on_result)``: score encoder sources on ``data`` with the options (one results cache)."""
    from sslmon.api import score_sources
    from sslmon.cache import ResultCache

    config = _eval_config(opts, bin_factor)
    cache = None if opts["no_cache"] else ResultCache(warn=log)

    def score(sources: list, on_result: OnResult) -> Run:
        try:
            return score_sources(sources, data, config, opts["metrics"], opts["batch_size"], opts["device"], cache=cache,
                                 progress=progress, log=log, run_config=run_config, save_z3=opts.get("save_z3"),
                                 precision=opts["precision"].value, on_result=on_result)
        except ValueError as exc:
            raise typer.BadParameter(str(exc))

    return score


@app.command()
def score(
    ctx: typer.Context,
    paths: Annotated[list[Path], typer.Argument(help="Checkpoint folders or files (.pt .pth .ckpt .bin .safetensors, TorchScript), or embedding files (.npz, .npy).")],
    dataset: Dataset = None,
    limit: Limit = None,
    train_limit: TrainLimit = None,
    image_size: ImageSize = 224,
    arch: Arch = "auto",
    trust_checkpoints: TrustCheckpoints = False,
    trust_data: TrustData = False,
    k: K = None,
    seed: Seed = 0,
    seeds: Seeds = None,
    umap_epochs: UmapEpochs = None,
    rank_by: RankBy = CONSENSUS,
    metrics: Metrics = None,
    bin_factor: BinFactor = None,
    fmt: Fmt = OutputFormat.table,
    output: Output = None,
    device: Device = "auto",
    precision: PrecisionOpt = PrecisionChoice.fp32,
    batch_size: BatchSize = 256,
    no_cache: NoCache = False,
    save_z3: SaveZ3 = None,
    fail_if: FailIf = None,
    judge: JudgeOpt = Judge.latest,
    exclude_init: Annotated[bool, typer.Option("--exclude-init/--include-init", help="Leave the epoch-0 (untrained) milestone out of the ranking and of --fail-if; it is still reported (docs/selection.md).")] = True,
    config: ConfigFile = None,
    quiet: Quiet = False,
) -> None:
    """Score checkpoints (or embedding files) and print them ranked by label-free metrics (default: their consensus)."""
    try:
        folder_configs = [f for f in (folder_config(p) for p in paths if p.is_dir()) if f is not None]
    except ConfigError as exc:
        _fail(exc)
    _apply_yaml(ctx, config, folder_configs)
    opts = ctx.params
    rank_by = opts["rank_by"]
    opts["metrics"] = _metric_list(opts["metrics"], rank_by)
    conditions = _conditions(opts["fail_if"])
    bin_factor = opts["bin_factor"] or 0.4
    embedding_files = [p for p in paths if p.suffix in EMBEDDING_SUFFIXES]
    if embedding_files and len(embedding_files) != len(paths):
        raise typer.BadParameter("give either embedding files (.npz/.npy) or checkpoints, not both", param_hint="PATHS")
    out = _results_file(opts["output"], opts["fmt"], _input_files(paths, config, opts["dataset"]))
    if embedding_files:
        from sslmon.api import score_embedding_files

        device = "cpu" if opts["device"] == "auto" else opts["device"]
        cfg = _eval_config(opts, bin_factor, device)
        run, interrupted = _scoring(lambda on_result: score_embedding_files(
            paths, cfg, opts["metrics"], log=_logger(opts["quiet"]), on_result=on_result), out)
    else:
        from sslmon.api import checkpoint_sources

        run, interrupted = _scoring(lambda on_result: _score_encoders(
            lambda: checkpoint_sources(paths, opts["arch"], opts["trust_checkpoints"]), opts, bin_factor,
            {"arch": opts["arch"], "limit": opts["limit"]}, on_result), out)
    _finish(run, rank_by, opts["fmt"], out, conditions, opts["judge"], interrupted, exclude_init=opts["exclude_init"])


@app.command()
def compare(
    ctx: typer.Context,
    names: Annotated[list[str], typer.Argument(help="torchvision model names, e.g. resnet18 densenet121 efficientnet_b0 (see `sslmon archs`).")],
    weights: Annotated[str, typer.Option("--weights", help="default: torchvision's default pretrained weights (from the TORCH_HOME cache, downloaded when missing); none: seeded random init.")] = "default",
    offline: Annotated[bool, typer.Option("--offline", help="Never download weights (also SSLMON_OFFLINE=1): missing ones are an error naming the file, folder and URL.")] = False,
    dataset: Dataset = None,
    trust_data: TrustData = False,
    limit: Limit = None,
    train_limit: TrainLimit = None,
    image_size: ImageSize = 224,
    k: K = None,
    seed: Seed = 0,
    seeds: Seeds = None,
    umap_epochs: UmapEpochs = None,
    rank_by: RankBy = "rankme",
    metrics: Metrics = None,
    bin_factor: BinFactor = None,
    fmt: Fmt = OutputFormat.table,
    output: Output = None,
    device: Device = "auto",
    precision: PrecisionOpt = PrecisionChoice.fp32,
    batch_size: BatchSize = 64,
    no_cache: NoCache = False,
    save_z3: SaveZ3 = None,
    fail_if: FailIf = None,
    judge: JudgeOpt = Judge.best,
    config: ConfigFile = None,
    quiet: Quiet = False,
) -> None:
    """Score torchvision models on the same images; images are resized to each model's weights resolution."""
    _apply_yaml(ctx, config)
    opts = ctx.params
    if opts["weights"] not in ("default", "none"):
        raise typer.BadParameter("must be 'default' or 'none'", param_hint="--weights")
    from sslmon.archs import check_arch

    for name in names:
        try:
            check_arch(name)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="NAMES")
    rank_by = opts["rank_by"]
    opts["metrics"] = _metric_list(opts["metrics"], rank_by)
    conditions = _conditions(opts["fail_if"])
    from sslmon.api import torchvision_sources

    download = False if opts["offline"] else None  # None: download unless SSLMON_OFFLINE=1
    progress = False if opts["quiet"] else None  # None: a download progress bar when stderr is a terminal
    out = _results_file(opts["output"], opts["fmt"], _input_files([], config, opts["dataset"]))
    run, interrupted = _scoring(lambda on_result: _score_encoders(
        lambda: torchvision_sources(names, opts["weights"], opts["seed"], download, progress), opts,
        opts["bin_factor"] or 0.8, {"weights": opts["weights"], "limit": opts["limit"]}, on_result), out)
    _finish(run, rank_by, opts["fmt"], out, conditions, opts["judge"], interrupted)


@app.command()
def watch(
    ctx: typer.Context,
    folder: Annotated[Path, typer.Argument(help="The training run's checkpoint folder (it may start empty).")],
    poll: Annotated[float, typer.Option("--poll", min=0.01, help="Seconds between two looks at the folder (polling: works on network filesystems).")] = 5.0,
    until_idle: Annotated[Optional[float], typer.Option("--until-idle", min=0, help="Exit 0 after this many seconds with no new or changed checkpoint (default: run until Ctrl-C).")] = None,
    dataset: Dataset = None,
    limit: Limit = None,
    train_limit: TrainLimit = None,
    image_size: ImageSize = 224,
    arch: Arch = "auto",
    trust_checkpoints: TrustCheckpoints = False,
    trust_data: TrustData = False,
    k: K = None,
    seed: Seed = 0,
    seeds: Seeds = None,
    umap_epochs: UmapEpochs = None,
    rank_by: RankBy = CONSENSUS,
    metrics: Metrics = None,
    bin_factor: BinFactor = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Append one JSON line per checkpoint to this file as it is scored (fsync); a restart skips the checkpoints it holds.")] = None,
    device: Device = "auto",
    precision: PrecisionOpt = PrecisionChoice.fp32,
    batch_size: BatchSize = 256,
    no_cache: NoCache = False,
    fail_if: Annotated[Optional[list[str]], typer.Option("--fail-if", help='Exit 1 as soon as a condition such as "l2_std<0.005" holds for the newest checkpoint (repeatable).')] = None,
    exclude_init: Annotated[bool, typer.Option("--exclude-init/--include-init", help="Leave the epoch-0 (untrained) milestone out of the ranking and of --fail-if; it is still reported.")] = True,
    config: ConfigFile = None,
    quiet: Quiet = False,
) -> None:
    """Follow a checkpoint folder while training runs: score every checkpoint in it, then each new one once it is
    complete (size and mtime unchanged over two polls, and it loads), in epoch order.

    One line per checkpoint on stderr; the ranked table on stdout at the end (--until-idle, --fail-if, Ctrl-C: 130).
    """
    from sslmon.api import checkpoint_sources
    from sslmon.watch import Held, WatchError, read_held, watch as follow

    if not folder.is_dir():
        _fail(WatchError(f"{folder}: not a directory"))
    try:
        folder_configs = [f for f in [folder_config(folder)] if f is not None]
    except ConfigError as exc:
        _fail(exc)
    _apply_yaml(ctx, config, folder_configs)
    opts = ctx.params
    rank_by = opts["rank_by"]
    opts["metrics"] = _metric_list(opts["metrics"], rank_by)
    conditions = _conditions(opts["fail_if"])
    out_path = opts["output"]
    if out_path is not None and out_path.suffix != ".jsonl":
        raise typer.BadParameter(f"{out_path}: watch appends JSON Lines: name a .jsonl file", param_hint="--output")
    out = _results_file(out_path, OutputFormat.jsonl, _input_files([folder], config, opts["dataset"]), append=True)
    log = _logger(opts["quiet"])
    try:
        held = read_held(out_path, log) if out_path is not None else Held()
    except WatchError as exc:
        _fail(exc)
    data = _load_data(opts, log)
    if opts["k"] is None and data.num_classes is None:
        raise typer.BadParameter(f"dataset {data.name} has no labels: pass --k (the number of clusters k1)")
    live = Live(console=err, transient=True, auto_refresh=False) if err.is_terminal and not opts["quiet"] else None
    score = _scorer(data, opts, opts["bin_factor"] or 0.4, {"arch": opts["arch"], "limit": opts["limit"]},
                    lambda msg: None if msg.startswith("error:") else log(msg), None)  # watch reports failures itself
    log(f"watching {folder} every {opts['poll']:g} s" + (f" (until idle for {opts['until_idle']:g} s)" if opts["until_idle"] is not None else ""))

    def show(run: Run) -> None:
        """The live table on a terminal, redrawn after each result (plain lines go above it)."""
        if live is not None and run.results:
            live.update(ranked_table(run, rank_by), refresh=True)

    try:
        with live or nullcontext():
            outcome = follow(folder, score, lambda f: checkpoint_sources([f], opts["arch"], opts["trust_checkpoints"]),
                             held, out, log, opts["poll"], opts["until_idle"], conditions, rank_by,
                             opts["exclude_init"], on_change=show)
    except WatchError as exc:
        _fail(exc)
    if out is not None:
        out.close()
    run = outcome.run
    run.config.update(rank_by=rank_by, exclude_init=opts["exclude_init"])
    render_table(run, rank_by, _stdout_console())
    if outcome.interrupted:
        _say(f"interrupted: {len(run.results)} result(s) reported")
        raise typer.Exit(130)
    for message in outcome.tripped:
        _say(f"fail-if: {message}")
    if outcome.tripped:
        raise typer.Exit(1)
    if out is not None and out.failed:
        raise typer.Exit(2)


class Method(str, Enum):
    simclr = "simclr"
    moco = "moco"
    simsiam = "simsiam"


@app.command()
def train(
    method: Annotated[Method, typer.Argument(help="SSL method: simclr, moco (MoCo-v2) or simsiam, as in the paper.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for the milestones epoch_NNNN.pt (created).")],
    dataset: Dataset = None,
    trust_data: TrustData = False,
    train_limit: Annotated[Optional[int], typer.Option("--train-limit", min=1, help="Train on a stratified subset of N images of the train split.")] = None,
    image_size: ImageSize = 224,
    arch: Annotated[str, typer.Option("--arch", help="Backbone (see `sslmon archs`): convnet-small for CPU runs, resnet18-cifar as in the paper.")] = "convnet-small",
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Training epochs.")] = 10,
    every: Annotated[int, typer.Option("--every", min=1, help="Write a milestone every N epochs (the untrained one and the last are always written).")] = 1,
    batch_size: BatchSize = 256,
    lr: Annotated[Optional[float], typer.Option("--lr", help="Peak one-cycle learning rate (default: the paper's for the method).")] = None,
    head_width: Annotated[int, typer.Option("--head-width", min=8, help="Projector/predictor width (paper: 2048).")] = 2048,
    seed: Seed = 0,
    device: Device = "auto",
    half: Annotated[bool, typer.Option("--half", help="Store milestone weights in float16 (half the size).")] = False,
    quiet: Quiet = False,
) -> None:
    """Train an encoder with SimCLR, MoCo-v2 or SimSiam and write milestones that `sslmon score` reads.

    Trains on the dataset's train split (all images when it has none), normalised by the dataset's statistics.
    """
    from sslmon.archs import check_arch
    from sslmon.datasets import DatasetError, load_dataset
    from sslmon.embed import resolve_device
    from sslmon.train import train as run_training

    try:
        check_arch(arch)
        dev = resolve_device(device)
    except ValueError as exc:
        raise typer.BadParameter(str(exc))
    try:
        data = load_dataset(dataset, train_limit=train_limit, seed=seed, image_size=image_size, trust_data=trust_data)
    except DatasetError as exc:
        _fail(exc)
    images = data.train_images if data.train_images is not None else data.images
    log = _logger(quiet)
    log(f"training {method.value} {arch} on {len(images)} images of {data.name} ({dev.type})")
    paths = run_training(method.value, images, arch, out, epochs, every, batch_size, seed, dev, mean=data.mean, std=data.std,
                         lr=lr, head_width=head_width, half=half, log=log)
    log(f"wrote {len(paths)} milestones to {out}")


class CorrelateFormat(str, Enum):
    table = "table"
    json = "json"


ResultsFiles = Annotated[list[Path], typer.Argument(help="Results files written by `sslmon score -f json` (or -o FILE.json), or JSON Lines (`score -f jsonl`, `watch -o`, the Lightning callback); one per run or method.")]
Against = Annotated[str, typer.Option("--against", callback=_metric_key, help="Reference metric (a label-based accuracy) the others are correlated with.")]
RunNames = Annotated[Optional[list[str]], typer.Option("--name", help="Name of each run, one per results file in order (default: the file stems).")]


def _load_runs(paths: list[Path], names: Optional[list[str]]) -> list[NamedRun]:
    """The results files as named runs; a bad file is one error line naming it, and exit 2."""
    from sslmon.correlate import NamedRun, run_names
    from sslmon.runfile import ResultsFileError, load_run

    try:
        labels = run_names(paths, names)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--name")
    try:
        return [NamedRun(name, str(path), load_run(path)) for path, name in zip(paths, labels)]
    except ResultsFileError as exc:
        _fail(exc)


@app.command()
def correlate(
    paths: ResultsFiles,
    against: Against = "lp_acc",
    names: RunNames = None,
    fmt: Annotated[CorrelateFormat, typer.Option("--format", "-f", help="Output format on stdout.")] = CorrelateFormat.table,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Also write the correlations to this file (JSON; the table as text when the name ends in .txt).")] = None,
    consensus: Annotated[Optional[str], typer.Option("--consensus", help=f"Comma-separated metrics whose mean rank forms the consensus row (default: {','.join(DEFAULT_CONSENSUS)}; docs/selection.md).")] = None,
) -> None:
    """Correlate each metric with a reference accuracy across the checkpoints of each run (the paper's Table I),
    and show which milestone each metric would pick and its regret.

    Pearson r with its 95 % interval and two-sided p (Spearman rho in JSON), with and without the epoch-0
    (untrained) milestone; then the selection table (pick, regret, rank, Kendall tau; consensus; last milestone).
    """
    from sslmon.correlate import correlate_run, to_json
    from sslmon.report_correlate import render_table

    members = _metric_list(consensus, None, "--consensus") if consensus is not None else list(DEFAULT_CONSENSUS)
    runs = [correlate_run(run, against, members) for run in _load_runs(paths, names)]
    if output is not None:
        if fmt == CorrelateFormat.table and output.suffix == ".txt":
            buffer = io.StringIO()
            render_table(runs, against, Console(file=buffer, width=1000, no_color=True))
            document = buffer.getvalue()
        else:
            document = to_json(runs, against)
        try:
            check_target(output, paths)
            write_atomic(output, document)
        except OutputError as exc:
            _fail(exc)
        _say(f"wrote {output}")
        if fmt == CorrelateFormat.json:
            return
    if fmt == CorrelateFormat.json:
        typer.echo(to_json(runs, against), nl=False)
    else:
        render_table(runs, against, _stdout_console())


def _epoch_list(value: Optional[str]) -> Optional[list[int]]:
    if value is None:
        return None
    try:
        epochs = [int(e) for e in value.split(",") if e.strip()]
    except ValueError:
        epochs = []
    if not epochs:
        raise typer.BadParameter(f"'{value}' is not a comma-separated list of epochs such as 0,20,40", param_hint="--epochs")
    return epochs


@app.command()
def plot(
    paths: ResultsFiles,
    out: Annotated[Path, typer.Option("--out", help="Folder for the PNG files (created).")],
    z3: Annotated[Optional[Path], typer.Option("--z3", help="Folder of NAME.z3.npz files (from `sslmon score --save-z3`) for 3-d scatters of Z3.")] = None,
    against: Against = "lp_acc",
    names: RunNames = None,
    epochs: Annotated[Optional[str], typer.Option("--epochs", help="Comma-separated epochs of the Z3 scatters (default: first, middle and last in --z3).")] = None,
    quiet: Quiet = False,
) -> None:
    """Plot each metric against epoch, each label-free metric against the reference, and Z3 (PNG files).

    Prints the paths of the files written, one per line.
    """
    from sslmon.plots import PlotError, make_plots

    chosen_epochs = _epoch_list(epochs)
    if chosen_epochs is not None and z3 is None:
        raise typer.BadParameter("selects the Z3 scatters: give --z3 DIR too", param_hint="--epochs")
    runs = _load_runs(paths, names)
    try:
        written = make_plots(runs, out, against, z3, chosen_epochs, log=_logger(quiet))
    except PlotError as exc:
        _fail(exc)
    except OSError as exc:
        _fail(OutputError(f"{out}: cannot write the figures ({(exc.strerror or type(exc).__name__).lower()})"))
    typer.echo("\n".join(printable(str(path)) for path in written))


@app.command("metrics")
def list_metrics() -> None:
    """List the metric keys with their direction and definition."""
    table = Table("key", "better", "labels", "definition")
    for spec in METRICS.values():
        better = spec.better if spec.target is None else f"closest to {spec.target:g}"
        table.add_row(spec.name, better, "yes" if spec.needs_labels else "no", spec.summary)
    Console().print(table)


@app.command("archs")
def list_archs_cmd() -> None:
    """List the architecture names accepted by --arch and compare."""
    from sslmon.archs import list_archs

    typer.echo("\n".join(list_archs()))


# click's ClickException, whichever click typer uses (its own vendored copy or the click package)
_ClickException = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


def main() -> None:
    """The console script: a usage error (bad option value, missing argument) is one ``error:`` line and exit 2."""
    try:
        code = app(standalone_mode=False)
    except _ClickException as exc:
        _say("error: " + " ".join(exc.format_message().split()))
        code = exc.exit_code
    sys.exit(code if isinstance(code, int) else 0)
