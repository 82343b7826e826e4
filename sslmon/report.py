"""Render a :class:`~sslmon.results.Run` as a Rich table, JSON, JSON Lines or CSV."""

from __future__ import annotations

import csv
from dataclasses import asdict
import io
import json
import re
from typing import Literal

from rich.console import Console
from rich.table import Table
from rich.text import Text

from sslmon.metrics import METRICS
from sslmon.results import Failure, Result, Run

Format = Literal["table", "json", "jsonl", "csv"]
ARROWS = {"higher": "↑", "lower": "↓", "target": "→1"}


# C0/C1 controls and DEL, Unicode line/paragraph separators, bidirectional overrides and isolates.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def printable(text: str) -> str:
    """``text`` with control characters (newline, escape, bidi overrides ...) written as Python escapes
    (``\\n``, ``\\x1b``, ``\\u202e``), so a file name can neither break a line nor drive the terminal."""
    return _UNPRINTABLE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def csv_cell(text: str) -> str:
    """A text cell that a spreadsheet cannot run as a formula: one starting with = + - @, tab or CR gets a leading '."""
    return "'" + text if text.startswith(_FORMULA_START) else text


def jsonl_line(item: Result | Failure, rank: int | None = None) -> str:
    """One JSON Lines record: a result (with its ``rank``, None while unranked) or a failure (``"failed": true``)."""
    if isinstance(item, Failure):
        return json.dumps({"failed": True, **asdict(item)}) + "\n"
    return json.dumps({"rank": rank, **item.to_dict()}, allow_nan=False) + "\n"


def _metric_columns(run: Run) -> list[str]:
    """Metric keys that at least one result has a value or a reason for, in registry order."""
    present = {m for r in run.results for m in r.metrics}
    return [m for m in METRICS if m in present and any(r.metrics.get(m) is not None for r in run.results)]


def to_json(run: Run, rank_by: str) -> str:
    """One JSON document (see README: JSON output), keys in a fixed order."""
    return json.dumps(run.to_dict(rank_by), indent=2, allow_nan=False) + "\n"


def to_jsonl(run: Run, rank_by: str) -> str:
    """One JSON object per result in rank order, then one per failure (``"failed": true``)."""
    lines = [jsonl_line(r, rank if r.metrics.get(rank_by) is not None else None)
             for rank, r in enumerate(run.ranked(rank_by), start=1)]
    return "".join(lines + [jsonl_line(f) for f in run.failures])


def to_csv(run: Run, rank_by: str) -> str:
    """One row per result in rank order: rank, name, path, epoch, n, d, k, metrics (means over the
    seeds), their std over the seeds (``<key>_std``, empty with one seed), errors.

    Text cells are escaped against formula injection (:func:`csv_cell`)."""
    doc = run.to_dict(rank_by)
    metric_keys = list(METRICS)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["rank", "name", "path", "epoch", "n_samples", "dim", "k", *metric_keys,
                     *(f"{m}_std" for m in metric_keys), "errors"])
    for r in doc["results"]:
        errors = "; ".join(f"{m}: {why}" for m, why in r["errors"].items())
        values = [_cell(r["metrics"].get(m)) for m in metric_keys]
        stds = [_cell(r["metrics_std"].get(m)) for m in metric_keys]
        writer.writerow([r["rank"] or "", csv_cell(r["name"]), csv_cell(r["path"] or ""),
                         r["epoch"] if r["epoch"] is not None else "", r["n_samples"], r["dim"], r["k"] or "", *values,
                         *stds, csv_cell(errors)])
    return buf.getvalue()


def _cell(value: float | None) -> str:
    return "" if value is None else repr(value)


def _fmt(value: float | None, std: float | None = None) -> str:
    """A table cell: the value to 4 significant digits, ``± std`` after it when the seeds spread it."""
    if value is None:
        return "—"
    text = f"{value:.4g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"
    return text if not std else f"{text}±{std:.2g}"


def render_table(run: Run, rank_by: str, console: Console) -> None:
    """Print the ranked table, then one line per undefined metric (failed inputs go to stderr)."""
    if not run.results:
        console.print("no results", style="dim")
        return
    columns = _metric_columns(run)
    if rank_by not in columns:
        columns = [rank_by, *columns]
    show_epoch = any(r.epoch is not None for r in run.results)
    seeds = run.config.get("seeds") or []
    spread = f"; mean±std over {len(seeds)} evaluation seeds" if len(seeds) > 1 else ""
    table = Table(title=f"sslmon: ranked by {rank_by} ({METRICS[rank_by].better} is better{spread})", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("name", no_wrap=True)
    if show_epoch:
        table.add_column("epoch", justify="right")
    for m in columns:
        head, _, tail = m.partition("_")
        header = f"{head}\n{tail} {ARROWS[METRICS[m].better]}"
        table.add_column(header, justify="right", style="bold" if m == rank_by else None, no_wrap=True)
    for rank, r in enumerate(run.ranked(rank_by), start=1):
        row: list[str | Text] = [str(rank) if r.metrics.get(rank_by) is not None else "—", Text(printable(r.name))]
        if show_epoch:
            row.append("" if r.epoch is None else str(r.epoch))
        row += [_fmt(r.metrics.get(m), r.metrics_std.get(m)) for m in columns]
        table.add_row(*row)
    console.print(table)
    notes = [printable(f"{r.name}: {m} undefined: {why}") for r in run.results for m, why in r.errors.items()]
    references = sorted({r.reference for r in run.results if r.reference})
    notes += [printable(f"knn_acc/lp_acc fitted on {ref}") for ref in references]
    for note in notes:
        console.print(note, style="dim", highlight=False, markup=False, soft_wrap=True)


def render(run: Run, rank_by: str, fmt: Format) -> str:
    """The run in a machine format (``json``, ``jsonl`` or ``csv``)."""
    return {"json": to_json, "jsonl": to_jsonl, "csv": to_csv}[fmt](run, rank_by)
