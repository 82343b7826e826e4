"""The ``sslmon`` command line: it parses the flags into one :class:`~sslmon.api.Options` (and a
:class:`~sslmon.cli_options.Printing` record), makes one :mod:`sslmon.api` call, and prints what it returns.

Option files (``--config FILE``, a checkpoint folder's own ``sslmon.yaml``) feed Click's ``default_map``
(:func:`sslmon.io.config.option_defaults` checks them). Errors become one ``error: ...`` line in one place
(:meth:`_Commands.main`). Exit codes: 0 success; 1 a ``--fail-if`` condition held; 2 some input failed
(the others are still reported and written), the ``-o`` file could not be written
(the results go to stdout), stdout could not be written, a usage error, a ``--fail-if`` that judges nothing, or
nothing to ``select``; 3 ``watch --exit-on FLAG`` saw that flag (:data:`EXIT_ALARM`); 130 interrupted (Ctrl-C)
after the finished results were written; 141 stdout closed by its reader (as for SIGPIPE).
"""

from __future__ import annotations

import json
from pathlib import Path
import sys
from typing import Annotated, Any, Optional, Sequence

import typer
from typer.core import TyperCommand, TyperGroup
from rich.console import Console
from rich.table import Table

from sslmon import api
from sslmon.cli_options import (CHECKPOINTS, DEFAULT_CONSENSUS, DEFAULTS, EVALUATION, EXECUTION, EXIT_ALARM, EXIT_FILES, EXIT_SCORING, FILES, FLAGS, GATES,
                                IMAGES, INIT, REPORT, Against, CorrelateFormat, Device, Epochs, FigureFormat, Judge, JudgeOpt,
                                Method, Quiet, ResultsFiles, RunNames, SelectFormat, TensorBoardDir, TrustData,
                                consensus_keys, exit_on_flags, flag, jsonl_output, panel, split, version_callback,
                                with_options)
from sslmon.cli_output import (GuardedStdout, StdoutError, error_line, finish_watch, gates, input_files, live_table,
                               logger, printable, progress, report_run, results_file, say, stdout_console, stdout_failed,
                               write_document)
from sslmon.errors import SslmonError
from sslmon.io.config import folder_config, option_defaults

__all__ = ["EXIT_ALARM", "FLAGS", "app", "main"]
TRAINING = "Training"


class _Commands(TyperGroup):
    """The commands, with the one error boundary of the command line (:func:`_exit_code`)."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:  # type: ignore[override]
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
            sys.stdout.flush()  # here, not at exit: a full disk or a closed pipe is then one line and its exit code
        except Exception as exc:  # noqa: BLE001 - the boundary: _exit_code re-raises what it does not know
            code = _exit_code(exc)
        code = code if isinstance(code, int) else 0
        if standalone_mode:
            sys.exit(code)
        return code


# click's ClickException and Abort, whichever click typer uses (its own vendored copy or the click package)
_ClickException = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
_Abort = typer.Abort


def _exit_code(exc: Exception) -> int:
    """The one place an error becomes command-line output: one ``error: ...`` line on stderr and the exit code.
    A usage error (bad flag value, missing argument, a setting the library refuses before any work) exits 2 as
    ``error: Invalid value for '--flag': ...``; a library error (SslmonError: a bad file, option or output) 2 as
    ``error: <message> [<flag>]``; another OSError 2 naming its file; a stdout that cannot be written 2, or 141
    when its reader closed it (:func:`~sslmon.cli_output.stdout_failed`)."""
    if isinstance(exc, StdoutError):
        return stdout_failed(exc.error)
    if isinstance(exc, api.UsageError):
        exc = typer.BadParameter(str(exc), param_hint=flag(exc.param))
    if isinstance(exc, _ClickException):
        say("error: " + " ".join(exc.format_message().split()))
        return exc.exit_code
    if isinstance(exc, _Abort):
        say("Aborted!")
        return 1
    if isinstance(exc, SslmonError):
        say(error_line(str(exc), exc.param))
        return 2
    if isinstance(exc, OSError):
        reason = exc.strerror.lower() if exc.strerror else " ".join(str(exc).split()) or type(exc).__name__
        say(f"error: {exc.filename}: {reason}" if exc.filename else f"error: {reason}")
        return 2
    raise exc


FOLDER_ARGUMENTS = ("paths", "runs", "folder")  # the checkpoint folders whose own sslmon.yaml is read


class _Command(TyperCommand):
    """A command whose option files (``--config FILE``, then each checkpoint folder's own sslmon.yaml, untrusted)
    give the defaults of the options not on the command line, as Click's ``default_map``."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        params = {p.name: p for p in self.params}
        if "config" in params:
            found, _, order = self.make_parser(ctx).parse_args(args=list(args))
            config = found.get("config")
            files = [(Path(config), False)] if config else []
            for name in FOLDER_ARGUMENTS:
                values = found.get(name) or ()
                for value in [values] if isinstance(values, str) else values:
                    own = folder_config(Path(value)) if Path(value).is_dir() else None
                    files += [(own, True)] if own is not None else []
            ctx.default_map = {**(ctx.default_map or {}),
                               **option_defaults(params, ctx, files, {p.name for p in order}, say)}
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=_Commands,
    name="sslmon",
    help="Label-free monitoring of self-supervised encoders: rank checkpoints by the quality of their embedding space.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def main_options(
    version: Annotated[Optional[bool], typer.Option("--version", callback=version_callback, is_eager=True, help="Print the version and exit.")] = None,
) -> None:
    """sslmon ranks encoders by label-free metrics (Xu, Lowe & Trappenberg 2024)."""


