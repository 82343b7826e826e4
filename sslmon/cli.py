"""The ``sslmon`` command line: a thin layer over :mod:`sslmon.api`.

Exit codes: 0 success; 1 a ``--fail-if`` condition held; 2 some input failed
(the others are still reported and written), the ``-o`` file could not be written
(the results go to stdout), stdout could not be written, a usage error, a ``--fail-if`` that judges nothing, or
nothing to ``select``; 3 ``watch --exit-on FLAG`` saw that flag (:data:`EXIT_ALARM`); 130 interrupted (Ctrl-C)
after the finished results were written; 141 stdout closed by its reader (as for SIGPIPE).
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from dataclasses import fields
from enum import Enum
import errno
import inspect
import io
import os
import re
from pathlib import Path
import sys
from typing import TYPE_CHECKING, Annotated, Any, Callable, Iterator, NoReturn, Optional, Sequence, get_args, get_origin

import typer
from typer.core import TyperGroup
from rich.console import Console
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from sslmon import __version__, api
from sslmon._text import one_line
from sslmon.api import OnProgress, Options
from sslmon.conditions import Gate, judge as judge_results, nothing_to_judge, parse_condition
from sslmon.io.config import (FOLDER_CONFIG, ConfigError, check_bound, check_folder_key, check_type, folder_config, option_name,
                              yaml_value, read_yaml)
from sslmon.errors import OptionsError, SslmonError
from sslmon.metrics import METRICS
from sslmon.io.output import OutputError, ResultsFile, check_target, write_atomic
from sslmon.report import printable, ranked_table, render, render_table
from sslmon.io.runfile import jsonl_header, jsonl_line, now
from sslmon.results import Failure, OnResult, Result, Run
from sslmon.selection import CONSENSUS, DEFAULT_CONSENSUS, EPOCH, check_ranked

if TYPE_CHECKING:
    from sslmon.io.tensorboard import TensorBoardLog
    from sslmon.meta.correlate import NamedRun

EXIT_ALARM = 3  # `watch --exit-on FLAG`: the flag appeared (not 1, a --fail-if; not 2, an error)

# The command-line spelling of a parameter that a library message names (exc.param); other Options fields are
# spelled --field-name.
FLAGS = {"paths": "PATHS", "names": "NAMES", "cache": "--no-cache", "exclude_init": "--exclude-init/--include-init",
         "trust": "--trust-checkpoints"}


OPTION_FIELDS = {f.name for f in fields(Options)}


def _flag(param: str | None) -> str | None:
    """``k`` -> ``--k``, ``save_z3`` -> ``--save-z3``, ``paths`` -> ``PATHS`` (see :data:`FLAGS`)."""
    return None if param is None else FLAGS.get(param, "--" + param.replace("_", "-"))


_SETTING = re.compile(r"`([a-z_][a-z0-9_]*)(?:=([^`]*))?`")  # a setting as the library's messages spell it: `cache=False`


def _spelled(message: str) -> str:
    """The library's spelling of a setting in backquotes, `name=value` or `name`, as the command line spells it:
    `cache=False` -> --no-cache, `weights="none"` -> --weights none, `save_z3` -> --save-z3."""

    def flag(match: re.Match[str]) -> str:
        name, value = match.group(1), match.group(2)
        if name not in OPTION_FIELDS:
            return match.group(0)
        if value is None or value in ("True", "False"):
            return str(_flag(name))
        return f"{_flag(name)} {value.strip(chr(34) + chr(39))}"

    return _SETTING.sub(flag, message)


def _error_line(message: str, param: str | None) -> str:
    """``error: MESSAGE [FLAG]``: the library's one-line message with the command-line flag of its parameter (no
    ``[FLAG]`` when the message already names the flag)."""
    hint = _flag(param)
    message = _spelled(message)
    return f"error: {message}" + (f" [{hint}]" if hint and hint not in message else "")


class _Commands(TyperGroup):
    """The one place a library error becomes CLI output: ``error: <message> [<flag>]`` on stderr, exit 2."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except SslmonError as exc:
            _say(_error_line(str(exc), exc.param))
            raise typer.Exit(2) from None
        except StdoutError as exc:
            raise typer.Exit(_stdout_failed(exc.error)) from None


STDOUT_CLOSED = 141  # a closed stdout (a reader such as `head` gone): 128 + SIGPIPE, as a shell reports `yes | head`


