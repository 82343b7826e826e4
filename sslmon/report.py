"""Render a :class:`~sslmon.results.Run` as a Rich table, JSON, JSON Lines or CSV (JSON and JSON Lines: :mod:`sslmon.io.runfile`)."""

from __future__ import annotations

import csv
import io
import re
from typing import Literal

from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

from sslmon.alarms import run_flags, short
from sslmon.metrics import METRICS, UNCERTAINTIES
from sslmon.recommend import recommend
from sslmon.results import SCHEMA_VERSION, Result, Run
from sslmon.io.runfile import to_json, to_jsonl
from sslmon.selection import CONSENSUS, DEFAULT_CONSENSUS, EPOCH

Format = Literal["table", "json", "jsonl", "csv"]


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


def _metric_columns(run: Run) -> list[str]:
    """Metric keys that at least one result has a value for, in registry order (standard errors go
    into their metric's cell, not a column of their own)."""
    present = {m for r in run.results for m in r.metrics} - set(UNCERTAINTIES)
    return [m for m in METRICS if m in present and any(r.metrics.get(m) is not None for r in run.results)]


def to_csv(run: Run, rank_by: str) -> str:
    """One row per result in rank order: schema_version, rank, name, path, epoch, n_samples, dim, k, the metrics
    (means over the seeds, ``metrics.<key>``), their std over the seeds (``metrics_std.<key>``, empty with one seed),
    errors (``key: reason; ...``), recommended (1 or empty), alarms (the table's compact cell). A column named as a
    JSON path holds that field of the JSON record; empty is null.

    Text cells are escaped against formula injection (:func:`csv_cell`)."""
    doc = run.to_dict(rank_by)
    metric_keys = list(METRICS)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["schema_version", "rank", "name", "path", "epoch", "n_samples", "dim", "k",
                     *(f"metrics.{m}" for m in metric_keys), *(f"metrics_std.{m}" for m in metric_keys), "errors",
                     "recommended", "alarms"])
    for r in doc["results"]:
        errors = "; ".join(f"{m}: {why}" for m, why in r["errors"].items())
        values = [_csv_number(r["metrics"].get(m)) for m in metric_keys]
        stds = [_csv_number(r["metrics_std"].get(m)) for m in metric_keys]
        writer.writerow([SCHEMA_VERSION, r["rank"] or "", csv_cell(r["name"]), csv_cell(r["path"] or ""),
                         r["epoch"] if r["epoch"] is not None else "", r["n_samples"], r["dim"], r["k"] or "", *values,
                         *stds, csv_cell(errors), "1" if r["recommended"] else "", short(r["flags"])])
    return buf.getvalue()


def _csv_number(value: float | None) -> str:
    return "" if value is None else repr(value)


def _fmt(value: float | None, std: float | None = None) -> str:
    """A table cell: the value to 4 significant digits, ``± std`` after it when the seeds spread it."""
    if value is None:
        return "—"
    text = f"{value:.4g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"
    return text if not std else f"{text}±{std:.2g}"


def _table_cell(result: Result, key: str) -> str:
    """The value, with its standard error as ``0.812 ± 0.006`` where the result has one, else with its
    spread over the evaluation seeds as ``0.812±0.01``."""
    se_key = next((k for k, of in UNCERTAINTIES.items() if of == key), None)
    value, se = result.metrics.get(key), result.metrics.get(se_key) if se_key else None
    if value is None or se is None:
        return _fmt(value, result.metrics_std.get(key))
    return f"{value:.3f} ± {se:.3f}"


def _fit(columns: list[str], widths: dict[str, int], room: int) -> list[str]:
    """The metric ``columns`` (in order) that fit in ``room`` terminal cells, each taking ``widths[m]`` + 3 (padding
    and border), the first always kept."""
    kept: list[str] = []
    for m in columns:
        if kept and widths[m] + 3 > room:
            continue
        kept.append(m)
        room -= widths[m] + 3
    return kept