@app.command(cls=_Command, epilog=EXIT_SCORING)
@with_options(IMAGES, CHECKPOINTS, EVALUATION, REPORT, EXECUTION, GATES,
              panel("Gates", [("judge", JudgeOpt, Judge.latest)]), INIT, FILES)
def score(
    paths: Annotated[list[Path], typer.Argument(readable=False, help="Checkpoint folders or files (.pt .pth .ckpt .bin .safetensors, TorchScript), or embedding files (.npz, .npy).")],
    **flags: Any,
) -> None:
    """Score checkpoints (or embedding files) and print them ranked by label-free metrics (default: their consensus)."""
    options, printing = split(flags)
    out = results_file(printing.output, printing.fmt, input_files(paths, printing.config, options.dataset))
    log = logger(printing.quiet, errors=False)
    report_run(lambda on_result, on_progress: api.score(paths, options=options, log=log, on_result=on_result,
                                                        on_progress=on_progress), printing, out)


@app.command(cls=_Command, epilog=EXIT_SCORING)
@with_options(IMAGES, EVALUATION, REPORT, EXECUTION, GATES, panel("Gates", [("judge", JudgeOpt, Judge.best)]), FILES)
def compare(
    names: Annotated[list[str], typer.Argument(help="torchvision model names, e.g. resnet18 densenet121 efficientnet_b0 (see `sslmon archs`).")],
    weights: Annotated[str, typer.Option("--weights", help="default: torchvision's default pretrained weights (from the TORCH_HOME cache, downloaded when missing); none: seeded random init.")] = DEFAULTS.weights,
    offline: Annotated[bool, typer.Option("--offline", help="Never download weights (also SSLMON_OFFLINE=1): missing ones are an error naming the file, folder and URL.")] = False,
    **flags: Any,
) -> None:
    """Score torchvision models on the same images; images are resized to each model's weights resolution.
    The models are listed in the order given, unranked (no label-free ranking beat a random pick across
    architectures in sslmon's study, docs/evidence/README.md); --rank-by KEY ranks them, e.g. entropy_z3."""
    options, printing = split({**flags, "weights": weights, "offline": offline})
    out = results_file(printing.output, printing.fmt, input_files([], printing.config, options.dataset))
    log = logger(printing.quiet, errors=False)
    download_bar = False if printing.quiet else None  # None: a download progress bar when stderr is a terminal
    report_run(lambda on_result, on_progress: api.compare(names, options=options, log=log, on_result=on_result,
                                                          on_progress=on_progress, download_progress=download_bar),
               printing, out)