class StdoutError(Exception):
    """stdout cannot be written (``error``: the OSError); raised by :class:`_GuardedStdout`."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


class _GuardedStdout:
    """sys.stdout as the console script sees it: a write or flush that fails raises :class:`StdoutError`, so that a
    full disk or a closed pipe is told apart from any other OSError (click would exit 1 on EPIPE)."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except OSError as exc:
            raise StdoutError(exc) from None

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as exc:
            raise StdoutError(exc) from None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _stdout_failed(exc: OSError) -> int:
    """The exit code when stdout cannot be written: 141 for a closed pipe (EPIPE; silently, as other command-line
    tools), 2 with one ``error: stdout: ...`` line otherwise (a full disk). stdout then goes to /dev/null, so that
    Python's final flush fails no more."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
    if isinstance(exc, BrokenPipeError) or exc.errno == errno.EPIPE:
        return STDOUT_CLOSED
    _say(f"error: stdout: cannot write the results ({(exc.strerror or type(exc).__name__).lower()})")
    return 2


app = typer.Typer(
    cls=_Commands,
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


class Z3KmeansChoice(str, Enum):
    paper = "paper"
    centred = "centred"


class PresetChoice(str, Enum):
    paper = "paper"
    fast = "fast"


class ExecutorChoice(str, Enum):
    local = "local"
    ray = "ray"


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


def _rank_by(value: Optional[str]) -> Optional[str]:
    if value is None or value in (CONSENSUS, EPOCH) or value in METRICS:
        try:
            check_ranked(value or CONSENSUS)
        except ValueError as exc:
            raise typer.BadParameter(str(exc))
        return value
    raise typer.BadParameter(f"'{value}' is neither '{EPOCH}', '{CONSENSUS}' nor a metric; valid metrics: {', '.join(METRICS)}")


def _device(value: str) -> str:
    """Check a --device name (``auto`` always passes; ``tpu`` or an absent CUDA is a usage error, not a traceback)."""
    if value != "auto":
        from sslmon.models.embed import resolve_device

        try:
            resolve_device(value)
        except (ValueError, RuntimeError) as exc:
            raise typer.BadParameter(one_line(exc))
    return value


# Options shared by `score`, `compare` and `watch` (one definition each; defaults from api.Options).
DEFAULTS = Options()
K = Annotated[Optional[int], typer.Option("--k", min=2, help="k1, the number of k-means clusters (k2 = 2*k1). Default: the number of classes; required without labels.")]
Seed = Annotated[int, typer.Option(min=0, max=2**32 - 1, help="Data seed: image subsets (--limit), the reference split of knn_acc/lp_acc, random init. UMAP and k-means use --seeds.")]
Seeds = Annotated[Optional[str], typer.Option("--seeds", callback=lambda v: _seed_list(v), help="Evaluation seeds of UMAP and k-means: a count S (seeds 0..S-1) or a list such as 0,5,7. Metrics are the mean over the seeds (std and per-seed values in JSON). Default 3.")]
Preset = Annotated[PresetChoice, typer.Option("--preset", help="paper (default): UMAP lays out umap-learn's own epochs (500 up to 10,000 images, 200 above), as the paper ran it; fast: 100 epochs, ~3x faster layouts, but H(Z3) is then not the paper's (docs/speed.md). Recorded in config.")]
UmapEpochs = Annotated[Optional[int], typer.Option("--umap-epochs", min=1, help="UMAP layout epochs (default: umap-learn's own rule, the paper's setting); any other value is not the paper's H(Z3), said once per run.")]
RankBy = Annotated[Optional[str], typer.Option("--rank-by", callback=_rank_by, help=f"Metric to rank by (see `sslmon metrics`), '{EPOCH}' (newest first), or '{CONSENSUS}': the mean rank over {','.join(DEFAULT_CONSENSUS)} (docs/selection.md). Default: {EPOCH} for a run's milestones, the last one recommended (score, watch, select); entropy_z3 for different models (compare, embedding files, checkpoints without epochs). See docs/metrics.md#the-default-ranking.")]
Metrics = Annotated[Optional[str], typer.Option("--metrics", help="Comma-separated metric keys to compute (default: all the inputs allow).")]
LidarViews = Annotated[int, typer.Option("--lidar-views", min=0, help="LiDAR: embed N >= 2 augmented views (SimCLR stack) of each of up to 1000 images and add the lidar metric (0: off; not for embedding files).")]
BinFactor = Annotated[Optional[float], typer.Option("--bin-factor", min=0.01, help="Entropy bin width in stds of Z3. Default 0.4 (score: SSL encoders), 0.8 (compare: supervised ImageNet models), as in the paper.")]
Fmt = Annotated[OutputFormat, typer.Option("--format", "-f", help="Output format on stdout.")]
TableColumns = Annotated[Optional[str], typer.Option("--columns", callback=lambda v: None if v is None else _metric_keys(v, "--columns"), help="The table's metric columns: exactly these comma-separated metric keys, e.g. rankme,entropy_z3,knn_acc (default: the metrics that fit the width).")]
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


Group = list[tuple[str, Any, Any]]  # (parameter name, Annotated type with its typer.Option, default)


def _panel(title: str, group: Group) -> Group:
    """Show every option of ``group`` under the --help panel ``title`` (typer's rich_help_panel)."""
    for _, annotation, _ in group:
        for info in get_args(annotation)[1:]:
            info.rich_help_panel = title
    return group


# The options of the scoring commands, in --help order (a panel per group), each defined once; `_with_options` adds
# a command's groups.
IMAGES = _panel("Images", [("dataset", Dataset, None), ("limit", Limit, None), ("train_limit", TrainLimit, None),
                           ("image_size", ImageSize, DEFAULTS.image_size), ("trust_data", TrustData, False)])
CHECKPOINTS = _panel("Checkpoints", [("arch", Arch, DEFAULTS.arch), ("trust_checkpoints", TrustCheckpoints, False)])
EVALUATION = _panel("Evaluation", [
    ("k", K, None), ("seed", Seed, DEFAULTS.seed), ("seeds", Seeds, None), ("preset", Preset, PresetChoice.paper),
    ("umap_epochs", UmapEpochs, None),
    ("z3_kmeans", Z3Kmeans, Z3KmeansChoice.paper), ("rank_by", RankBy, None), ("metrics", Metrics, None),
    ("bin_factor", BinFactor, None), ("lidar_views", LidarViews, DEFAULTS.lidar_views), ("no_reference", NoReference, False)])
REPORT = _panel("Output", [("fmt", Fmt, OutputFormat.table), ("columns", TableColumns, None), ("wide", Wide, False),
                           ("output", Output, None), ("tensorboard", TensorBoardDir, None), ("save_z3", SaveZ3, None)])
EXECUTION = _panel("Execution", [
    ("device", Device, DEFAULTS.device), ("precision", PrecisionOpt, PrecisionChoice.fp32),
    ("batch_size", BatchSize, None), ("no_cache", NoCache, False), ("executor", ExecutorOpt, ExecutorChoice.local),
    ("ray_address", RayAddress, None), ("gpus_per_task", GpusPerTask, None),
    ("cpus_per_task", CpusPerTask, DEFAULTS.cpus_per_task)])
GATES = _panel("Gates", [("fail_if", FailIf, None)])
INIT = _panel("Evaluation", [("exclude_init", ExcludeInit, DEFAULTS.exclude_init)])
FILES = _panel("Execution", [("config", ConfigFile, None), ("quiet", Quiet, False)])

# The exit codes, at the end of each command's --help (the module docstring has them all).
EXIT_SCORING = ("Exit codes: 0 success; 1 a --fail-if condition held; 2 an input failed (the others are still reported), "
                "a usage error, a --fail-if that judges nothing, or an -o file or stdout that cannot be written; "
                "130 interrupted (the finished results are written); 141 stdout closed by its reader.")
EXIT_FILES = ("Exit codes: 0 success; 2 a bad input file, a usage error or an output that cannot be written; "
              "141 stdout closed by its reader.")


def _with_options(*groups: list[tuple[str, Any, Any]]) -> Callable[[Callable[..., None]], Callable[..., None]]:
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



def _options(params: dict[str, Any], **defaults: Any) -> Options:
    """The run's :class:`~sslmon.api.Options` from the parsed flags (command line, then YAML; None = default)."""
    values = dict(params)
    values["cache"] = not values.pop("no_cache", False)
    values["reference_values"] = not values.pop("no_reference", False)
    values["metrics"] = _metric_list(values.get("metrics"))
    for key in ("precision", "executor", "z3_kmeans", "preset"):
        if isinstance(values.get(key), Enum):
            values[key] = values[key].value
    try:
        return Options.from_mapping(values, **defaults)
    except OptionsError as exc:
        raise typer.BadParameter(str(exc), param_hint=_flag(exc.param)) from None


def _metric_list(value: Optional[str]) -> Optional[tuple[str, ...]]:
    """The comma-separated metric keys of ``--metrics`` (checked by Options)."""
    return None if value is None else tuple(m.strip() for m in value.split(",") if m.strip())


def _metric_keys(value: str, flag: str) -> tuple[str, ...]:
    """The comma-separated metric keys of ``flag``, each a known metric."""
    names = _metric_list(value) or ()
    unknown = [m for m in names if m not in METRICS]
    if unknown or not names:
        raise typer.BadParameter(f"unknown metric(s) {', '.join(unknown) or repr(value)}; valid: {', '.join(METRICS)}", param_hint=flag)
    return names


def _consensus_keys(value: str) -> tuple[str, ...]:
    """The metric keys of ``--consensus``: known metrics with a direction."""
    names = _metric_keys(value, "--consensus")
    try:
        for name in names:
            check_ranked(name)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--consensus")
    return names


def _say(msg: str) -> None:
    """One line to stderr, as written: no markup, no highlighting, never wrapped, control characters escaped."""
    err.print(printable(msg), highlight=False, soft_wrap=True, markup=False)


def _logger(quiet: bool, errors: bool = True) -> Callable[[str], None]:
    """Progress lines to stderr unless quiet; warning lines always; error lines unless ``errors`` is False (when
    the caller prints each failure itself, with its flag)."""

    def log(msg: str) -> None:
        msg = _spelled(msg)
        if msg.startswith("error:"):
            if errors:
                _say(msg)
        elif not quiet or msg.startswith("warning:"):
            _say(msg)

    return log


def _fail(exc: Exception) -> NoReturn:
    """``error: <one-line message naming the file>`` on stderr, then exit 2."""
    _say(f"error: {exc}")
    raise typer.Exit(2)


@contextmanager
def _progress(quiet: bool) -> Iterator[OnProgress | None]:
    """``on_progress`` drawing Rich progress bars on stderr, only when stderr is a terminal and not --quiet."""
    if quiet or not err.is_terminal:
        yield None
        return
    bars = Progress(TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=err, transient=True)
    tasks: dict[str, Any] = {}

    def on_progress(task: str, done: int, total: int) -> None:
        if task not in tasks:
            tasks[task] = bars.add_task(printable(task), total=total)
        bars.update(tasks[task], completed=done)
        if done >= total and task != "encoders":
            bars.remove_task(tasks.pop(task))

    with bars:
        yield on_progress


def _apply_yaml(ctx: typer.Context, config: Optional[Path], folder_files: Sequence[Path] = ()) -> None:
    """Fill options the user did not give on the command line from --config, then from the folders' own files
    (untrusted: evaluation settings only, see :mod:`sslmon.io.config`); ConfigError naming a refused file."""
    params = {p.name: p for p in ctx.command.params}
    set_by_file: set[str] = set()  # an earlier file wins
    files = [(config, False)] if config else []
    for path, untrusted in [*files, *((f, True) for f in folder_files)]:
        data = read_yaml(path)
        overridden = [str(key) for key in data if option_name(key) in params and
                      ctx.get_parameter_source(option_name(key)).name != "DEFAULT"]
        if data:
            _say(f"read options from {path}: {', '.join(map(str, data))}"
                 + (f" (the command line wins for {', '.join(overridden)})" if overridden else ""))
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
                check_bound(path, key, ctx.params[name])
                set_by_file.add(name)


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


def _table_console(wide: bool = False) -> tuple[Console, bool]:
    """stdout console for the ranked table and whether the table must fit its width: the terminal's width, or
    ``COLUMNS`` when stdout is piped (Rich reads it); piped without ``COLUMNS``, or ``--wide``: no width limit."""
    out = Console()
    if wide or not (out.is_terminal or os.environ.get("COLUMNS", "").isdigit()):
        return Console(width=1000, force_terminal=out.is_terminal or None), False
    return out, True


def _results_file(output: Optional[Path], fmt: OutputFormat, inputs: list[Path], append: bool = False) -> ResultsFile | None:
    """The -o file (format from --format, else from the suffix), checked before any scoring: exit 2 when refused.
    ``append``: stream after what the file holds (see :class:`ResultsFile`)."""
    if output is None:
        return None
    check_target(output, inputs)
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


def _scoring(score_fn: Callable[[OnResult], Run], out: ResultsFile | None, started: str,
             board: TensorBoardLog | None = None) -> tuple[Run | None, bool]:
    """Run ``score_fn``, streaming each finished record to the -o file (after the JSON Lines header with the run's
    config and ``started``) and each result to the TensorBoard log; on Ctrl-C return what finished.

    Returns (run, interrupted); the run is None when Ctrl-C came before the first result."""
    latest: list[Run] = []

    def on_result(run: Run, item: Result | Failure) -> None:
        if out is not None and not latest:
            out.stream(jsonl_header(run.config, started))
        latest[:] = [run]
        if isinstance(item, Failure):
            _say(_error_line(item.error, item.param))
        if out is not None:
            out.stream(jsonl_line(item))
        if board is not None and isinstance(item, Result):
            board.add_result(item)

    try:
        return score_fn(on_result), False
    except KeyboardInterrupt:
        return (latest[0] if latest else None), True


def _finish(run: Run | None, fmt: OutputFormat, out: ResultsFile | None, conditions: list[Gate], which: Judge,
            interrupted: bool = False, started: str | None = None, columns: Sequence[str] | None = None,
            wide: bool = False) -> None:
    """Write the -o file and/or stdout, then exit 130 if interrupted, 2 if some input failed or -o could not be
    written (the results then go to stdout), 1 if a --fail-if condition held, else 0. The ranking is the run's
    (``config.rank_by``; with ``exclude_init`` the epoch-0 milestone is reported but neither ranked nor judged).
    ``columns``/``wide``: the table's metric columns and width (``--columns``, ``--wide``)."""
    if run is None:
        _say("interrupted before any result finished")
        raise typer.Exit(130)
    rank_by = run.config["rank_by"]
    written = out is not None and out.finish(render(run, rank_by, out.fmt, started))
    if written:
        _say(f"wrote {out.path} ({out.fmt})")
    if fmt == OutputFormat.table:
        console, fit = _table_console(wide)
        render_table(run, rank_by, console, fit=fit, columns=columns)
    else:  # -o writes the results "also": stdout gets them in the --format asked for
        typer.echo(render(run, rank_by, fmt.value, started), nl=False)
    if interrupted:
        _say(f"interrupted: the {len(run.results)} finished result(s) were reported")
        raise typer.Exit(130)
    empty_gate = nothing_to_judge(run.gated(), conditions, which.value, rank_by)
    if empty_gate:
        _say(f"error: {empty_gate}")
        raise typer.Exit(2)
    tripped = judge_results(run.gated(), conditions, which.value, rank_by) if conditions else []
    for message in tripped:
        _say(f"fail-if: {message}")
    if run.failures or (out is not None and out.failed):
        raise typer.Exit(2)
    if tripped:
        raise typer.Exit(1)


def _conditions(fail_if: Optional[list[str]]) -> list[Gate]:
    try:
        return [parse_condition(c) for c in fail_if or []]
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--fail-if")


@app.command(epilog=EXIT_SCORING)
@_with_options(IMAGES, CHECKPOINTS, EVALUATION, REPORT, EXECUTION, GATES,
               _panel("Gates", [("judge", JudgeOpt, Judge.latest)]), INIT, FILES)
def score(
    ctx: typer.Context,
    paths: Annotated[list[Path], typer.Argument(readable=False, help="Checkpoint folders or files (.pt .pth .ckpt .bin .safetensors, TorchScript), or embedding files (.npz, .npy).")],
    **options: Any,
) -> None:
    """Score checkpoints (or embedding files) and print them ranked by label-free metrics (default: their consensus)."""
    _apply_yaml(ctx, options["config"], [f for f in (folder_config(p) for p in paths if p.is_dir()) if f is not None])
    p = ctx.params
    opts = _options(p)
    out = _results_file(p["output"], p["fmt"], _input_files(paths, p["config"], p["dataset"]))
    _run(lambda on_result, on_progress: api.score(paths, options=opts, log=_logger(p["quiet"], errors=False), on_result=on_result,
                                                  on_progress=on_progress), p, out)


@app.command(epilog=EXIT_SCORING)
@_with_options(IMAGES, EVALUATION, REPORT, EXECUTION, GATES, _panel("Gates", [("judge", JudgeOpt, Judge.best)]), FILES)
def compare(
    ctx: typer.Context,
    names: Annotated[list[str], typer.Argument(help="torchvision model names, e.g. resnet18 densenet121 efficientnet_b0 (see `sslmon archs`).")],
    weights: Annotated[str, typer.Option("--weights", help="default: torchvision's default pretrained weights (from the TORCH_HOME cache, downloaded when missing); none: seeded random init.")] = DEFAULTS.weights,
    offline: Annotated[bool, typer.Option("--offline", help="Never download weights (also SSLMON_OFFLINE=1): missing ones are an error naming the file, folder and URL.")] = False,
    **options: Any,
) -> None:
    """Score torchvision models on the same images; images are resized to each model's weights resolution."""
    _apply_yaml(ctx, options["config"])
    p = ctx.params
    opts = _options(p)
    out = _results_file(p["output"], p["fmt"], _input_files([], p["config"], p["dataset"]))
    download_bar = False if p["quiet"] else None  # None: a download progress bar when stderr is a terminal
    _run(lambda on_result, on_progress: api.compare(names, options=opts, log=_logger(p["quiet"], errors=False), on_result=on_result,
                                                    on_progress=on_progress, download_progress=download_bar), p, out)


def _tensorboard(folder: Optional[Path]) -> TensorBoardLog | None:
    """The --tensorboard log (created before any work, so a missing package or bad folder is exit 2 at once)."""
    if folder is None:
        return None
    from sslmon.io.tensorboard import TensorBoardLog

    return TensorBoardLog(folder)


def _run(score_fn: Callable[[OnResult, OnProgress | None], Run], p: dict[str, Any], out: ResultsFile | None) -> None:
    """Score with progress bars, streaming each record to the -o file, then report and exit (see :func:`_finish`)."""
    conditions = _conditions(p["fail_if"])
    started = now()
    board = _tensorboard(p["tensorboard"])
    with _progress(p["quiet"]) as on_progress, board or nullcontext():
        run, interrupted = _scoring(lambda on_result: score_fn(on_result, on_progress), out, started, board)
    _finish(run, p["fmt"], out, conditions, p["judge"], interrupted, started, p["columns"], p["wide"])


class SelectFormat(str, Enum):
    path = "path"
    json = "json"


@app.command(epilog=EXIT_SCORING.replace("1 a --fail-if condition held; ", "").replace("a --fail-if that judges nothing", "nothing to choose"))
@_with_options(IMAGES, CHECKPOINTS, EVALUATION, EXECUTION, INIT, FILES)
def select(
    ctx: typer.Context,
    runs: Annotated[list[Path], typer.Argument(help="Training runs: checkpoint folders (or files, or embedding files), one per run.")],
    fmt: Annotated[SelectFormat, typer.Option("--format", "-f", help="path: only the chosen checkpoint's path on stdout; json: the choice and why (rule, values, alarms, what was excluded).")] = SelectFormat.path,
    **options: Any,
) -> None:
    """Print the path of the checkpoint to keep: each run's last milestone not flagged collapse; among several runs,
    the one with the lowest H(Z3) (not validated yet; see docs/commands.md#choosing-the-checkpoint-to-keep-sslmon-select).
    Progress and notes go to stderr; exit 2 with one line when nothing can be chosen, and exit 2 after the path when
    some input failed (it is chosen among the rest)."""
    import json

    _apply_yaml(ctx, options["config"], [f for f in (folder_config(p) for p in runs if p.is_dir()) if f is not None])
    p = ctx.params
    opts = _options(p)
    with _progress(p["quiet"]) as on_progress:
        choice = api.select(runs, options=opts, log=_logger(p["quiet"]), on_progress=on_progress)
    for failure in choice.failures:
        _say(f"error: {failure}")
    if fmt == SelectFormat.json:
        typer.echo(json.dumps(choice.to_dict(), indent=2))
    else:
        if not p["quiet"]:
            _say(f"selected: {choice.name} ({choice.reason}); {choice.note or choice.evidence}")
        typer.echo(choice.path or choice.name)
    if choice.failures:  # chosen among what could be scored; as in score, a failed input exits 2
        raise typer.Exit(2)


@app.command(epilog=EXIT_SCORING.replace("; 130 interrupted (the finished results are written)",
                                         f"; {EXIT_ALARM} --exit-on saw its alarm; 130 interrupted (Ctrl-C)"))
@_with_options(IMAGES, CHECKPOINTS, EVALUATION, EXECUTION, INIT, FILES)
def watch(
    ctx: typer.Context,
    folder: Annotated[Path, typer.Argument(help="The training run's checkpoint folder (it may start empty).")],
    poll: Annotated[float, typer.Option("--poll", min=0.01, rich_help_panel="Watching", help="Seconds between two looks at the folder (polling: works on network filesystems).")] = 5.0,
    until_idle: Annotated[Optional[float], typer.Option("--until-idle", min=0, rich_help_panel="Watching", help="Exit 0 after this many seconds with no new or changed checkpoint (default: run until Ctrl-C).")] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", rich_help_panel="Output", help="Append one JSON line per checkpoint to this file as it is scored (fsync); a restart skips the checkpoints it holds.")] = None,
    fail_if: Annotated[Optional[list[str]], typer.Option("--fail-if", rich_help_panel="Gates", help='Exit 1 as soon as a condition such as "l2_std<0.005" holds for the newest checkpoint (repeatable).')] = None,
    tensorboard: TensorBoardDir = None,
    exit_on: Annotated[Optional[list[str]], typer.Option("--exit-on", rich_help_panel="Gates", help=f"Exit {EXIT_ALARM} as soon as a new checkpoint is flagged with this alarm: collapse or plateau (repeatable). Alarm lines are printed either way.")] = None,
    **options: Any,
) -> None:
    """Follow a checkpoint folder while training runs: score every checkpoint in it, then each new one once it is
    complete (size and mtime unchanged over two polls, and it loads), in epoch order.

    One line per checkpoint on stderr; the ranked table on stdout at the end (--until-idle, --fail-if, Ctrl-C: 130).
    """
    from sslmon.watch import Held, WatchError, read_held, watch as follow

    if not folder.is_dir():
        raise WatchError(f"{folder}: not a directory")
    _apply_yaml(ctx, options["config"], [f for f in [folder_config(folder)] if f is not None])
    p = ctx.params
    options = _options(p).resolve("checkpoints")
    conditions = _conditions(p["fail_if"])
    exit_on = p["exit_on"] or []
    for code in exit_on:
        if code not in ("collapse", "plateau"):
            raise typer.BadParameter(f"'{code}' is not an alarm: collapse or plateau", param_hint="--exit-on")
    out_path = p["output"]
    if out_path is not None and out_path.suffix != ".jsonl":
        raise typer.BadParameter(f"{out_path}: watch appends JSON Lines: name a .jsonl file", param_hint="--output")
    out = _results_file(out_path, OutputFormat.jsonl, _input_files([folder], p["config"], p["dataset"]), append=True)
    log = _logger(p["quiet"])
    if out is not None:
        out.lock()  # a second watch on the same file is refused: it would write every record twice
    held = read_held(out_path, log) if out_path is not None else Held()
    scorer = api.Scorer(api.load_images(options, log), options, run_config={"arch": options.arch, "limit": options.limit},
                        log=lambda msg: None if msg.startswith("error:") else log(msg))  # watch reports failures itself
    if out is not None and not (out_path.is_file() and out_path.stat().st_size):  # a new output starts with its header
        out.stream(jsonl_header(scorer.run_config))
    board = _tensorboard(p["tensorboard"])
    live = Live(console=err, transient=True, auto_refresh=False) if err.is_terminal and not p["quiet"] else None
    rank_by = options.rank_by or EPOCH
    log(f"watching {folder} every {p['poll']:g} s" + (f" (until idle for {p['until_idle']:g} s)" if p["until_idle"] is not None else ""))

    logged = {id(r) for r in held.results}  # results in TensorBoard (those held from an earlier watch were, then)

    def show(run: Run) -> None:
        """New results to TensorBoard; the live table on a terminal, redrawn after each result (plain lines go above
        it)."""
        for result in run.results if board is not None else ():
            if id(result) not in logged:
                board.add_result(result)
                logged.add(id(result))
        if live is not None and run.results:
            live.update(ranked_table(run, rank_by, err.width), refresh=True)

    with scorer, live or nullcontext(), board or nullcontext():
        outcome = follow(folder, scorer.score, lambda f: api.checkpoint_sources([f], arch=options.arch, trust=options.trust_checkpoints),
                         held, out, log, p["poll"], p["until_idle"], conditions, rank_by, options.exclude_init, on_change=show,
                         exit_on=exit_on)
    if out is not None:
        out.close()
    run = outcome.run
    run.config.update(rank_by=rank_by, exclude_init=options.exclude_init)
    console, fit = _table_console()
    render_table(run, rank_by, console, fit=fit)
    if outcome.interrupted:
        _say(f"interrupted: {len(run.results)} result(s) reported")
        raise typer.Exit(130)
    for message in outcome.tripped:
        _say(f"fail-if: {message}")
    if outcome.tripped:
        raise typer.Exit(1)
    if outcome.alarmed:
        _say(f"exit-on: {outcome.alarmed[0]}")
        raise typer.Exit(EXIT_ALARM)
    if out is not None and out.failed:
        raise typer.Exit(2)


class Method(str, Enum):
    simclr = "simclr"
    moco = "moco"
    simsiam = "simsiam"
    simsiam_no_sg = "simsiam-no-sg"
    simsiam_no_pred = "simsiam-no-pred"


TRAINING = "Training"


@app.command(epilog=EXIT_FILES.replace("a bad input file", "a bad dataset"))
def train(
    method: Annotated[Method, typer.Argument(help="SSL method: simclr, moco (MoCo-v2) or simsiam, as in the paper; simsiam-no-sg and simsiam-no-pred are ablations that collapse (known-bad runs for testing alarms).")],
    out: Annotated[Path, typer.Option("--out", rich_help_panel="Output", help="Folder for the milestones epoch_NNNN.pt (created).")],
    dataset: Annotated[Optional[str], typer.Option("--dataset", "-d", rich_help_panel="Images", help="Images to train on (their train split; all images when there is none; the evaluation split gives the held-out loss): default (embedded Fashion-MNIST), fashion-mnist[:DIR], cifar10:DIR, cifar100:DIR, imagefolder:DIR (or just DIR), npz:FILE.")] = None,
    trust_data: TrustData = False,
    train_limit: Annotated[Optional[int], typer.Option("--train-limit", min=1, rich_help_panel="Images", help="Train on a stratified subset of N images of the train split.")] = None,
    image_size: Annotated[Optional[int], typer.Option("--image-size", min=8, rich_help_panel="Images", help="imagefolder only: training images are resized and centre-cropped to this size (default: their native size, the median shorter side). The milestones record it; `sslmon score` resizes to it.")] = None,
    arch: Annotated[str, typer.Option("--arch", rich_help_panel=TRAINING, help="Backbone (see `sslmon archs`): convnet-small for CPU runs, resnet18-cifar as in the paper.")] = "convnet-small",
    epochs: Annotated[int, typer.Option("--epochs", min=1, rich_help_panel=TRAINING, help="Training epochs.")] = 10,
    every: Annotated[int, typer.Option("--every", min=1, rich_help_panel="Output", help="Write a milestone every N epochs (the untrained one and the last are always written).")] = 1,
    batch_size: Annotated[int, typer.Option("--batch-size", min=2, rich_help_panel=TRAINING, help="Images per SGD step (two augmented views of each); the last incomplete batch of an epoch is dropped.")] = 256,
    lr: Annotated[Optional[float], typer.Option("--lr", rich_help_panel=TRAINING, help="Peak one-cycle learning rate (default: the paper's for the method).")] = None,
    head_width: Annotated[int, typer.Option("--head-width", min=8, rich_help_panel=TRAINING, help="Projector/predictor width (paper: 2048).")] = 2048,
    weight_decay: Annotated[Optional[float], typer.Option("--weight-decay", min=0, rich_help_panel=TRAINING, help="SGD weight decay (default: the paper's for the method).")] = None,
    temperature: Annotated[Optional[float], typer.Option("--temperature", min=1e-6, rich_help_panel=TRAINING, help="InfoNCE temperature of simclr/moco (default: the paper's, 0.5 / 0.1).")] = None,
    crop_min: Annotated[float, typer.Option("--crop-min", min=0.01, max=1.0, rich_help_panel=TRAINING, help="Smallest area fraction of the random resized crop (SimCLR: 0.2; larger is weaker augmentation).")] = 0.2,
    jitter: Annotated[float, typer.Option("--jitter", min=0.0, max=1.0, rich_help_panel=TRAINING, help="Probability of colour jitter per view (SimCLR: 0.8; 0 turns it off).")] = 0.8,
    seed: Annotated[int, typer.Option("--seed", min=0, max=2**32 - 1, rich_help_panel=TRAINING, help="Seed of the initial weights, the batches, the augmentations and the --train-limit subset: the same seed gives the same milestones on CPU.")] = 0,
    device: Device = "auto",
    half: Annotated[bool, typer.Option("--half", rich_help_panel="Output", help="Store milestone weights in float16 (half the size).")] = False,
    tensorboard: Annotated[Optional[Path], typer.Option("--tensorboard", rich_help_panel="Output", help="Also write the losses of each epoch as TensorBoard scalars sslmon/train_loss (and sslmon/heldout_loss at milestones) into this folder (pip install 'sslmon[tensorboard]').")] = None,
    quiet: Quiet = False,
) -> None:
    """Train an encoder with SimCLR, MoCo-v2 or SimSiam and write milestones that `sslmon score` reads.

    Trains on the dataset's train split (all images when it has none), normalised by the dataset's statistics.
    """
    from sslmon.models.archs import check_arch
    from sslmon.io.datasets import DatasetError, load_dataset
    from sslmon.models.embed import resolve_device
    from sslmon.models.augment import AugmentConfig
    from sslmon.training.train import HELDOUT_IMAGES, train as run_training

    try:
        check_arch(arch)
        dev = resolve_device(device)
    except ValueError as exc:
        raise typer.BadParameter(str(exc))
    if out.exists() and not out.is_dir():
        raise typer.BadParameter(f"{out}: is a file, not a folder (name a folder for the milestones)", param_hint="--out")
    try:
        data = load_dataset(dataset, train_limit=train_limit, seed=seed, image_size=image_size, trust_data=trust_data)
    except DatasetError as exc:
        _fail(exc)
    images = data.train_images if data.train_images is not None else data.images
    heldout = data.images if data.train_images is not None else None  # the evaluation split: not trained on
    log = _logger(quiet)
    log(f"training {method.value} {arch} on {len(images)} images of {data.name} ({dev.type})"
        + (f"; held-out SSL loss on {min(len(heldout), HELDOUT_IMAGES)} evaluation images" if heldout is not None else ""))
    board = _tensorboard(tensorboard)
    try:
        with board or nullcontext():
            paths = run_training(method.value, images, arch, out, epochs, every, batch_size, seed, dev, mean=data.mean, std=data.std,
                                 lr=lr, weight_decay=weight_decay, head_width=head_width, temperature=temperature,
                                 augment_cfg=AugmentConfig(crop_scale=(crop_min, 1.0), jitter_p=jitter), half=half,
                                 heldout=heldout, log=log, on_epoch=board.add if board is not None else None)
    except ValueError as exc:
        raise typer.BadParameter(str(exc))
    log(f"wrote {len(paths)} milestones to {out}")


class CorrelateFormat(str, Enum):
    table = "table"
    json = "json"


ResultsFiles = Annotated[list[Path], typer.Argument(help="Results files written by `sslmon score -f json` (or -o FILE.json), or JSON Lines (`score -f jsonl`, `watch -o`, the Lightning callback); one per run or method.")]
Against = Annotated[str, typer.Option("--against", callback=_metric_key, help="Reference metric (a label-based accuracy) the others are correlated with.")]
RunNames = Annotated[Optional[list[str]], typer.Option("--name", help="Name of each run, one per results file in order (default: the file stems).")]


def _load_runs(paths: list[Path], names: Optional[list[str]]) -> list[NamedRun]:
    """The results files as named runs; a bad file is one error line naming it, and exit 2."""
    from sslmon.meta.correlate import NamedRun, run_names
    from sslmon.io.runfile import ResultsFileError, load_run

    try:
        labels = run_names(paths, names)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--name")
    try:
        return [NamedRun(name, str(path), load_run(path, log=_say)) for path, name in zip(paths, labels)]
    except ResultsFileError as exc:
        _fail(exc)


def _warn_sample_sizes(runs: list[NamedRun]) -> None:
    """The one warning line of :func:`sslmon.meta.correlate.sample_size_warning`, when there is one."""
    from sslmon.meta.correlate import sample_size_warning

    line = sample_size_warning(runs)
    if line is not None:
        _say(line)


@app.command(epilog=EXIT_FILES)
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
    from sslmon.meta.correlate import correlate_run, to_json
    from sslmon.meta.report_correlate import render_table

    members = list(_consensus_keys(consensus)) if consensus is not None else list(DEFAULT_CONSENSUS)
    loaded = _load_runs(paths, names)
    _warn_sample_sizes(loaded)
    lacking = [named for named in loaded if all(v is None for v in named.run.values(against))]
    for named in lacking:  # one line per file; the others are still correlated, then exit 2
        _say(f"error: {named.path}: no {against} values in its results (scored without labels?); "
             f"name a reference metric it holds with --against")
    if len(lacking) == len(loaded):
        raise typer.Exit(2)
    runs = [correlate_run(named, against, members) for named in loaded if all(named is not x for x in lacking)]
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
        typer.echo(to_json(runs, against), nl=False)
    elif fmt == CorrelateFormat.table:
        render_table(runs, against, _stdout_console())
    if lacking:
        raise typer.Exit(2)


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


@app.command(epilog=EXIT_FILES)
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
    from sslmon.meta.plots import PlotError, make_plots

    chosen_epochs = _epoch_list(epochs)
    if chosen_epochs is not None and z3 is None:
        raise typer.BadParameter("selects the Z3 scatters: give --z3 DIR too", param_hint="--epochs")
    runs = _load_runs(paths, names)
    _warn_sample_sizes(runs)
    try:
        written = make_plots(runs, out, against, z3, chosen_epochs, log=_logger(quiet))
    except PlotError as exc:
        _fail(exc)
    except OSError as exc:
        _fail(OutputError(f"{out}: cannot write the figures ({(exc.strerror or type(exc).__name__).lower()})"))
    typer.echo("\n".join(printable(str(path)) for path in written))


class FigureFormat(str, Enum):
    png = "png"
    svg = "svg"
    pdf = "pdf"


@app.command(epilog=EXIT_FILES)
def report(
    paths: ResultsFiles,
    output: Annotated[Path, typer.Option("--output", "-o", help="The HTML file to write (one self-contained page: inline CSS and figures, nothing fetched).")],
    z3: Annotated[Optional[Path], typer.Option("--z3", help="Folder of NAME.z3.npz files (from `sslmon score --save-z3`): adds the Z3 scatters.")] = None,
    against: Against = "lp_acc",
    names: RunNames = None,
    epochs: Annotated[Optional[str], typer.Option("--epochs", help="Comma-separated epochs of the Z3 scatters (default: first, middle and last in --z3).")] = None,
    figures: Annotated[Optional[Path], typer.Option("--figures", help="Also write each figure as a file into this folder (created).")] = None,
    figure_format: Annotated[FigureFormat, typer.Option("--figure-format", help="Format of the --figures files.")] = FigureFormat.png,
    quiet: Quiet = False,
) -> None:
    """Write one HTML report of results files: the table, the recommendation and alarms (when the records carry
    them), each metric over epochs with seed error bars, the probe with its standard-error band, the selection table
    when the runs have labels, and the Z3 scatters with --z3.
    """
    from sslmon.meta.plots import PlotError
    from sslmon.meta.report_html import build_report

    chosen_epochs = _epoch_list(epochs)
    if chosen_epochs is not None and z3 is None:
        raise typer.BadParameter("selects the Z3 scatters: give --z3 DIR too", param_hint="--epochs")
    try:
        check_target(output, paths)
    except OutputError as exc:
        _fail(exc)
    runs = _load_runs(paths, names)
    try:
        page = build_report(runs, against, z3, chosen_epochs, figures, figure_format.value, log=_logger(quiet))
        write_atomic(output, page)
    except (PlotError, OutputError) as exc:
        _fail(exc)
    except OSError as exc:
        _fail(OutputError(f"{figures}: cannot write the figures ({(exc.strerror or type(exc).__name__).lower()})"))
    _say(f"wrote {output}")


@app.command("metrics")
def list_metrics() -> None:
    """List the metric keys with their direction and definition."""
    table = Table("key", "better", "labels", "definition")
    for spec in METRICS.values():
        better = spec.direction.removesuffix(" is better")
        table.add_row(spec.name, better, "yes" if spec.needs_labels else "no", spec.summary)
    Console().print(table)


@app.command("archs")
def list_archs_cmd() -> None:
    """List the architecture names accepted by --arch and compare."""
    from sslmon.models.archs import list_archs

    typer.echo("\n".join(list_archs()))


# click's ClickException, whichever click typer uses (its own vendored copy or the click package)
_ClickException = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


def main() -> None:
    """The console script: a usage error (bad option value, missing argument) is one ``error:`` line and exit 2; so
    is a stdout that cannot be written (a full disk); a closed stdout pipe exits 141 (see :func:`_stdout_failed`)."""
    stdout = sys.stdout
    sys.stdout = _GuardedStdout(stdout)  # type: ignore[assignment]
    try:
        code = app(standalone_mode=False)
        sys.stdout.flush()  # here, not at exit: a full disk or a closed pipe is then one line and its exit code
    except _ClickException as exc:
        _say("error: " + " ".join(exc.format_message().split()))
        code = exc.exit_code
    except StdoutError as exc:
        code = _stdout_failed(exc.error)
    finally:
        sys.stdout = stdout
    sys.exit(code if isinstance(code, int) else 0)
