"""Meta-evaluation: how well each metric tracks a reference accuracy across the checkpoints of a run.

This is Table I of Xu, Lowe & Trappenberg (2024): for every metric, the Pearson
correlation (with its two-sided p-value) between the metric and the linear-probe
accuracy over the training milestones of one run, once with the initial
(untrained, epoch 0) milestone and once without it. Spearman's rank correlation
is reported alongside. Pure functions over the JSON documents that
``sslmon score --format json`` writes.

Definitions, over the n checkpoints where both values are present and finite:
Pearson r = cov(x, y) / (s_x s_y), p from Student's t = r sqrt((n - 2) / (1 - r^2))
with n - 2 degrees of freedom; Spearman rho = Pearson r of the ranks (ties get
their mean rank). ``scipy.stats.pearsonr`` / ``spearmanr`` compute both. The 95 %
interval of r is scipy's ``pearsonr(...).confidence_interval()``: the Fisher
transformation, tanh(atanh(r) -+ 1.96 / sqrt(n - 3)) (n = 3 gives [-1, 1]).

Beside the correlations, each run gets the selection figures of
:mod:`sslmon.selection`: the milestone each metric would pick, its regret and rank by
the reference, Kendall tau, the same for a consensus of label-free metrics and for the
"always take the last milestone" baseline, with and without the init milestone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
import json
import math
from pathlib import Path
from typing import Any, Iterable
import warnings

import numpy as np
from rich.console import Console
from rich.table import Table
from rich.text import Text
from scipy import stats

from sslmon import selection as sel
from sslmon.errors import SslmonError
from sslmon.metrics import METRICS, UNCERTAINTIES
from sslmon.selection import CONSENSUS, DEFAULT_CONSENSUS, Selection

ALPHA = 0.05  # significance level of the table colours
MIN_POINTS = 3  # fewest checkpoints a correlation is computed from
INIT_EPOCH = 0  # the untrained milestone

OK = "ok"
NOT_ENOUGH = "not enough data"
CONSTANT = "constant"
NO_INIT = "no init milestone"
CONFIDENCE = 0.95  # of the interval of Pearson r
BASELINE = "last_milestone"  # selection row of the "always pick the last milestone" baseline
VARIANTS = ("with_init", "without_init")


class ResultsFileError(SslmonError, ValueError):
    """A results file cannot be read or is not an sslmon results document; the message names it."""


@dataclass
class RunResults:
    """One results file: a run (or method) whose checkpoints are correlated together."""

    name: str
    path: str
    records: list[dict[str, Any]]

    def metric_keys(self) -> list[str]:
        """Metric keys present in any record, in :func:`ordered_keys` order."""
        return ordered_keys(key for r in self.records for key in r["metrics"])

    def values(self, key: str) -> list[float | None]:
        """The metric per record, ``None`` where it is missing, null or not finite."""
        return [_finite(r["metrics"].get(key)) for r in self.records]

    def epochs(self) -> list[int | None]:
        """The epoch per record, ``None`` where unknown."""
        return [r.get("epoch") for r in self.records]

    def names(self) -> list[str]:
        """The name per record (its index when it has none)."""
        return [str(r.get("name", i)) for i, r in enumerate(self.records)]

    def seed_values(self, key: str) -> list[list[float | None]]:
        """The metric per seed and record (``per_seed``: one dict of metric values per seed in each record).

        Empty unless every record has a ``per_seed`` list of the same length (> 1).
        """
        per_seed = [r.get("per_seed") for r in self.records]
        if not self.records or not all(isinstance(p, list) for p in per_seed):
            return []
        n_seeds = {len(p) for p in per_seed}
        if len(n_seeds) != 1 or n_seeds.pop() < 2:
            return []
        return [[_finite(p[s].get(key)) if isinstance(p[s], dict) else None for p in per_seed]
                for s in range(len(per_seed[0]))]


@dataclass(frozen=True)
class Correlation:
    """Pearson and Spearman correlation of one metric with the reference.

    ``n`` counts the checkpoints with both values; ``status`` is ``"ok"``, or why
    the numbers are ``None``: ``"not enough data"`` (n < 3), ``"constant"`` (one
    of the two does not vary) or ``"no init milestone"`` (the without-init column
    of a run that has no epoch-0 checkpoint, where it would repeat the other).
    """

    pearson_r: float | None
    pearson_p: float | None
    spearman_rho: float | None
    spearman_p: float | None
    n: int
    status: str
    pearson_ci_low: float | None = None  # 95 % interval of r (Fisher z, scipy)
    pearson_ci_high: float | None = None

    @property
    def significant(self) -> bool:
        return self.status == OK and self.pearson_p < ALPHA


@dataclass
class RunCorrelations:
    """The correlations of one run: ``correlations[metric]["with_init" | "without_init"]``.

    ``selection[row][variant]``: rows are the metrics with a known direction, ``"consensus"`` (of
    ``consensus_metrics``) and ``"last_milestone"``. ``n_seeds`` > 0 when the records carry ``per_seed``.
    """

    name: str
    path: str
    n_points: int
    correlations: dict[str, dict[str, Correlation]]
    selection: dict[str, dict[str, Selection]]
    consensus_metrics: list[str]
    n_seeds: int


def ordered_keys(keys: Iterable[str]) -> list[str]:
    """Distinct metric keys: those of the registry in its order, then unknown keys sorted."""
    present = set(keys)
    return [m for m in METRICS if m in present] + sorted(present - set(METRICS))


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _blank(n: int, status: str) -> Correlation:
    return Correlation(None, None, None, None, n, status)


def correlation(x: Iterable[float | None], y: Iterable[float | None]) -> Correlation:
    """Pearson and Spearman correlation of the pairs where neither value is ``None``. Never NaN."""
    pairs = [(a, b) for a, b in zip(x, y) if a is not None and b is not None]
    n = len(pairs)
    if n < MIN_POINTS:
        return _blank(n, NOT_ENOUGH)
    xs, ys = np.array(pairs, dtype=np.float64).T
    if np.ptp(xs) == 0 or np.ptp(ys) == 0:
        return _blank(n, CONSTANT)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # near-constant input: caught by the finiteness check below
        pearson = stats.pearsonr(xs, ys)
        spearman = stats.spearmanr(xs, ys)
        interval = pearson.confidence_interval(confidence_level=CONFIDENCE)
    values = [float(v) for v in (pearson.statistic, pearson.pvalue, spearman.statistic, spearman.pvalue)]
    if not all(math.isfinite(v) for v in values):
        return _blank(n, CONSTANT)
    return Correlation(*values, n=n, status=OK, pearson_ci_low=float(interval.low), pearson_ci_high=float(interval.high))


def correlate_metric(run: RunResults, key: str, against: str = "lp_acc") -> dict[str, Correlation]:
    """``{"with_init", "without_init"}`` correlations of metric ``key`` with ``against`` over ``run``."""
    values, reference = run.values(key), run.values(against)
    with_init = correlation(values, reference)
    kept = [epoch != INIT_EPOCH for epoch in run.epochs()]
    if all(kept):
        return {"with_init": with_init, "without_init": _blank(with_init.n, NO_INIT)}
    return {"with_init": with_init, "without_init": correlation(_select(values, kept), _select(reference, kept))}


def _compared_keys(run: RunResults, against: str) -> list[str]:
    """The metrics compared with ``against``: all but the reference itself and standard errors."""
    return [key for key in run.metric_keys() if key != against and key not in UNCERTAINTIES]


def select_run(run: RunResults, against: str = "lp_acc",
               consensus: Iterable[str] = DEFAULT_CONSENSUS) -> dict[str, dict[str, Selection]]:
    """``{row: {"with_init", "without_init": Selection}}`` for every metric with a known direction,
    the consensus of the ``consensus`` metrics present in the run, and the last-milestone baseline.

    The without-init variant drops the epoch-0 records before anything is ranked (the consensus ranks
    are recomputed on the rest); a run without an epoch-0 record gets ``"no init milestone"`` there.
    """
    ref_spec = METRICS.get(against, METRICS["lp_acc"])
    keys = [k for k in _compared_keys(run, against) if k in METRICS]
    columns = {k: sel.metric_keys(run.values(k), METRICS[k]) for k in keys}
    seeds = {k: [sel.metric_keys(v, METRICS[k]) for v in run.seed_values(k)] for k in keys}
    members = [k for k in consensus if k in columns]
    reference, epochs, names = run.values(against), run.epochs(), run.names()
    kept = {"with_init": [True] * len(epochs), "without_init": [e != INIT_EPOCH for e in epochs]}
    rows: dict[str, dict[str, Selection]] = {k: {} for k in [*keys, CONSENSUS, BASELINE]}
    for variant, keep in kept.items():
        if variant == "without_init" and all(keep):
            for row in rows.values():
                row[variant] = sel.unavailable(NO_INIT)
            continue

        def sub(values: list) -> list:
            return _select(values, keep)

        ref, ep, nm = sub(reference), sub(epochs), sub(names)
        ref_keys = sel.metric_keys(ref, ref_spec)

        def choose(key_list: list, seed_lists: list) -> Selection:
            return sel.select(key_list, ref_keys, ref, ep, nm, seed_lists)

        for k in keys:
            rows[k][variant] = choose(sub(columns[k]), [sub(s) for s in seeds[k]])
        n_seeds = min((len(seeds[k]) for k in members), default=0)
        rows[CONSENSUS][variant] = (
            choose(sel.consensus_keys([sub(columns[k]) for k in members]),
                   [sel.consensus_keys([sub(seeds[k][s]) for k in members]) for s in range(n_seeds)])
            if members else sel.unavailable("no consensus metrics in the results"))
        rows[BASELINE][variant] = (choose(sel.epoch_keys(ep), []) if any(e is not None for e in ep)
                                   else sel.unavailable("no epochs"))
    return rows


def correlate_run(run: RunResults, against: str = "lp_acc", consensus: Iterable[str] = DEFAULT_CONSENSUS) -> RunCorrelations:
    """Correlate every metric of ``run`` except ``against`` with ``against``, with and without epoch 0,
    and add the selection figures (:func:`select_run`)."""
    consensus = list(consensus)
    table = {key: correlate_metric(run, key, against) for key in _compared_keys(run, against)}
    n_points = sum(v is not None for v in run.values(against))
    n_seeds = len(run.seed_values(against)) or max((len(run.seed_values(k)) for k in consensus), default=0)
    return RunCorrelations(run.name, run.path, n_points, table, select_run(run, against, consensus),
                           [k for k in consensus if k in run.metric_keys()], n_seeds)


def _select(values: list[float | None], keep: list[bool]) -> list[float | None]:
    return [v for v, k in zip(values, keep) if k]


def load_results(path: str | Path, name: str | None = None) -> RunResults:
    """Read a results JSON written by ``sslmon score`` (``-f json``) or JSON Lines (``score -f jsonl``,
    ``sslmon watch -o``: one record per line; failure records are skipped); raise ResultsFileError naming the file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ResultsFileError(f"{path}: cannot read ({exc.strerror or type(exc).__name__})") from None
    except UnicodeDecodeError:
        raise ResultsFileError(f"{path}: not a text file (expected the JSON of `sslmon score -f json`)") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        doc = _json_lines(path, text) if exc.msg == "Extra data" else None
        if doc is None:
            raise ResultsFileError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if isinstance(doc, dict) and "results" not in doc and ("metrics" in doc or doc.get("failed") is True):
        doc = _json_lines(path, text)  # JSON Lines with a single record
    if not isinstance(doc, dict) or not isinstance(doc.get("results"), list):
        raise ResultsFileError(f"{path}: not an sslmon results document (no 'results' list; write one with `sslmon score -f json`)")
    for i, record in enumerate(doc["results"]):
        if not isinstance(record, dict) or not isinstance(record.get("metrics"), dict):
            raise ResultsFileError(f"{path}: results[{i}] has no 'metrics' object")
        epoch = record.get("epoch")
        if epoch is not None and (isinstance(epoch, bool) or not isinstance(epoch, int)):
            raise ResultsFileError(f"{path}: results[{i}] has a non-integer epoch {epoch!r}")
    return RunResults(name or path.stem, str(path), doc["results"])


