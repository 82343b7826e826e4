"""What the ``sslmon`` commands print and write: error and progress lines on stderr, the results on stdout and in
the -o file, and the exit code a finished run gives (see :mod:`sslmon.cli` for the codes)."""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
import errno
import io
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional, Sequence

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from sslmon.api import OnProgress
from sslmon.cli_options import EXIT_ALARM, OPTION_FIELDS, Judge, OutputFormat, Printing, flag
from sslmon.conditions import Gate, judge as judge_results, nothing_to_judge, parse_condition
from sslmon.io.output import ResultsFile, check_target, write_atomic
from sslmon.io.runfile import jsonl_header, jsonl_line, now
from sslmon.report import printable, render, render_table

__all__ = ["printable"]  # the one escaping of control characters, for the commands' own lines
from sslmon.results import Failure, OnResult, Result, Run

if TYPE_CHECKING:
    from sslmon.io.tensorboard import TensorBoardLog

_SETTING = re.compile(r"`([a-z_][a-z0-9_]*)(?:=([^`]*))?`")  # a setting as the library's messages spell it: `cache=False`


def spelled(message: str) -> str:
    """The library's spelling of a setting in backquotes, `name=value` or `name`, as the command line spells it:
    `cache=False` -> --no-cache, `weights="none"` -> --weights none, `save_z3` -> --save-z3."""

    def spell(match: re.Match[str]) -> str:
        name, value = match.group(1), match.group(2)
        if name not in OPTION_FIELDS:
            return match.group(0)
        if value is None or value in ("True", "False"):
            return str(flag(name))
        return f"{flag(name)} {value.strip(chr(34) + chr(39))}"

    return _SETTING.sub(spell, message)


def error_line(message: str, param: str | None) -> str:
    """``error: MESSAGE [FLAG]``: the library's one-line message with the command-line flag of its parameter (no
    ``[FLAG]`` when the message already names the flag)."""
    hint = flag(param)
    message = spelled(message)
    return f"error: {message}" + (f" [{hint}]" if hint and hint not in message else "")

STDOUT_CLOSED = 141  # a closed stdout (a reader such as `head` gone): 128 + SIGPIPE, as a shell reports `yes | head`


class StdoutError(Exception):
    """stdout cannot be written (``error``: the OSError); raised by :class:`GuardedStdout`."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


class GuardedStdout:
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


def stdout_failed(exc: OSError) -> int:
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
    say(f"error: stdout: cannot write the results ({(exc.strerror or type(exc).__name__).lower()})")
    return 2

err = Console(stderr=True)


def say(msg: str) -> None:
    """One line to stderr, as written: no markup, no highlighting, never wrapped, control characters escaped."""
    err.print(printable(msg), highlight=False, soft_wrap=True, markup=False)


def logger(quiet: bool, errors: bool = True) -> Callable[[str], None]:
    """Progress lines to stderr unless quiet; warning lines always; error lines unless ``errors`` is False (when
    the caller prints each failure itself, with its flag)."""

    def log(msg: str) -> None:
        msg = spelled(msg)
        if msg.startswith("error:"):
            if errors:
                say(msg)
        elif not quiet or msg.startswith("warning:"):
            say(msg)

    return log


@contextmanager
def progress(quiet: bool) -> Iterator[OnProgress | None]:
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


def stdout_console() -> Console:
    """stdout console: the terminal's width, or unlimited when piped (tables are never squeezed into 80 columns)."""
    out = Console()
    return out if out.is_terminal else Console(width=1000)


def table_console(wide: bool = False) -> tuple[Console, bool]:
    """stdout console for the ranked table and whether the table must fit its width: the terminal's width, or
    ``COLUMNS`` when stdout is piped (Rich reads it); piped without ``COLUMNS``, or ``--wide``: no width limit."""
    out = Console()
    if wide or not (out.is_terminal or os.environ.get("COLUMNS", "").isdigit()):
        return Console(width=1000, force_terminal=out.is_terminal or None), False
    return out, True


def results_file(output: Optional[Path], fmt: OutputFormat, inputs: list[Path], append: bool = False) -> ResultsFile | None:
    """The -o file (format from --format, else from the suffix), checked before any scoring: exit 2 when refused.
    ``append``: stream after what the file holds (see :class:`ResultsFile`)."""
    if output is None:
        return None
    check_target(output, inputs)
    suffix = output.suffix.lstrip(".")
    file_fmt = fmt.value if fmt != OutputFormat.table else (suffix if suffix in {"json", "jsonl", "csv"} else "json")
    return ResultsFile(output, file_fmt, say, append)


def input_files(paths: list[Path], config: Optional[Path], dataset: Optional[str]) -> list[Path]:
    """Every file the run reads (the files of folder inputs included), so that -o cannot overwrite one."""
    files = [p for p in (config, Path(dataset.split(":", 1)[1]).expanduser() if dataset and ":" in dataset else None) if p]
    for path in paths:
        files += entries(path) if path.is_dir() else [path]
    return files


def entries(folder: Path) -> list[Path]:
    """The entries of a folder input, sorted; none when it cannot be listed (scoring then reports why)."""
    try:
        return sorted(folder.iterdir())
    except OSError:
        return []


