"""Render a :class:`~sslmon.results.Run` as a Rich table, JSON, JSON Lines or CSV (JSON and JSON Lines: :mod:`sslmon.io.runfile`)."""

from __future__ import annotations

import csv
import io
import re
from typing import Literal, Sequence

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from sslmon.alarms import run_flags, short
from sslmon.metrics import METRICS, UNCERTAINTIES
from sslmon.recommend import document, recommend_each
from sslmon.results import SCHEMA_VERSION, Result, Run
from sslmon.io.runfile import to_json, to_jsonl
from sslmon.selection import CONSENSUS, DEFAULT_CONSENSUS, EPOCH, INPUT

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
    """One row per result in rank order: schema_version, rank, name, path, run, epoch, n_samples, dim, k, the metrics
    (means over the seeds, ``metrics.<key>``), their std over the seeds (``metrics_std.<key>``, empty with one seed),
    errors (``key: reason; ...``), recommended (1 or empty), alarms (the table's compact cell). A column named as a
    JSON path holds that field of the JSON record; empty is null.

    Text cells are escaped against formula injection (:func:`csv_cell`)."""
    doc = document(run, rank_by)
    metric_keys = list(METRICS)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["schema_version", "rank", "name", "path", "run", "epoch", "n_samples", "dim", "k",
                     *(f"metrics.{m}" for m in metric_keys), *(f"metrics_std.{m}" for m in metric_keys), "errors",
                     "recommended", "alarms"])
    for r in doc["results"]:
        errors = "; ".join(f"{m}: {why}" for m, why in r["errors"].items())
        values = [_csv_number(r["metrics"].get(m)) for m in metric_keys]
        stds = [_csv_number(r["metrics_std"].get(m)) for m in metric_keys]
        writer.writerow([SCHEMA_VERSION, r["rank"] or "", csv_cell(r["name"]), csv_cell(r["path"] or ""),
                         csv_cell(r["run"] or ""),
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


# Which metric columns a narrow table keeps first (after the rank-by metric): the paper's headline H(Z3), RankMe and
# clustering agreement, the probe accuracies when labels exist, the rest of the paper's metrics, then registry order.
TABLE_PRIORITY = ("entropy_z3", "rankme", "ami_c1_c2", "lp_acc", "knn_acc", "silhouette_c1", "alpha_req", "l2_std",
                  "ami_c1_gt", "silhouette_gt")


def metric_order(keys: Sequence[str]) -> list[str]:
    """``keys`` in the table's order: the label-free metrics first, then the label-based ones (registry order within each)."""
    return sorted(keys, key=lambda m: (METRICS[m].needs_labels, list(METRICS).index(m)))


def ranked_table(run: Run, rank_by: str, width: int | None = None, columns: Sequence[str] | None = None) -> Table:
    """The ranked table of a run with at least one result (also the live table of ``sslmon watch``): ``#`` is the
    rank within the result's training run (``1✓``: the run's recommended result), ``run`` the run (a column only when
    the table holds several, each its own section), ``alarms`` the flags of :mod:`sslmon.alarms`, ``ref`` rows the
    reference values. Metric columns: ``columns`` when given, else every metric with a value; label-free ones first,
    then the label-based ones, each group headed by its name. With ``width`` (terminal cells) metric columns that
    would make the table wider are left out and named in the caption (the rank-by metric kept first, then
    :data:`TABLE_PRIORITY`, then registry order), rather than squeezed to an ellipsis."""
    candidates = list(columns) if columns is not None else _metric_columns(run)
    if columns is None and rank_by in METRICS and rank_by not in candidates:
        candidates.append(rank_by)
    first = [rank_by, *TABLE_PRIORITY]
    priority = sorted(candidates, key=lambda m: first.index(m) if m in first else len(first))
    if width is None:
        return _build_table(run, rank_by, metric_order(candidates), [])
    kept: list[str] = []
    console = Console(width=100_000)  # measures the table's natural width (a narrower console caps the measurement)
    for m in priority:
        trial = _build_table(run, rank_by, metric_order([*kept, m]), [])
        if not kept or Measurement.get(console, console.options, trial).maximum <= width:
            kept.append(m)
    left_out = [m for m in candidates if m not in kept]
    return _build_table(run, rank_by, metric_order(kept), left_out)


def _build_table(run: Run, rank_by: str, columns: list[str], left_out: list[str]) -> Table:
    """The table of :func:`ranked_table` with exactly the metric ``columns`` (in order); ``left_out``: named in the caption."""
    consensus = rank_by == CONSENSUS
    show_epoch = any(r.epoch is not None for r in run.results)
    excluded = run.exclude_init and any(r.is_init for r in run.results)
    how = (f"mean rank over {', '.join(DEFAULT_CONSENSUS)}; lower is better" if consensus else
           "newest first; the metrics are diagnostics" if rank_by == EPOCH else
           "input order; the metrics are diagnostics" if rank_by == INPUT else METRICS[rank_by].direction)
    seeds = run.config.get("seeds") or []
    spread = f"; mean±std over {len(seeds)} evaluation seeds" if len(seeds) > 1 else ""
    parts = run.parts()
    several = len(parts) > 1
    title = (f"sslmon: {'not ranked' if rank_by == INPUT else f'ranked by {rank_by}'} ({how}{spread})" + (", init milestone not ranked" if excluded else "")
             + (f"; {len(parts)} runs, each ranked on its own" if several else ""))
    flags = run_flags(run.results)
    chosen = {id(c.result) for c in recommend_each(run, rank_by, flags)}
    alarms = {id(r): short(f) for r, f in zip(run.results, flags)}
    caption = (f"{len(left_out)} metric column(s) left out at this width: {', '.join(left_out)} (-f json has all; "
               "--wide or --columns KEYS shows them)" if left_out else None)
    table = Table(title=title, title_justify="left", caption=caption, caption_justify="left")
    table.add_column("#", justify="right", no_wrap=True)
    if several:
        table.add_column("run", no_wrap=True)
    table.add_column("name", no_wrap=True)
    if show_epoch:
        table.add_column("epoch", justify="right", no_wrap=True)
    if any(alarms.values()):
        table.add_column("alarms", style="red", no_wrap=True)
    if consensus:
        table.add_column("consensus\nmean rank ↓", justify="right", style="bold", no_wrap=True)
    groups = {m: METRICS[m].needs_labels for m in columns}
    for i, m in enumerate(columns):
        first = i == 0 or groups[columns[i - 1]] != groups[m]
        group = ("label-based" if groups[m] else "label-free") if first and len(set(groups.values())) > 1 else ""
        table.add_column(f"{group}\n{_header(m)}" if len(set(groups.values())) > 1 else _header(m), justify="right",
                         style="bold" if m == rank_by else None, no_wrap=True)
    rows = run.ranks(rank_by)
    keys = {id(r): key for part in parts for r, key in zip(part.results, part.rank_keys(rank_by))} if consensus else {}
    for i, (r, rank) in enumerate(rows):
        mark = "✓" if id(r) in chosen else ""
        row: list[str | Text] = [f"{rank}{mark}" if rank is not None else "—"]
        if several:
            row.append(Text(printable(r.run or "")))
        row.append(Text(printable(r.name)))
        if show_epoch:
            row.append("" if r.epoch is None else f"{r.epoch} (init)" if r.is_init else str(r.epoch))
        if any(alarms.values()):
            row.append(alarms[id(r)])
        if consensus:
            row.append(_fmt(keys.get(id(r))))
        row += [_table_cell(r, m) for m in columns]
        table.add_row(*row, end_section=several and i + 1 < len(rows) and rows[i + 1][0].run != r.run)
    for ref in run.reference_values.get("noise") or []:  # what a structureless embedding of the same shape gets
        noise = Result(f"noise {ref['n']}×{ref['d']}", None, ref["metrics"], metrics_std=ref.get("metrics_std") or {})
        cells = ["ref", *([""] if several else []), Text(noise.name), *([""] if show_epoch else []),
                 *([""] if any(alarms.values()) else []), *([""] if consensus else []),
                 *(_table_cell(noise, m) if m in noise.metrics else "" for m in columns)]
        table.add_row(*cells, style="dim")
    return table


def _header(key: str) -> str:
    """A metric column's two-line header: ``ami`` / ``c1_c2 ↑``."""
    head, _, tail = key.partition("_")
    return f"{head}\n{tail} {METRICS[key].arrow}"


def render_table(run: Run, rank_by: str, console: Console, *, fit: bool | None = None,
                 columns: Sequence[str] | None = None) -> None:
    """Print the ranked table (:func:`ranked_table`: metric ``columns`` when given), then the recommendation (one
    line per training run), then one line per undefined metric (failed inputs go to stderr); label-based metrics
    asked for without labels share one line for the whole run. ``fit`` (None: when the console is a terminal): keep
    every line within the console's width (columns left out, lines wrapped), else no limit."""
    from sslmon.evaluation import NO_LABELS  # not at import time: the evaluation stack is heavy

    if not run.results:
        console.print("no results", style="dim")
        return
    fit = console.is_terminal if fit is None else fit
    console.print(ranked_table(run, rank_by, console.width if fit else None, columns))
    choices = recommend_each(run, rank_by)
    for choice in choices:
        console.print(printable(choice.line(named=len(choices) > 1)), highlight=False, markup=False, soft_wrap=not fit)
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
        console.print(note, style="dim", highlight=False, markup=False, soft_wrap=not fit)


def render(run: Run, rank_by: str, fmt: Format, started: str | None = None) -> str:
    """The run in a machine format (``json``, ``jsonl`` or ``csv``); ``started``: the JSON Lines header's start time."""
    if fmt == "jsonl":
        return to_jsonl(run, rank_by, started)
    return {"json": to_json, "csv": to_csv}[fmt](run, rank_by)
