"""``sslmon report``: one self-contained HTML page of one or more results files.

The page holds, per run: the results table (rank, recommended, alarms, the label-free metrics, then the label-based
ones, each ``mean ± std`` over the evaluation seeds), the recommendation and alarms when the records carry them
(``recommendation``, ``flags``, ``recommended``), and the checkpoint-selection table of :mod:`sslmon.meta.correlate`
when a run has the reference accuracy; then one figure per metric over epochs (a line per run, error bars: the std
over the evaluation seeds, the probe ``lp_acc`` with its binomial standard-error band ``lp_acc_se``, the untrained
milestone marked) and, with a Z3 folder, the Z3 scatters of :mod:`sslmon.meta.plots`.

Nothing is fetched: the CSS is inline and the figures are PNG images in ``data:`` URIs (also written as files in
``svg``, ``pdf`` or ``png`` with ``figures_dir``). Every name from a file is HTML-escaped.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import datetime, timezone
import html
import io
import json
from pathlib import Path
import tempfile
import textwrap
from typing import TYPE_CHECKING, Any, Callable, Sequence

from sslmon import __version__
from sslmon.io.output import read_text
from sslmon.io.runfile import MAX_RESULTS_BYTES, ResultsFileError, is_header
from sslmon.meta.correlate import BASELINE, MIN_POINTS, OK, NamedRun, correlate_run, metric_keys, ordered_keys
from sslmon.meta.plots import (DPI, PlotError, _figure, _label, _name, _require_matplotlib, _subtitle, find_outliers, load_z3_dir,
                               plot_z3_panel, select_snapshots)
from sslmon.metrics import METRICS, UNCERTAINTIES
from sslmon.results import INIT_EPOCH, Result, finite
from sslmon.selection import CONSENSUS, Selection

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

FIGURE_FORMATS = ("png", "svg", "pdf")
PROBE, PROBE_SE = "lp_acc", "lp_acc_se"


@dataclass
class Annotations:
    """What the records of a results file carry beyond :class:`~sslmon.results.Result` (written by newer sslmon
    versions, read when present): the document's ``recommendation`` and per record its ``rank``, ``flags`` (alarms,
    each ``{"code", "message"}``) and ``recommended``, keyed by (name, path)."""

    recommendation: dict[str, Any] | None = None
    records: dict[tuple[str, str | None], dict[str, Any]] = field(default_factory=dict)

    def of(self, result: Result) -> dict[str, Any]:
        return self.records.get((result.name, result.path), {})


def read_annotations(path: Path) -> Annotations:
    """The :class:`Annotations` of a results file that :func:`~sslmon.io.runfile.load_run` has read."""
    text = read_text(path, MAX_RESULTS_BYTES, ResultsFileError, "an sslmon results file")
    try:
        doc = json.loads(text)
        records, recommendation = doc["results"], doc.get("recommendation")
    except (json.JSONDecodeError, KeyError, TypeError):  # JSON Lines (or a single record)
        records = [r for r in (json.loads(line) for line in text.splitlines() if line.strip()) if not is_header(r)]
        recommendation = None
    return Annotations(recommendation if isinstance(recommendation, dict) else None,
                       {(r.get("name"), r.get("path")): {k: r[k] for k in ("rank", "flags", "recommended") if k in r}
                        for r in records if isinstance(r, dict) and not r.get("failed")})


# --------------------------------------------------------------------------- figures


def figure_bytes(fig: Figure, fmt: str = "png") -> bytes:
    """The figure as ``fmt`` (png, svg or pdf) bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt, dpi=DPI, metadata={"Date": None} if fmt in ("svg", "pdf") else None)
    return buffer.getvalue()