def ranked_table(run: Run, rank_by: str, width: int | None = None) -> Table:
    """The ranked table of a run with at least one result (also the live table of ``sslmon watch``): ``#`` is the
    rank (``1✓``: the recommended result), ``alarms`` the flags of :mod:`sslmon.alarms`, ``ref`` rows the reference
    values. With ``width`` (the terminal's), metric columns that do not fit are left out and named in the caption
    (the rank-by metric first kept), rather than every column squeezed to an ellipsis."""
    columns = _metric_columns(run)
    consensus = rank_by == CONSENSUS
    if rank_by not in columns and not consensus and rank_by != EPOCH:
        columns = [rank_by, *columns]
    elif rank_by in columns:
        columns = [rank_by, *(m for m in columns if m != rank_by)]
    show_epoch = any(r.epoch is not None for r in run.results)
    excluded = run.exclude_init and any(r.is_init for r in run.results)
    how = (f"mean rank over {', '.join(DEFAULT_CONSENSUS)}; lower is better" if consensus else
           "newest first; the metrics are diagnostics" if rank_by == EPOCH else METRICS[rank_by].direction)
    seeds = run.config.get("seeds") or []
    spread = f"; mean±std over {len(seeds)} evaluation seeds" if len(seeds) > 1 else ""
    title = f"sslmon: ranked by {rank_by} ({how}{spread})" + (", init milestone not ranked" if excluded else "")
    flags = run_flags(run.results)
    choice = recommend(run, rank_by, flags)
    alarms = {id(r): short(f) for r, f in zip(run.results, flags)}
    left_out: list[str] = []
    if width is not None:
        noise = [Result("", None, ref["metrics"], metrics_std=ref.get("metrics_std") or {})
                 for ref in run.reference_values.get("noise") or []]
        cell_width = {m: max(cell_len(line) for text in (*(_table_cell(r, m) for r in [*run.results, *noise]),
                                                          *_header(m).splitlines()) for line in [text])
                      for m in columns}
        fixed = (4 + 3 + max(cell_len(printable(r.name)) for r in run.results) + 3 + (11 if show_epoch else 0)
                 + (max(map(len, alarms.values())) + 3 if any(alarms.values()) else 0) + (14 if consensus else 0) + 1)
        kept = _fit(columns, cell_width, width - fixed)
        left_out, columns = [m for m in columns if m not in kept], kept
    caption = (f"{len(left_out)} metric column(s) left out at this width: {', '.join(left_out)} (-f json has all)"
               if left_out else None)
    table = Table(title=title, title_justify="left", caption=caption, caption_justify="left")
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("name", no_wrap=True)
    if show_epoch:
        table.add_column("epoch", justify="right", no_wrap=True)
    if any(alarms.values()):
        table.add_column("alarms", style="red", no_wrap=True)
    if consensus:
        table.add_column("consensus\nmean rank ↓", justify="right", style="bold", no_wrap=True)
    for m in columns:
        table.add_column(_header(m), justify="right", style="bold" if m == rank_by else None, no_wrap=True)
    for rank, (r, key) in enumerate(run.ranking(rank_by), start=1):
        mark = "✓" if r is choice.result else ""
        row: list[str | Text] = [f"{rank}{mark}" if key is not None else "—", Text(printable(r.name))]
        if show_epoch:
            row.append("" if r.epoch is None else f"{r.epoch} (init)" if r.is_init else str(r.epoch))
        if any(alarms.values()):
            row.append(alarms[id(r)])
        if consensus:
            row.append(_fmt(key))
        row += [_table_cell(r, m) for m in columns]
        table.add_row(*row)
    for ref in run.reference_values.get("noise") or []:  # what a structureless embedding of the same shape gets
        noise = Result(f"noise {ref['n']}×{ref['d']}", None, ref["metrics"], metrics_std=ref.get("metrics_std") or {})
        cells = ["ref", Text(noise.name), *([""] if show_epoch else []), *([""] if any(alarms.values()) else []),
                 *([""] if consensus else []), *(_table_cell(noise, m) if m in noise.metrics else "" for m in columns)]
        table.add_row(*cells, style="dim")
    return table


def _header(key: str) -> str:
    """A metric column's two-line header: ``ami`` / ``c1_c2 ↑``."""
    head, _, tail = key.partition("_")
    return f"{head}\n{tail} {METRICS[key].arrow}"


def render_table(run: Run, rank_by: str, console: Console) -> None:
    """Print the ranked table, then one line per undefined metric (failed inputs go to stderr); label-based
    metrics asked for without labels share one line for the whole run."""
    from sslmon.evaluation import NO_LABELS  # not at import time: the evaluation stack is heavy

    if not run.results:
        console.print("no results", style="dim")
        return
    console.print(ranked_table(run, rank_by, console.width if console.is_terminal else None))
    console.print(printable(recommend(run, rank_by).line()), highlight=False, markup=False, soft_wrap=True)
    notes = [printable(f"{r.name}: {m} undefined: {why}") for r in run.results for m, why in r.errors.items()
             if why != NO_LABELS]
    unlabelled = [m for m in METRICS if any(r.errors.get(m) == NO_LABELS for r in run.results)]
    if unlabelled:  # one line for the run, not one per input and metric
        notes.insert(0, f"{', '.join(unlabelled)} undefined: {NO_LABELS}")
    references = sorted({r.reference for r in run.results if r.reference})
    notes += [printable(f"knn_acc/lp_acc fitted on {ref}") for ref in references]
    if run.reference_values.get("noise"):
        notes.append("ref: i.i.d. Gaussian noise of the same n x d through the same evaluation (a structureless embedding)")
    if any(r.metrics.get("lp_acc_se") is not None for r in run.results):
        notes.append("lp_acc ± its binomial standard error sqrt(p(1-p)/n_test)")
    for note in notes:
        console.print(note, style="dim", highlight=False, markup=False, soft_wrap=True)


def render(run: Run, rank_by: str, fmt: Format, started: str | None = None) -> str:
    """The run in a machine format (``json``, ``jsonl`` or ``csv``); ``started``: the JSON Lines header's start time."""
    if fmt == "jsonl":
        return to_jsonl(run, rank_by, started)
    return {"json": to_json, "csv": to_csv}[fmt](run, rank_by)
