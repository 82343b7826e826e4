"""The options of the ``sslmon`` commands, each declared once: Typer's Annotated declarations (with their --help
panels), the choices, and the callbacks that check a value as it is parsed (a usage error names the flag)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import Enum
import inspect
from pathlib import Path
from typing import Annotated, Any, Callable, Iterable, Optional, get_args

import typer

from sslmon import __version__, rules
from sslmon._text import one_line
from sslmon.api import Options
from sslmon.errors import OptionsError
from sslmon.io.config import FOLDER_CONFIG
from sslmon.evaluation import PRESETS
from sslmon.executors import EXECUTORS
from sslmon.metrics import METRICS, Z3_KMEANS_VARIANTS
from sslmon.selection import CONSENSUS, DEFAULT_CONSENSUS, EPOCH, INPUT, RULES, check_ranked

EXIT_ALARM = 3  # `watch --exit-on FLAG`: the flag appeared (not 1, a --fail-if; not 2, an error)

# The command-line spelling of a parameter that a library message names (exc.param); other Options fields are
# spelled --field-name.
FLAGS = {"paths": "PATHS", "names": "NAMES", "cache": "--no-cache", "exclude_init": "--exclude-init/--include-init",
         "trust": "--trust-checkpoints"}
OPTION_FIELDS = {f.name for f in fields(Options)}


def flag(param: str | None) -> str | None:
    """``k`` -> ``--k``, ``save_z3`` -> ``--save-z3``, ``paths`` -> ``PATHS`` (see :data:`FLAGS`)."""
    return None if param is None else FLAGS.get(param, "--" + param.replace("_", "-"))


class OutputFormat(str, Enum):
    table = "table"
    json = "json"
    jsonl = "jsonl"
    csv = "csv"


def _choices(name: str, values: Iterable[str]) -> Any:
    """A str Enum of ``values`` for Typer (member names = values), built from the home of the values."""
    return Enum(name, {v: v for v in values}, type=str)


PrecisionChoice = _choices("PrecisionChoice", rules.PRECISIONS)
Z3KmeansChoice = _choices("Z3KmeansChoice", Z3_KMEANS_VARIANTS)
PresetChoice = _choices("PresetChoice", PRESETS)
ExecutorChoice = _choices("ExecutorChoice", EXECUTORS)


class Judge(str, Enum):
    latest = "latest"
    best = "best"
    each = "each"


def version_callback(value: bool) -> None:
    if value:
        typer.echo(f"sslmon {__version__}")
        raise typer.Exit()



def metric_key(value: str) -> str:
    if value not in METRICS:
        raise typer.BadParameter(f"'{value}' is not a metric; valid: {', '.join(METRICS)}")
    return value


def _rank_by(value: Optional[str]) -> Optional[str]:
    if value is None or value in RULES or value in METRICS:
        try:
            check_ranked(value or CONSENSUS)
        except ValueError as exc:
            raise typer.BadParameter(str(exc))
        return value
    raise typer.BadParameter(f"'{value}' is neither '{EPOCH}', '{CONSENSUS}', '{INPUT}' nor a metric; valid metrics: {', '.join(METRICS)}")


def _device(value: str) -> str:
    """Check a --device name (``auto`` always passes; ``tpu`` or an absent CUDA is a usage error, not a traceback)."""
    if value != "auto":
        try:
            rules.resolve_device(value)
        except (ValueError, RuntimeError) as exc:
            raise typer.BadParameter(one_line(exc))
    return value


# Options shared by `score`, `compare` and `watch` (one definition each; defaults from api.Options).
DEFAULTS = Options()
K = Annotated[Optional[int], typer.Option("--k", min=2, help="k1, the number of k-means clusters (k2 = 2*k1). Default: the number of classes; required without labels.")]
Seed = Annotated[int, typer.Option(min=0, max=2**32 - 1, help="Data seed: image subsets (--limit), the reference split of knn_acc/lp_acc, random init. UMAP and k-means use --seeds.")]
Seeds = Annotated[Optional[str], typer.Option("--seeds", callback=lambda v: seed_list(v), help="Evaluation seeds of UMAP and k-means: a count S (seeds 0..S-1) or a list such as 0,5,7. Metrics are the mean over the seeds (std and per-seed values in JSON). Default 3.")]
Preset = Annotated[PresetChoice, typer.Option("--preset", help="paper (default): UMAP lays out umap-learn's own epochs (500 up to 10,000 images, 200 above), as the paper ran it; fast: 100 epochs, ~3x faster layouts, but H(Z3) is then not the paper's (docs/speed.md). Recorded in config.")]
UmapEpochs = Annotated[Optional[int], typer.Option("--umap-epochs", min=1, help="UMAP layout epochs (default: umap-learn's own rule, the paper's setting); any other value is not the paper's H(Z3), said once per run.")]
RankBy = Annotated[Optional[str], typer.Option("--rank-by", callback=_rank_by, help=f"Metric to rank by (see `sslmon metrics`), '{EPOCH}' (newest first), '{CONSENSUS}': the mean rank over {','.join(DEFAULT_CONSENSUS)} (docs/selection.md), or '{INPUT}': input order, nothing ranked. Default: {EPOCH} for a run's milestones, the last one recommended (score, watch, select); {INPUT} for different models (compare, embedding files, checkpoints without epochs) and across runs (select): no label-free ranking beat a random pick there in sslmon's study (docs/evidence/README.md). See docs/metrics.md#the-default-ranking.")]
Metrics = Annotated[Optional[str], typer.Option("--metrics", help="Comma-separated metric keys to compute (default: all the inputs allow).")]
LidarViews = Annotated[int, typer.Option("--lidar-views", min=0, help="LiDAR: embed N >= 2 augmented views (SimCLR stack) of each of up to 1000 images and add the lidar metric (0: off; not for embedding files).")]
BinFactor = Annotated[Optional[float], typer.Option("--bin-factor", min=0.01, help="Entropy bin width in stds of Z3. Default 0.4 (score: SSL encoders), 0.8 (compare: supervised ImageNet models), as in the paper.")]
Fmt = Annotated[OutputFormat, typer.Option("--format", "-f", help="Output format on stdout.")]
TableColumns = Annotated[Optional[str], typer.Option("--columns", callback=lambda v: None if v is None else metric_keys(v, "--columns"), help="The table's metric columns: exactly these comma-separated metric keys, e.g. rankme,entropy_z3,knn_acc (default: the metrics that fit the width).")]
Wide = Annotated[bool, typer.Option("--wide", help="The table with every metric column and no width limit (default: fit the terminal's width, or COLUMNS when stdout is piped).")]
Output = Annotated[Optional[Path], typer.Option("--output", "-o", help="Also write the results to this file (.json, .jsonl or .csv; format from --format when given).")]
TensorBoardDir = Annotated[Optional[Path], typer.Option("--tensorboard", help="Also write each result's metrics as TensorBoard scalars sslmon/<metric> at its milestone's epoch into this folder (pip install 'sslmon[tensorboard]').")]
Device = Annotated[str, typer.Option(callback=_device, help="Torch device: auto (cuda, then mps, then cpu), cpu, cuda, mps.")]
PrecisionOpt = Annotated[PrecisionChoice, typer.Option("--precision", help="Forward passes in fp32 (default: CPU and GPU agree) or bf16 (bfloat16 autocast, faster on recent GPUs); recorded in config.")]
Z3Kmeans = Annotated[Z3KmeansChoice, typer.Option("--z3-kmeans", help="What the cosine k-means of C1/C2 clusters: paper (Z3 as UMAP lays it out, the paper's definition) or centred (Z3 minus its mean; docs/selection.md); recorded in config.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or messages on stderr (errors are still printed).")]
Dataset = Annotated[Optional[str], typer.Option("--dataset", "-d", help="Images to embed: default (embedded Fashion-MNIST), fashion-mnist[:DIR], cifar10:DIR, cifar100:DIR, imagefolder:DIR (or just DIR: an existing folder), npz:FILE.")]
Limit = Annotated[Optional[int], typer.Option("--limit", min=1, help="Stratified subset of N evaluation images (and of N train images unless --train-limit).")]
TrainLimit = Annotated[Optional[int], typer.Option("--train-limit", min=1, help="Stratified subset of N train images (for knn_acc and lp_acc).")]
ImageSize = Annotated[Optional[int], typer.Option("--image-size", min=8, help="imagefolder only: images are resized and centre-cropped to this size. Default: their native size (the median shorter side; 224 for compare). Each checkpoint's embedding then resizes to the input size it was trained at when its milestone records one (a note says so).")]
BatchSize = Annotated[Optional[int], typer.Option("--batch-size", min=1, help="Images per forward pass. Default 256 (score, watch), 64 (compare).")]
ExecutorOpt = Annotated[ExecutorChoice, typer.Option("--executor", help="Where encoders are scored: local (this process, one after another) or ray (one Ray task each; pip install 'sslmon[ray]').")]
RayAddress = Annotated[Optional[str], typer.Option("--ray-address", help="Ray cluster to join: auto (a running cluster) or ADDRESS; default: start or join a local Ray instance.")]
GpusPerTask = Annotated[Optional[float], typer.Option("--gpus-per-task", min=0, help="GPUs per Ray task (default 1 when the cluster has GPUs, else 0).")]
CpusPerTask = Annotated[float, typer.Option("--cpus-per-task", min=0, help="CPUs per Ray task.")]
ExcludeInit = Annotated[bool, typer.Option("--exclude-init/--include-init", help="Leave the epoch-0 (untrained) milestone out of the ranking and of --fail-if; it is still reported (docs/selection.md).")]
NoReference = Annotated[bool, typer.Option("--no-reference", help="Do not score the reference: Gaussian noise of the same n x d through the same evaluation (one extra evaluation per run, cached), shown as the 'ref' row and in JSON reference_values.")]
NoCache = Annotated[bool, typer.Option("--no-cache", help="Recompute even when the results cache has this checkpoint, dataset and settings.")]
FailIf = Annotated[Optional[list[str]], typer.Option("--fail-if", help='Exit 1 when a condition such as "rankme<40" or "knn_acc<=0.8", or a flag (collapse, plateau, noise), holds for the judged result (repeatable). A gate that judges nothing (only the init milestone; a metric the data leaves undefined) exits 2.')]
JudgeOpt = Annotated[Judge, typer.Option("--judge", help="Which result --fail-if judges: latest (highest epoch, else last input), best (rank 1), each (any result).")]
SaveZ3 = Annotated[Optional[Path], typer.Option("--save-z3", help="Folder to save each input's Z3 (UMAP 3-d), C1/C2 and labels as NAME.z3.npz, for `sslmon plot`.")]
Arch = Annotated[str, typer.Option("--arch", help="Architecture of the checkpoints (see `sslmon archs`); auto matches keys and shapes.")]
TrustCheckpoints = Annotated[bool, typer.Option("--trust-checkpoints", help="Allow checkpoints that need full unpickling (can run code: only for files you trust).")]
TrustData = Annotated[bool, typer.Option("--trust-data", help="Allow dataset files (CIFAR pickles) that need full unpickling (can run code: only for files you trust).")]
ConfigFile = Annotated[Optional[Path], typer.Option("--config", help=f"YAML file of options (keys as the long option names). A {FOLDER_CONFIG} in a checkpoint folder is read too (evaluation settings only); the command line wins.")]


def seed_list(value: Optional[str]) -> Optional[tuple[int, ...]]:
    """``"3"`` -> (0, 1, 2); ``"0,5,7"`` -> (0, 5, 7); None stays None (the default)."""
    if value is None or isinstance(value, tuple):
        return value
    try:
        return rules.parse_seeds(value)
    except OptionsError as exc:
        raise typer.BadParameter(str(exc).removeprefix("seeds: "), param_hint="--seeds") from None


Group = list[tuple[str, Any, Any]]  # (parameter name, Annotated type with its typer.Option, default)


def panel(title: str, group: Group) -> Group:
    """Show every option of ``group`` under the --help panel ``title`` (typer's rich_help_panel)."""
    for _, annotation, _ in group:
        for info in get_args(annotation)[1:]:
            info.rich_help_panel = title
    return group


# The options of the scoring commands, in --help order (a panel per group), each defined once; `with_options` adds
# a command's groups.
IMAGES = panel("Images", [("dataset", Dataset, None), ("limit", Limit, None), ("train_limit", TrainLimit, None),
                           ("image_size", ImageSize, DEFAULTS.image_size), ("trust_data", TrustData, False)])
CHECKPOINTS = panel("Checkpoints", [("arch", Arch, DEFAULTS.arch), ("trust_checkpoints", TrustCheckpoints, False)])
EVALUATION = panel("Evaluation", [
    ("k", K, None), ("seed", Seed, DEFAULTS.seed), ("seeds", Seeds, None), ("preset", Preset, PresetChoice.paper),
    ("umap_epochs", UmapEpochs, None),
    ("z3_kmeans", Z3Kmeans, Z3KmeansChoice.paper), ("rank_by", RankBy, None), ("metrics", Metrics, None),
    ("bin_factor", BinFactor, None), ("lidar_views", LidarViews, DEFAULTS.lidar_views), ("no_reference", NoReference, False)])
REPORT = panel("Output", [("fmt", Fmt, OutputFormat.table), ("columns", TableColumns, None), ("wide", Wide, False),
                           ("output", Output, None), ("tensorboard", TensorBoardDir, None), ("save_z3", SaveZ3, None)])
EXECUTION = panel("Execution", [
    ("device", Device, DEFAULTS.device), ("precision", PrecisionOpt, PrecisionChoice.fp32),
    ("batch_size", BatchSize, None), ("no_cache", NoCache, False), ("executor", ExecutorOpt, ExecutorChoice.local),
    ("ray_address", RayAddress, None), ("gpus_per_task", GpusPerTask, None),
    ("cpus_per_task", CpusPerTask, DEFAULTS.cpus_per_task)])
GATES = panel("Gates", [("fail_if", FailIf, None)])
INIT = panel("Evaluation", [("exclude_init", ExcludeInit, DEFAULTS.exclude_init)])
FILES = panel("Execution", [("config", ConfigFile, None), ("quiet", Quiet, False)])

# The exit codes, at the end of each command's --help (the module docstring has them all).
EXIT_SCORING = ("Exit codes: 0 success; 1 a --fail-if condition held; 2 an input failed (the others are still reported), "
                "a usage error, a --fail-if that judges nothing, or an -o file or stdout that cannot be written; "
                "130 interrupted (the finished results are written); 141 stdout closed by its reader.")
EXIT_FILES = ("Exit codes: 0 success; 2 a bad input file, a usage error or an output that cannot be written; "
              "141 stdout closed by its reader.")


def with_options(*groups: list[tuple[str, Any, Any]]) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Give a command ``def cmd(ctx, ARGS..., **options)`` the shared options of ``groups`` after its own parameters
    (one of its own, e.g. watch's ``--output``, replaces the shared one of that name); Typer reads the signature."""

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        signature = inspect.signature(command, eval_str=True)
        own = [p for p in signature.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
        taken = {p.name for p in own}
        shared = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default)
                  for group in groups for name, annotation, default in group if name not in taken]
        command.__signature__ = signature.replace(parameters=own + shared)  # type: ignore[attr-defined]
        return command

    return decorate



def metric_list(value: Optional[str]) -> Optional[tuple[str, ...]]:
    """The comma-separated metric keys of ``--metrics`` (checked by Options)."""
    return None if value is None else tuple(m.strip() for m in value.split(",") if m.strip())


def metric_keys(value: str, flag: str) -> tuple[str, ...]:
    """The comma-separated metric keys of ``flag``, each a known metric."""
    names = metric_list(value) or ()
    unknown = [m for m in names if m not in METRICS]
    if unknown or not names:
        raise typer.BadParameter(f"unknown metric(s) {', '.join(unknown) or repr(value)}; valid: {', '.join(METRICS)}", param_hint=flag)
    return names


def consensus_keys(value: str) -> tuple[str, ...]:
    """The metric keys of ``--consensus``: known metrics with a direction."""
    names = metric_keys(value, "--consensus")
    try:
        for name in names:
            check_ranked(name)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--consensus")
    return names


def epoch_list(value: Optional[str]) -> Optional[list[int]]:
    if value is None:
        return None
    try:
        epochs = [int(e) for e in value.split(",") if e.strip()]
    except ValueError:
        epochs = []
    if not epochs:
        raise typer.BadParameter(f"'{value}' is not a comma-separated list of epochs such as 0,20,40", param_hint="--epochs")
    return epochs



class SelectFormat(str, Enum):
    path = "path"
    json = "json"


class Method(str, Enum):
    simclr = "simclr"
    moco = "moco"
    simsiam = "simsiam"
    simsiam_no_sg = "simsiam-no-sg"
    simsiam_no_pred = "simsiam-no-pred"


class CorrelateFormat(str, Enum):
    table = "table"
    json = "json"


class FigureFormat(str, Enum):
    png = "png"
    svg = "svg"
    pdf = "pdf"


ResultsFiles = Annotated[list[Path], typer.Argument(help="Results files written by `sslmon score -f json` (or -o FILE.json), or JSON Lines (`score -f jsonl`, `watch -o`, the Lightning callback); one per run or method.")]
Against = Annotated[str, typer.Option("--against", callback=metric_key, help="Reference metric (a label-based accuracy) the others are correlated with.")]
RunNames = Annotated[Optional[list[str]], typer.Option("--name", help="Name of each run, one per results file in order (default: the file stems).")]
Epochs = Annotated[Optional[str], typer.Option("--epochs", callback=epoch_list, help="Comma-separated epochs of the Z3 scatters (default: first, middle and last in --z3).")]
ALARMS = ("collapse", "plateau")  # the flags `watch --exit-on` can stop at


def exit_on_flags(values: Optional[list[str]]) -> list[str]:
    """The flags of ``watch --exit-on``, each an alarm code."""
    for code in values or []:
        if code not in ALARMS:
            raise typer.BadParameter(f"'{code}' is not an alarm: collapse or plateau", param_hint="--exit-on")
    return values or []


def jsonl_output(path: Optional[Path]) -> Optional[Path]:
    """``watch -o``: a JSON Lines file."""
    if path is not None and path.suffix != ".jsonl":
        raise typer.BadParameter(f"{path}: watch appends JSON Lines: name a .jsonl file", param_hint="--output")
    return path


@dataclass(frozen=True)
class Printing:
    """What the command line does with a run besides scoring it (no evaluation setting): the stdout ``fmt``, the
    table's ``columns``/``wide``, the ``output`` (-o) and ``tensorboard`` files, ``quiet``, the ``fail_if`` gates
    and which result they ``judge``, the ``config`` file (an input -o must not overwrite)."""

    fmt: OutputFormat = OutputFormat.table
    output: Optional[Path] = None
    quiet: bool = False
    columns: Optional[tuple[str, ...]] = None
    wide: bool = False
    tensorboard: Optional[Path] = None
    fail_if: tuple[str, ...] = ()
    judge: Judge = Judge.latest
    config: Optional[Path] = None


PRINTING = frozenset(Printing.__dataclass_fields__)
RENAMED = {"no_cache": "cache", "no_reference": "reference_values"}  # negative flags -> the Options field they negate


def split(flags: dict[str, Any]) -> tuple[Options, Printing]:
    """A command's parsed flags (command line, then option files through Click's default_map) as the run's
    :class:`~sslmon.api.Options` and its :class:`Printing`; an option value Options refuses is a usage error."""
    settings: dict[str, Any] = {RENAMED.get(k, k): (not v if k in RENAMED else v) for k, v in flags.items() if k not in PRINTING}
    settings["metrics"] = metric_list(settings.get("metrics"))
    settings = {k: (v.value if isinstance(v, Enum) else v) for k, v in settings.items()}
    printing = {k: v for k, v in flags.items() if k in PRINTING and v is not None}
    printing["fail_if"] = tuple(printing.get("fail_if", ()))
    try:
        return Options.from_mapping(settings), Printing(**printing)
    except OptionsError as exc:
        raise typer.BadParameter(str(exc), param_hint=flag(exc.param)) from None