def _points(result_list: Sequence[Result], key: str, std_key: str | None = None) -> list[tuple[int, float, float | None]]:
    """(epoch, mean, spread) of the results with an epoch and a value of ``key``, by epoch; spread: ``metrics_std``
    of ``key`` (or the metric ``std_key``, e.g. the probe's standard error), None where unknown."""
    out = []
    for r in result_list:
        value = finite(r.metrics.get(key))
        if r.epoch is None or value is None:
            continue
        spread = finite(r.metrics.get(std_key)) if std_key else finite(r.metrics_std.get(key))
        out.append((r.epoch, value, spread))
    return sorted(out)


def draw_curve(ax: Axes, runs: Sequence[NamedRun], key: str) -> None:
    """``key`` against epoch, a line per run (colour ``C<i>``) with error bars of the std over the evaluation seeds;
    for the probe also its standard-error band; the untrained (epoch-0) milestone as a hollow square."""
    from matplotlib.ticker import MaxNLocator

    for i, named in enumerate(runs):
        points = _points(named.run.results, key)
        if not points:
            continue
        epochs, values, stds = zip(*points)
        ax.errorbar(epochs, values, yerr=[s or 0.0 for s in stds], color=f"C{i}", marker="o", markersize=4, capsize=3,
                    elinewidth=1, label=named.name)
        if key == PROBE:
            band = [(e, v, se) for e, v, se in _points(named.run.results, key, PROBE_SE) if se is not None]
            if band:
                be, bv, bs = zip(*band)
                ax.fill_between(be, [v - s for v, s in zip(bv, bs)], [v + s for v, s in zip(bv, bs)], color=f"C{i}", alpha=0.18,
                                linewidth=0, label=f"{named.name}: ± standard error of the probe")
        init = [(e, v) for e, v, _ in points if e == INIT_EPOCH]
        if init:
            ax.scatter(*zip(*init), s=90, marker="s", facecolors="none", edgecolors="black", linewidths=1.2, zorder=5,
                       label="untrained (epoch 0)" if i == 0 else None)
    ax.set_xlabel("epoch")
    ax.set_ylabel(_label(key))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)


def curve_figure(runs: Sequence[NamedRun], key: str) -> Figure:
    """The figure of one metric over epochs (:func:`draw_curve`), titled by the metric registry."""
    fig = _figure(7.5, 4.2)
    ax = fig.add_subplot()
    draw_curve(ax, runs, key)
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(3, max(1, len(labels))), fontsize=8)
    ax.set_title(_subtitle(key) + ("\nerror bars: ± std over the evaluation seeds" if key != PROBE else
                                   "\nerror bars: ± std over the evaluation seeds; band: ± binomial standard error"),
                 fontsize=8, color="0.3")
    fig.suptitle(f"{_name(key)} during training", fontsize=11)
    return fig


def curve_keys(runs: Sequence[NamedRun]) -> list[str]:
    """The metrics that get a figure: those with a value at a known epoch (standard errors are drawn as their
    metric's band, not on their own)."""
    keys = ordered_keys(k for named in runs for k in metric_keys(named.run) if k not in UNCERTAINTIES)
    return [k for k in keys if any(_points(named.run.results, k) for named in runs)]


