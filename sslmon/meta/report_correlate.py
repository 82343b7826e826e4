"""Render the correlations and selection figures of ``sslmon correlate`` (:mod:`sslmon.meta.correlate`) as Rich tables:
Table I (Pearson r with its interval and p per metric and run, with and without the init milestone) and the
checkpoint-selection table (pick, regret, rank, Kendall tau per metric, consensus and last milestone)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from sslmon.meta.correlate import (ALPHA, BASELINE, CONFIDENCE, MIN_POINTS, OK, VARIANTS, Correlation, RunCorrelations, format_p,
                              mean_regret, ordered_keys)
from sslmon.metrics import METRICS
from sslmon.results import INIT_EPOCH
from sslmon.selection import CONSENSUS, Selection


def _cell(c: Correlation | None, column_n: int) -> Text:
    """``r p`` (and n where it differs from the column's): green/red significant positive/negative, dim otherwise."""
    if c is None:
        return Text("—", style="dim")
    if c.status != OK:
        return Text(c.status, style="dim italic")
    text = (f"{c.pearson_r:+.2f} [{c.pearson_ci_low:+.2f},{c.pearson_ci_high:+.2f}] {format_p(c.pearson_p)}"
            + (f" n={c.n}" if c.n != column_n else ""))
    if not c.significant:
        return Text(text, style="dim")
    return Text(text, style="green" if c.pearson_r > 0 else "red")


def render_table(runs: list[RunCorrelations], against: str, console: Console) -> None:
    """Print Table I: rows = metrics, per run a w/ init and a w/o init column of Pearson r and p."""
    rows = ordered_keys(k for run in runs for k in run.correlations)
    table = Table(title=f"Pearson correlation with {against} across checkpoints", title_justify="left",
                  caption=f"green/red: significant positive/negative (p < {ALPHA}); dim: not significant. "
                          f"\\[lo,hi]: {CONFIDENCE:.0%} interval of r (Fisher z). "
                          f"w/o init drops the epoch-{INIT_EPOCH} milestone. Spearman rho: --format json.",
                  caption_justify="left")
    table.add_column("metric", no_wrap=True)
    table.add_column("label-\nfree", justify="center")
    columns = []
    for run in runs:
        for variant, label in (("with_init", "w/ init"), ("without_init", "w/o init")):
            n = max((c[variant].n for c in run.correlations.values()), default=0)
            table.add_column(Text(f"{run.name}\n{label} (n={n})"), justify="right", no_wrap=True)
            columns.append((run, variant, n))
    for key in rows:
        spec = METRICS.get(key)
        label_free = "" if spec is None else ("no" if spec.needs_labels else "yes")
        cells = [_cell(run.correlations[key][variant] if key in run.correlations else None, n) for run, variant, n in columns]
        table.add_row(Text(f"{key} {spec.arrow}" if spec else key), label_free, *cells)
    console.print(table)
    render_selection(runs, against, console)
    for run in runs:
        if run.n_points < MIN_POINTS:
            console.print(f"{run.name}: only {run.n_points} checkpoint(s) with {against} (scored without labels?)",
                          style="dim", highlight=False, markup=False, soft_wrap=True)


def _selection_cell(s: Selection, baseline: Selection) -> Text:
    """``ep 4 1.20pt #3 τ+0.42`` (+ ties, + seed pick-change probability): green/red beats/loses to the baseline."""
    if s.status != OK:
        return Text(s.status, style="dim italic")
    epoch = "?" if s.pick_epoch is None else s.pick_epoch
    tau = "τ —" if s.kendall_tau is None else f"τ{s.kendall_tau:+.2f}"
    text = f"ep {epoch} {s.regret:.2f}pt #{s.pick_rank} {tau}"
    if s.ties > 1:
        text += f" tie×{s.ties}"
    if s.n_undefined:
        text += f" ({s.n_undefined} undef.)"
    if s.seeds is not None:
        text += f" p≠{s.seeds.p_change:.2f}"
    if baseline.status != OK or s is baseline:
        return Text(text)
    if s.regret < baseline.regret:
        return Text(text, style="green")
    return Text(text, style="red" if s.regret > baseline.regret else "dim")


def render_selection(runs: list[RunCorrelations], against: str, console: Console) -> None:
    """Print the selection table: per row (metric, consensus, last milestone) and run, what it picks and the regret."""
    rows = ordered_keys(k for run in runs for k in run.selection if k not in (CONSENSUS, BASELINE)) + [CONSENSUS, BASELINE]
    members = next((run.consensus_metrics for run in runs if run.consensus_metrics), [])
    table = Table(title=f"Checkpoint selection judged by {against}", title_justify="left",
                  caption=f"ep E: the milestone picked; regret = best {against} - the pick's, x100 (points); #R: the pick's "
                          f"rank by {against}; τ: Kendall tau of the metric's order with {against}'s; p≠: fraction of seeds "
                          "whose pick differs. green/red: lower/higher regret than always taking the last milestone. "
                          "Ties go to the later milestone.", caption_justify="left")
    table.add_column("picked by", no_wrap=True)
    columns = []
    for run in runs:
        for variant, label in (("with_init", "w/ init"), ("without_init", "w/o init")):
            table.add_column(Text(f"{run.name}\n{label}"), justify="right", no_wrap=True)
            columns.append((run, variant))
    means = mean_regret(runs)
    if len(runs) > 1:
        for label in ("mean regret\nw/ init", "mean regret\nw/o init"):
            table.add_column(label, justify="right", no_wrap=True)
    for row in rows:
        spec = METRICS.get(row)
        label = (f"consensus ({', '.join(members)})" if row == CONSENSUS else "last milestone" if row == BASELINE
                 else f"{row} {spec.arrow}")
        cells = [_selection_cell(run.selection[row][variant], run.selection[BASELINE][variant])
                 if row in run.selection else Text("—", style="dim") for run, variant in columns]
        if len(runs) > 1:
            cells += [Text("—" if means[row][v] is None else f"{means[row][v]:.2f}") for v in VARIANTS]
        table.add_row(label, *cells)
    console.print(table)
