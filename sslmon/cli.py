"""The ``sslmon`` command line: a thin layer over :mod:`sslmon.api`.

Exit codes: 0 success; 1 a ``--fail-if`` condition held; 2 some input failed
(the others are still reported) or a usage error.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from sslmon import __version__
from sslmon.api import score_embedding_files
from sslmon.evaluate import EvalConfig
from sslmon.metrics import METRICS
from sslmon.report import render, render_table
from sslmon.results import Run

app = typer.Typer(
    name="sslmon",
    help="Label-free monitoring of self-supervised encoders: rank embeddings by the quality of their space.",
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


def _version(value: bool) -> None:
    if value:
        typer.echo(f"sslmon {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Optional[bool] = typer.Option(None, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """sslmon ranks encoders by label-free metrics (Xu, Lowe & Trappenberg 2024)."""


def _metric_list(value: Optional[str]) -> Optional[list[str]]:
    if value is None:
        return None
    names = [m.strip() for m in value.split(",") if m.strip()]
    unknown = [m for m in names if m not in METRICS]
    if unknown:
        raise typer.BadParameter(f"unknown metric(s) {', '.join(unknown)}; valid: {', '.join(METRICS)}")
    return names


def _rank_by(value: str) -> str:
    if value not in METRICS:
        raise typer.BadParameter(f"'{value}' is not a metric; valid: {', '.join(METRICS)}")
    return value


def _logger(quiet: bool):
    """Progress lines to stderr unless quiet; error lines (``error: ...``) always, never wrapped."""

    def log(msg: str) -> None:
        if not quiet or msg.startswith("error:"):
            err.print(msg, highlight=False, soft_wrap=True)

    return log


def _emit(run: Run, rank_by: str, fmt: OutputFormat, output: Optional[Path]) -> None:
    """Write the run to ``output`` (format from --format, else from the suffix) and/or stdout."""
    if output is not None:
        suffix = output.suffix.lstrip(".")
        file_fmt = fmt.value if fmt != OutputFormat.table else (suffix if suffix in {"json", "jsonl", "csv"} else "json")
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(render(run, rank_by, file_fmt))
        err.print(f"wrote {output} ({file_fmt})", highlight=False)
        if fmt != OutputFormat.table:
            return
    if fmt == OutputFormat.table:
        render_table(run, rank_by, Console())
    else:
        typer.echo(render(run, rank_by, fmt.value), nl=False)


@app.command()
def score(
    paths: list[Path] = typer.Argument(..., help="Embedding files: .npz (embeddings, optional labels, train_embeddings, train_labels) or .npy."),
    k: Optional[int] = typer.Option(None, "--k", min=2, help="k1, the number of k-means clusters (k2 = 2*k1). Default: the number of label classes; required without labels."),
    seed: int = typer.Option(0, help="Seed for UMAP, k-means and the reference split; the same seed gives the same JSON."),
    rank_by: str = typer.Option("rankme", "--rank-by", callback=_rank_by, help="Metric to rank by (see `sslmon metrics`)."),
    metrics: Optional[str] = typer.Option(None, "--metrics", help="Comma-separated metric keys to compute (default: all the inputs allow)."),
    bin_factor: float = typer.Option(0.4, "--bin-factor", min=0.01, help="Entropy bin width in standard deviations of Z3 (paper: 0.4 SSL, 0.8 supervised)."),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", "-f", help="Output format on stdout."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Also write the results to this file (.json, .jsonl or .csv; format from --format when given)."),
    device: str = typer.Option("cpu", help="Torch device for the silhouette and kNN kernels (cpu, cuda, mps)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress messages on stderr."),
) -> None:
    """Score embedding files and print them ranked by a label-free metric."""
    wanted = _metric_list(metrics)
    if wanted is not None and rank_by not in wanted:
        wanted.append(rank_by)
    config = EvalConfig(k=k, seed=seed, bin_factor=bin_factor, device=device)
    run = score_embedding_files(paths, config, wanted, log=_logger(quiet))
    run.config["rank_by"] = rank_by
    _emit(run, rank_by, fmt, output)
    if run.failures:
        raise typer.Exit(2)


@app.command("metrics")
def list_metrics() -> None:
    """List the metric keys with their direction and definition."""
    table = Table("key", "better", "labels", "definition")
    for spec in METRICS.values():
        better = spec.better if spec.target is None else f"closest to {spec.target:g}"
        table.add_row(spec.name, better, "yes" if spec.needs_labels else "no", spec.summary)
    Console().print(table)


def main() -> None:
    app()