# --------------------------------------------------------------------------- HTML

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0;color:#1d2430;background:#f6f7f9}
main{max-width:1180px;margin:0 auto;padding:24px 28px 48px}
h1{font-size:1.6em;margin:0 0 4px}h2{font-size:1.25em;margin:32px 0 10px;border-bottom:1px solid #d8dce3;padding-bottom:4px}
h3{font-size:1.05em;margin:20px 0 8px}
.meta{color:#5b6472;font-size:.9em;margin:0 0 4px}
.card{background:#fff;border:1px solid #dde1e7;border-radius:8px;padding:14px 16px;margin:12px 0;overflow-x:auto}
table{border-collapse:collapse;font-size:.82em;white-space:nowrap}
th,td{padding:4px 8px;border-bottom:1px solid #eceef2;text-align:right}
th{background:#f0f2f5;position:sticky;top:0;font-weight:600}
td.l,th.l{text-align:left}
th.group{text-align:center;background:#e4e8ee}
tr.rec td{background:#eaf6ec}
tr.init td{color:#6b7280}
.ok{color:#1a7f37}.bad{color:#b42318}.dim{color:#8a93a1}
.flag{display:inline-block;background:#fde8e7;color:#b42318;border-radius:4px;padding:0 5px;margin-right:3px;font-size:.9em}
.recommend{background:#eaf6ec;border-color:#a6d9b1}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(540px,1fr));gap:12px}
figure{margin:0;background:#fff;border:1px solid #dde1e7;border-radius:8px;padding:8px}
figure img{width:100%;height:auto;display:block}
figcaption{font-size:.8em;color:#5b6472;padding:4px 2px 0}
.note{font-size:.85em;color:#5b6472}
"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _number(value: float | None, spread: float | None = None) -> str:
    """``0.8123 ± 0.006`` (4 significant digits, the spread to 2), ``—`` when undefined."""
    if value is None:
        return '<span class="dim">—</span>'
    text = f"{value:.4g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"
    return text if not spread else f"{text} ± {spread:.2g}"


def _flags(flags: Any) -> str:
    if not isinstance(flags, list) or not flags:
        return ""
    return "".join(f'<span class="flag" title="{_e(f.get("message", ""))}">{_e(f.get("code", "?"))}'
                   f'{":" + _e(f["metric"]) if f.get("metric") else ""}</span>' for f in flags if isinstance(f, dict))


def results_table(named: NamedRun, notes: Annotations) -> str:
    """The results of one run in the file's order: rank, name, epoch, alarms, then the label-free and the
    label-based metrics (``mean ± std``; the probe ``± its standard error``)."""
    keys = [k for k in metric_keys(named.run) if k not in UNCERTAINTIES]
    free = [k for k in keys if k in METRICS and not METRICS[k].needs_labels] + [k for k in keys if k not in METRICS]
    labelled = [k for k in keys if k in METRICS and METRICS[k].needs_labels]
    has_flags = any("flags" in notes.of(r) for r in named.run.results)
    fixed = ["#", "name", "epoch"] + (["alarms"] if has_flags else [])
    head = [f'<th class="l" colspan="{len(fixed)}"></th>']
    head += [f'<th class="group" colspan="{len(group)}">{title}</th>' for group, title in
             ((free, "label-free"), (labelled, "label-based (need labels)")) if group]
    cols = "".join(f'<th class="l">{c}</th>' for c in fixed) + "".join(
        f'<th title="{_e(METRICS[k].summary if k in METRICS else k)}">{_e(k)} {_e(METRICS[k].arrow if k in METRICS else "")}</th>'
        for k in free + labelled)
    rows = []
    for r in named.run.results:
        note = notes.of(r)
        rank = note.get("rank")
        recommended = note.get("recommended") is True
        css = "rec" if recommended else "init" if r.is_init else ""
        cells = [f'{_e(rank) if rank is not None else "—"}{" ✓" if recommended else ""}', _e(r.name),
                 "—" if r.epoch is None else _e(r.epoch)] + ([_flags(note.get("flags"))] if has_flags else [])
        values = []
        for k in free + labelled:
            spread = finite(r.metrics.get(PROBE_SE)) if k == PROBE and r.metrics.get(PROBE_SE) is not None else finite(r.metrics_std.get(k))
            values.append(f'<td title="{_e(r.errors[k]) if k in r.errors else ""}">{_number(finite(r.metrics.get(k)), spread)}</td>')
        rows.append(f'<tr class="{css}">' + "".join(f'<td class="l">{c}</td>' for c in cells) + "".join(values) + "</tr>")
    return f'<table><thead><tr>{"".join(head)}</tr><tr>{cols}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def recommendation_block(notes: Annotations) -> str:
    """The recommendation the file carries (``recommended: NAME (epoch E): REASON; EVIDENCE``), or nothing."""
    rec = notes.recommendation
    if not rec:
        return ""
    if rec.get("name") is None:
        text = f'no recommendation: {_e(rec.get("reason", ""))}'
    else:
        epoch = f' (epoch {_e(rec["epoch"])})' if rec.get("epoch") is not None else ""
        text = f'<b>recommended: {_e(rec["name"])}</b>{epoch}, {_e(rec.get("reason", ""))}'
        if rec.get("evidence"):
            text += f'<br><span class="note">evidence: {_e(rec["evidence"])}</span>'
    excluded = [f'{_e(x.get("name"))}: {_e(x.get("why"))}' for x in rec.get("excluded") or [] if isinstance(x, dict)]
    if excluded:
        text += '<br><span class="note">passed over: ' + "; ".join(excluded) + "</span>"
    return f'<div class="card recommend">{text}</div>'


def _selection_cell(s: Selection, baseline: Selection) -> str:
    if s.status != OK:
        return f'<td class="dim">{_e(s.status)}</td>'
    epoch = "?" if s.pick_epoch is None else s.pick_epoch
    tau = "—" if s.kendall_tau is None else f"{s.kendall_tau:+.2f}"
    css = ""
    if baseline.status == OK and s is not baseline:
        css = "ok" if s.regret < baseline.regret else "bad" if s.regret > baseline.regret else "dim"
    return f'<td class="{css}">epoch {_e(epoch)} · regret {s.regret:.2f} pt · #{s.pick_rank} · τ {tau}</td>'


def selection_table(named: NamedRun, against: str) -> str:
    """What each metric, the consensus and the last milestone pick in the run, judged by ``against``
    (:func:`sslmon.meta.correlate.correlate_run`); empty when fewer than 3 milestones have ``against``."""
    table = correlate_run(named, against)
    if table.n_points < MIN_POINTS:
        return ""
    rows = [k for k in table.selection if k not in (CONSENSUS, BASELINE)] + [CONSENSUS, BASELINE]
    body = []
    for row in rows:
        label = (f"consensus ({', '.join(table.consensus_metrics)})" if row == CONSENSUS else "last milestone" if row == BASELINE
                 else f"{row} {METRICS[row].arrow if row in METRICS else ''}")
        cells = "".join(_selection_cell(table.selection[row][v], table.selection[BASELINE][v]) for v in ("with_init", "without_init"))
        body.append(f'<tr><td class="l">{_e(label)}</td>{cells}</tr>')
    return (f'<h3>Checkpoint selection judged by {_e(against)}</h3><div class="card"><table><thead><tr><th class="l">picked by</th>'
            f'<th>with the untrained milestone</th><th>without it</th></tr></thead><tbody>{"".join(body)}</tbody></table>'
            f'<p class="note">regret = best {_e(against)} − the pick&#39;s, ×100 (points); #R: the pick&#39;s rank by {_e(against)}; '
            f'τ: Kendall tau of the metric&#39;s order with {_e(against)}&#39;s. Green/red: lower/higher regret than always '
            f'taking the last milestone.</p></div>')


def _img(data: bytes, alt: str) -> str:
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{base64.b64encode(data).decode("ascii")}">'


def build_report(
    runs: Sequence[NamedRun],
    against: str = "lp_acc",
    z3_dir: Path | None = None,
    epochs: Sequence[int] | None = None,
    figures_dir: Path | None = None,
    figure_format: str = "png",
    log: Callable[[str], None] | None = None,
) -> str:
    """The HTML page of ``runs`` (see the module docstring); with ``figures_dir`` every figure is also written
    there as ``metric_<key>.<figure_format>`` (and ``z3_panel.<figure_format>``). PlotError when matplotlib is
    missing or the Z3 folder cannot be used."""
    _require_matplotlib()
    if figure_format not in FIGURE_FORMATS:
        raise PlotError(f"figure format {figure_format!r}: choose {', '.join(FIGURE_FORMATS)}")
    snapshots = select_snapshots(load_z3_dir(z3_dir), epochs) if z3_dir is not None else []
    if figures_dir is not None:
        figures_dir.mkdir(parents=True, exist_ok=True)
    notes = [read_annotations(Path(named.path)) for named in runs]
    parts = [f"<h1>sslmon report</h1><p class='meta'>{len(runs)} run(s): "
             + ", ".join(f"<b>{_e(n.name)}</b> ({_e(n.path)})" for n in runs)
             + f"</p><p class='meta'>written {datetime.now(timezone.utc).isoformat(timespec='seconds')} by sslmon {_e(__version__)}</p>"]
    for named, note in zip(runs, notes):
        config = named.run.config
        settings = ", ".join(f"{k} = {_e(json.dumps(config[k]))}" for k in ("rank_by", "seeds", "k", "preset", "umap_epochs", "limit")
                             if k in config)
        parts.append(f"<h2>{_e(named.name)}</h2><p class='meta'>{len(named.run.results)} result(s)"
                     + (f", {len(named.run.failures)} failure(s)" if named.run.failures else "")
                     + (f"; {settings}" if settings else "") + "</p>")
        parts.append(recommendation_block(note))
        alarms = [(r.name, f) for r in named.run.results for f in note.of(r).get("flags") or [] if isinstance(f, dict)]
        if alarms:
            parts.append('<div class="card"><b>alarms</b><ul>' + "".join(
                f'<li><span class="flag">{_e(f.get("code"))}</span> {_e(name)}: {_e(f.get("message", ""))}</li>' for name, f in alarms)
                + "</ul></div>")
        parts.append(f'<div class="card">{results_table(named, note)}<p class="note">values: mean ± std over the evaluation '
                     f'seeds; {PROBE}: ± its binomial standard error; ✓: recommended; grey rows: the untrained milestone; '
                     f'hover a cell for why a value is undefined.</p></div>')
        if named.run.failures:
            parts.append('<div class="card"><b>failures</b><ul>' + "".join(f"<li>{_e(f.error)}</li>" for f in named.run.failures)
                         + "</ul></div>")
        parts.append(selection_table(named, against))
    keys = curve_keys(runs)
    figures = []
    for key in keys:
        fig = curve_figure(runs, key)
        if figures_dir is not None:
            (figures_dir / f"metric_{key}.{figure_format}").write_bytes(figure_bytes(fig, figure_format))
        figures.append(f'<figure id="fig-{_e(key)}">{_img(figure_bytes(fig), _name(key))}'
                       f'<figcaption>{_e(_name(key))}: {_e(METRICS[key].summary if key in METRICS else key)}</figcaption></figure>')
    if not keys and log:
        log("no metric has a value at a known epoch: no curves in the report")
    parts.append("<h2>Metrics over epochs</h2>" + (f'<div class="grid">{"".join(figures)}</div>' if figures else
                                                  "<p class='note'>no result has an epoch: nothing to draw over epochs.</p>"))
    if snapshots:
        with tempfile.TemporaryDirectory() as tmp:
            panel = plot_z3_panel(snapshots, Path(tmp), file_name="z3_panel.png").read_bytes()
            if figures_dir is not None:
                plot_z3_panel(snapshots, figures_dir, file_name=f"z3_panel.{figure_format}")
        outliers = sum(int(find_outliers(s.z3).sum()) for s in snapshots)
        parts.append(f'<h2>Z3 (UMAP 3-d of the embeddings)</h2><figure id="fig-z3">{_img(panel, "Z3 scatters")}<figcaption>'
                     f'{len(snapshots)} snapshot(s) from {_e(z3_dir)}; {outliers} outlier point(s) marked ×.</figcaption></figure>')
    title = "sslmon report: " + ", ".join(n.name for n in runs)
    return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><meta name='viewport' content='width=device-width'>"
            f"<title>{_e(textwrap.shorten(title, 120))}</title><style>{CSS}</style></head><body><main>"
            + "\n".join(p for p in parts if p) + "</main></body></html>\n")