def _json_lines(path: Path, text: str) -> dict[str, Any]:
    """A JSON Lines results file as ``{"results": [...]}`` (the result records, failures left out)."""
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ResultsFileError(f"{path}: line {number} is not valid JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise ResultsFileError(f"{path}: line {number} is not a JSON object")
        if record.get("failed") is not True:
            records.append(record)
    return {"results": records}


def run_names(paths: list[Path], names: list[str] | None = None) -> list[str]:
    """Column/legend names: ``names`` when given (one per file), else the file stems.

    Files with the same stem (``a/results.json``, ``b/results.json``) are named
    ``parent/stem`` instead.
    """
    if names:
        if len(names) != len(paths):
            raise ValueError(f"{len(names)} name(s) for {len(paths)} results file(s): give one --name per file")
        return list(names)
    stems = [p.stem for p in paths]
    return [f"{p.parent.name}/{p.stem}" if stems.count(p.stem) > 1 else p.stem for p in paths]


def to_dict(runs: list[RunCorrelations], against: str) -> dict[str, Any]:
    """The JSON document: ``{"against", "runs": [{"name", "path", "n_points", "correlations", "selection",
    "consensus_metrics", "n_seeds"}], "mean_regret": {row: {variant: points}}}``."""
    return {"against": against, "runs": [asdict(run) for run in runs], "mean_regret": mean_regret(runs)}


def to_json(runs: list[RunCorrelations], against: str) -> str:
    return json.dumps(to_dict(runs, against), indent=2, allow_nan=False) + "\n"


def mean_regret(runs: list[RunCorrelations]) -> dict[str, dict[str, float | None]]:
    """Per selection row and variant, the mean regret (points) over the runs where it is defined."""
    rows = ordered_keys(k for run in runs for k in run.selection if k not in (CONSENSUS, BASELINE)) + [CONSENSUS, BASELINE]
    out: dict[str, dict[str, float | None]] = {}
    for row in rows:
        out[row] = {}
        for variant in VARIANTS:
            values = [run.selection[row][variant].regret for run in runs if row in run.selection]
            values = [v for v in values if v is not None]
            out[row][variant] = float(np.mean(values)) if values else None
    return out


# --------------------------------------------------------------------------- table


def format_p(p: float) -> str:
    """``p<0.001`` or ``p=0.042``."""
    return "p<0.001" if p < 0.001 else f"p={p:.3f}"


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