@app.command(cls=_Command, epilog=EXIT_SCORING.replace("1 a --fail-if condition held; ", "").replace("a --fail-if that judges nothing", "nothing to choose"))
@with_options(IMAGES, CHECKPOINTS, EVALUATION, EXECUTION, INIT, FILES)
def select(
    runs: Annotated[list[Path], typer.Argument(help="Training runs: checkpoint folders (or files, or embedding files), one per run.")],
    fmt: Annotated[SelectFormat, typer.Option("--format", "-f", help="path: only the chosen checkpoint's path on stdout; json: the choice and why (rule, values, alarms, what was excluded).")] = SelectFormat.path,
    **flags: Any,
) -> None:
    """Print the path of the checkpoint to keep: each run's last milestone not flagged collapse. Among several runs
    nothing is chosen unless --rank-by names a metric: no label-free ranking beat a random pick across runs in
    sslmon's study (docs/evidence/README.md); -f json then lists each run's candidate. See
    docs/commands.md#choosing-the-checkpoint-to-keep-sslmon-select.
    Progress and notes go to stderr; exit 2 with one line when nothing can be chosen, and exit 2 after the path when
    some input failed (it is chosen among the rest)."""
    options, printing = split(flags)
    with progress(printing.quiet) as on_progress:
        try:
            choice = api.select(runs, options=options, log=logger(printing.quiet), on_progress=on_progress)
        except api.NoChoice as none:  # several candidates, no metric asked: list them, say why, exit 2
            for failure in none.choice.failures:
                say(f"error: {failure}")
            if fmt == SelectFormat.json:
                typer.echo(json.dumps(none.choice.to_dict(), indent=2))
            say(str(none))
            raise typer.Exit(2)
    for failure in choice.failures:
        say(f"error: {failure}")
    if fmt == SelectFormat.json:
        typer.echo(json.dumps(choice.to_dict(), indent=2))
    else:
        if not printing.quiet:
            say(f"selected: {choice.name} ({choice.reason}); {choice.note or choice.evidence}")
        typer.echo(choice.path or choice.name)
    if choice.failures:  # chosen among what could be scored; as in score, a failed input exits 2
        raise typer.Exit(2)


@app.command(cls=_Command, epilog=EXIT_SCORING.replace("; 130 interrupted (the finished results are written)",
                                                      f"; {EXIT_ALARM} --exit-on saw its alarm; 130 interrupted (Ctrl-C)"))
@with_options(IMAGES, CHECKPOINTS, EVALUATION, EXECUTION, INIT, FILES)
def watch(
    ctx: typer.Context,
    folder: Annotated[Path, typer.Argument(help="The training run's checkpoint folder (it may start empty).")],
    poll: Annotated[float, typer.Option("--poll", min=0.01, rich_help_panel="Watching", help="Seconds between two looks at the folder (polling: works on network filesystems).")] = 5.0,
    until_idle: Annotated[Optional[float], typer.Option("--until-idle", min=0, rich_help_panel="Watching", help="Exit 0 after this many seconds with no new or changed checkpoint (default: run until Ctrl-C).")] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", callback=jsonl_output, rich_help_panel="Output", help="Append one JSON line per checkpoint to this file as it is scored (fsync); a restart skips the checkpoints it holds.")] = None,
    fail_if: Annotated[Optional[list[str]], typer.Option("--fail-if", rich_help_panel="Gates", help='Exit 1 as soon as a condition such as "l2_std<0.005" holds for the newest checkpoint (repeatable).')] = None,
    tensorboard: TensorBoardDir = None,
    exit_on: Annotated[Optional[list[str]], typer.Option("--exit-on", callback=exit_on_flags, rich_help_panel="Gates", help=f"Exit {EXIT_ALARM} as soon as a new checkpoint is flagged with this alarm: collapse or plateau (repeatable). Alarm lines are printed either way.")] = None,
    **flags: Any,
) -> None:
    """Follow a checkpoint folder while training runs: score every checkpoint in it, then each new one once it is
    complete (size and mtime unchanged over two polls, and it loads), in epoch order.

    One line per checkpoint on stderr; the ranked table on stdout at the end (--until-idle, --fail-if, Ctrl-C: 130).
    """
    options, printing = split({**flags, "output": output, "fail_if": fail_if, "tensorboard": tensorboard})
    conditions = gates(printing.fail_if)
    with live_table(printing.quiet) as show:
        outcome, write_failed = api.watch(folder, options, output=output, poll=poll, until_idle=until_idle,
                                          protect=input_files([folder], printing.config, options.dataset),
                                          fail_if=conditions, exit_on=exit_on or [], tensorboard=tensorboard,
                                          log=logger(printing.quiet), on_change=show)
    finish_watch(outcome, write_failed)


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
    api.train(method.value, out, dataset=dataset, trust_data=trust_data, train_limit=train_limit, image_size=image_size,
              arch=arch, epochs=epochs, every=every, batch_size=batch_size, lr=lr, head_width=head_width,
              weight_decay=weight_decay, temperature=temperature, crop_min=crop_min, jitter=jitter, seed=seed,
              device=device, half=half, tensorboard=tensorboard, log=logger(quiet))