def scoring(score_fn: Callable[[OnResult], Run], out: ResultsFile | None, started: str,
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
            say(error_line(item.error, item.param))
        if out is not None:
            out.stream(jsonl_line(item))
        if board is not None and isinstance(item, Result):
            board.add_result(item)

    try:
        return score_fn(on_result), False
    except KeyboardInterrupt:
        return (latest[0] if latest else None), True


def finish(run: Run | None, fmt: OutputFormat, out: ResultsFile | None, conditions: list[Gate], which: Judge,
            interrupted: bool = False, started: str | None = None, columns: Sequence[str] | None = None,
            wide: bool = False) -> None:
    """Write the -o file and/or stdout, then exit 130 if interrupted, 2 if some input failed or -o could not be
    written (the results then go to stdout), 1 if a --fail-if condition held, else 0. The ranking is the run's
    (``config.rank_by``; with ``exclude_init`` the epoch-0 milestone is reported but neither ranked nor judged).
    ``columns``/``wide``: the table's metric columns and width (``--columns``, ``--wide``)."""
    if run is None:
        say("interrupted before any result finished")
        raise typer.Exit(130)
    rank_by = run.config["rank_by"]
    written = out is not None and out.finish(render(run, rank_by, out.fmt, started))
    if written:
        say(f"wrote {out.path} ({out.fmt})")
    if fmt == OutputFormat.table:
        console, fit = table_console(wide)
        render_table(run, rank_by, console, fit=fit, columns=columns)
    else:  # -o writes the results "also": stdout gets them in the --format asked for
        typer.echo(render(run, rank_by, fmt.value, started), nl=False)
    if interrupted:
        say(f"interrupted: the {len(run.results)} finished result(s) were reported")
        raise typer.Exit(130)
    empty_gate = nothing_to_judge(run.gated(), conditions, which.value, rank_by)
    if empty_gate:
        say(f"error: {empty_gate}")
        raise typer.Exit(2)
    tripped = judge_results(run.gated(), conditions, which.value, rank_by) if conditions else []
    for message in tripped:
        say(f"fail-if: {message}")
    if run.failures or (out is not None and out.failed):
        raise typer.Exit(2)
    if tripped:
        raise typer.Exit(1)


def gates(fail_if: Sequence[str]) -> list[Gate]:
    """The --fail-if conditions, parsed (a bad one is a usage error)."""
    try:
        return [parse_condition(c) for c in fail_if or []]
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--fail-if")


def report_run(score_fn: Callable[[OnResult, OnProgress | None], Run], printing: Printing, out: ResultsFile | None) -> None:
    """Score with progress bars, streaming each record to the -o file, then report and exit (see :func:`finish`)."""
    conditions = gates(printing.fail_if)
    started = now()
    from sslmon.io.tensorboard import open_log

    board = open_log(printing.tensorboard)  # before any work: a missing package or bad folder is exit 2 at once
    with progress(printing.quiet) as on_progress, board or nullcontext():
        run, interrupted = scoring(lambda on_result: score_fn(on_result, on_progress), out, started, board)
    finish(run, printing.fmt, out, conditions, printing.judge, interrupted, started, printing.columns, printing.wide)


@contextmanager
def live_table(quiet: bool) -> Iterator[Callable[[Run, str], None]]:
    """``on_change(run, rank_by)`` redrawing the ranked table on stderr after each result (plain lines go above it),
    only when stderr is a terminal and not --quiet."""
    if quiet or not err.is_terminal:
        yield lambda run, rank_by: None
        return
    from rich.live import Live

    from sslmon.report import ranked_table

    with Live(console=err, transient=True, auto_refresh=False) as live:

        def show(run: Run, rank_by: str) -> None:
            if run.results:
                live.update(ranked_table(run, rank_by, err.width), refresh=True)

        yield show


def finish_watch(outcome: Any, write_failed: bool) -> None:
    """The ranked table of a finished watch on stdout, then its exit: 130 interrupted, 1 a --fail-if held,
    3 an --exit-on alarm, 2 the -o file could not be written, else 0."""
    run = outcome.run
    console, fit = table_console()
    render_table(run, run.config["rank_by"], console, fit=fit)
    if outcome.interrupted:
        say(f"interrupted: {len(run.results)} result(s) reported")
        raise typer.Exit(130)
    for message in outcome.tripped:
        say(f"fail-if: {message}")
    if outcome.tripped:
        raise typer.Exit(1)
    if outcome.alarmed:
        say(f"exit-on: {outcome.alarmed[0]}")
        raise typer.Exit(EXIT_ALARM)
    if write_failed:
        raise typer.Exit(2)


def write_document(output: Path, inputs: Sequence[Path], document: str | Callable[[Console], None]) -> None:
    """Write ``document`` (text, or a table drawn on a plain 1000-column console) to ``output`` atomically; it
    must not be one of ``inputs``."""
    if not isinstance(document, str):
        buffer = io.StringIO()
        document(Console(file=buffer, width=1000, no_color=True))
        document = buffer.getvalue()
    check_target(output, list(inputs))
    write_atomic(output, document)
    say(f"wrote {output}")