@app.command(epilog=EXIT_FILES)
def correlate(
    paths: ResultsFiles,
    against: Against = "lp_acc",
    names: RunNames = None,
    fmt: Annotated[CorrelateFormat, typer.Option("--format", "-f", help="Output format on stdout.")] = CorrelateFormat.table,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Also write the correlations to this file (JSON; the table as text when the name ends in .txt).")] = None,
    consensus: Annotated[Optional[str], typer.Option("--consensus", callback=lambda v: None if v is None else consensus_keys(v), help=f"Comma-separated metrics whose mean rank forms the consensus row (default: {','.join(DEFAULT_CONSENSUS)}; docs/selection.md).")] = None,
) -> None:
    """Correlate each metric with a reference accuracy across the checkpoints of each run (the paper's Table I),
    and show which milestone each metric would pick and its regret.

    Pearson r with its 95 % interval and two-sided p (Spearman rho in JSON), with and without the epoch-0
    (untrained) milestone; then the selection table (pick, regret, rank, Kendall tau; consensus; last milestone).
    """
    found = api.correlate(paths, against, names=names, consensus=consensus, log=say)
    for named in found.lacking:  # one line per file; the others are still correlated, then exit 2
        say(f"error: {named.path}: no {against} values in its results (scored without labels?); "
            f"name a reference metric it holds with --against")
    if len(found.lacking) == len(paths):
        raise typer.Exit(2)
    if output is not None:
        write_document(output, paths, found.table if fmt == CorrelateFormat.table and output.suffix == ".txt" else found.json())
    if fmt == CorrelateFormat.json:
        typer.echo(found.json(), nl=False)
    else:
        found.table(stdout_console())
    if found.lacking:
        raise typer.Exit(2)


@app.command(epilog=EXIT_FILES)
def plot(
    paths: ResultsFiles,
    out: Annotated[Path, typer.Option("--out", help="Folder for the PNG files (created).")],
    z3: Annotated[Optional[Path], typer.Option("--z3", help="Folder of NAME.z3.npz files (from `sslmon score --save-z3`) for 3-d scatters of Z3.")] = None,
    against: Against = "lp_acc",
    names: RunNames = None,
    epochs: Epochs = None,
    quiet: Quiet = False,
) -> None:
    """Plot each metric against epoch, each label-free metric against the reference, and Z3 (PNG files).

    Prints the paths of the files written, one per line.
    """
    written = api.plot(paths, out, z3=z3, against=against, names=names, epochs=epochs, log=logger(quiet))
    typer.echo("\n".join(printable(str(path)) for path in written))


@app.command(epilog=EXIT_FILES)
def report(
    paths: ResultsFiles,
    output: Annotated[Path, typer.Option("--output", "-o", help="The HTML file to write (one self-contained page: inline CSS and figures, nothing fetched).")],
    z3: Annotated[Optional[Path], typer.Option("--z3", help="Folder of NAME.z3.npz files (from `sslmon score --save-z3`): adds the Z3 scatters.")] = None,
    against: Against = "lp_acc",
    names: RunNames = None,
    epochs: Epochs = None,
    figures: Annotated[Optional[Path], typer.Option("--figures", help="Also write each figure as a file into this folder (created).")] = None,
    figure_format: Annotated[FigureFormat, typer.Option("--figure-format", help="Format of the --figures files.")] = FigureFormat.png,
    quiet: Quiet = False,
) -> None:
    """Write one HTML report of results files: the table, the recommendation and alarms (when the records carry
    them), each metric over epochs with seed error bars, the probe with its standard-error band, the selection table
    when the runs have labels, and the Z3 scatters with --z3.
    """
    api.report(paths, output, z3=z3, against=against, names=names, epochs=epochs, figures=figures,
               figure_format=figure_format.value, log=logger(quiet))
    say(f"wrote {output}")


@app.command("metrics")
def list_metrics() -> None:
    """List the metric keys with their direction and definition."""
    table = Table("key", "better", "labels", "definition")
    for spec in api.metric_specs():
        better = spec.direction.removesuffix(" is better")
        table.add_row(spec.name, better, "yes" if spec.needs_labels else "no", spec.summary)
    Console().print(table)


@app.command("archs")
def list_archs_cmd() -> None:
    """List the architecture names accepted by --arch and compare."""
    typer.echo("\n".join(api.archs()))


def main(args: Sequence[str] | None = None) -> None:
    """The console script: every error is one ``error:`` line and its exit code (:func:`_exit_code`); stdout is
    guarded so that a full disk or a closed pipe is told apart from any other OSError."""
    stdout = sys.stdout
    sys.stdout = GuardedStdout(stdout)  # type: ignore[assignment]
    try:
        code = app(args, standalone_mode=False)
    finally:
        sys.stdout = stdout
    sys.exit(code if isinstance(code, int) else 0)
