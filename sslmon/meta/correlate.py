"""Meta-evaluation: how well each metric tracks a reference accuracy across the checkpoints of a run.

This is Table I of Xu, Lowe & Trappenberg (2024): for every metric, the Pearson
correlation (with its two-sided p-value) between the metric and the linear-probe
accuracy over the training milestones of one run, once with the initial
(untrained, epoch 0) milestone and once without it. Spearman's rank correlation
is reported alongside. Pure functions over runs (:class:`~sslmon.results.Run`, read from
results files by :func:`sslmon.io.runfile.load_run`); the tables are drawn by :mod:`sslmon.meta.report_correlate`.

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
from scipy import stats

from sslmon import selection as sel
from sslmon.metrics import METRICS, UNCERTAINTIES
from sslmon.results import INIT_EPOCH, Run, finite
from sslmon.selection import CONSENSUS, DEFAULT_CONSENSUS, Selection

ALPHA = 0.05  # significance level of the table colours
MIN_POINTS = 3  # fewest checkpoints a correlation is computed from

OK = "ok"
NOT_ENOUGH = "not enough data"
CONSTANT = "constant"
NO_INIT = "no init milestone"
CONFIDENCE = 0.95  # of the interval of Pearson r
BASELINE = "last_milestone"  # selection row of the "always pick the last milestone" baseline
VARIANTS = ("with_init", "without_init")


@dataclass(frozen=True)
class NamedRun:
    """One run (or method) whose checkpoints are correlated together, under the name its column or legend shows,
    and the file it was read from (:func:`sslmon.io.runfile.load_run`)."""

    name: str
    path: str
    run: Run


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


def sample_size_warning(runs: list[NamedRun]) -> str | None:
    """One warning line when the records compared were evaluated on different numbers of images (``n_samples``,
    within one file or between files): H(Z3) depends on the number of images, so its values then differ for
    that reason too. None when they agree (records without ``n_samples`` are left out)."""
    sizes = {named.path: sorted({r.n_samples for r in named.run.results if r.n_samples is not None}) for named in runs}
    if len({n for found in sizes.values() for n in found}) < 2:
        return None
    listed = "; ".join(f"{path}: {', '.join(map(str, found))}" for path, found in sizes.items() if found)
    return (f"warning: the results mix numbers of images (n_samples {listed}): entropy_z3 (H(Z3)) depends on the "
            "number of images, so its values are comparable only at the same n_samples")


def ordered_keys(keys: Iterable[str]) -> list[str]:
    """Distinct metric keys: those of the registry in its order, then unknown keys sorted."""
    present = set(keys)
    return [m for m in METRICS if m in present] + sorted(present - set(METRICS))


def metric_keys(run: Run) -> list[str]:
    """Metric keys present in any result of ``run``, in :func:`ordered_keys` order."""
    return ordered_keys(key for r in run.results for key in r.metrics)


def seed_values(run: Run, key: str) -> list[list[float | None]]:
    """The metric per evaluation seed and result (from ``per_seed``), ``None`` where missing or not finite.

    Empty unless every result has per-seed values of the same number (> 1) of seeds.
    """
    n_seeds = {len(r.per_seed) for r in run.results}
    if len(n_seeds) != 1 or (n := n_seeds.pop()) < 2:
        return []
    return [[finite(r.per_seed[s].get(key)) for r in run.results] for s in range(n)]


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


def correlate_metric(run: Run, key: str, against: str = "lp_acc") -> dict[str, Correlation]:
    """``{"with_init", "without_init"}`` correlations of metric ``key`` with ``against`` over ``run``."""
    values, reference = run.values(key), run.values(against)
    with_init = correlation(values, reference)
    kept = [epoch != INIT_EPOCH for epoch in run.epochs()]
    if all(kept):
        return {"with_init": with_init, "without_init": _blank(with_init.n, NO_INIT)}
    return {"with_init": with_init, "without_init": correlation(_select(values, kept), _select(reference, kept))}


def _compared_keys(run: Run, against: str) -> list[str]:
    """The metrics compared with ``against``: all but the reference itself and standard errors."""
    return [key for key in metric_keys(run) if key != against and key not in UNCERTAINTIES]


def select_run(run: Run, against: str = "lp_acc",
               consensus: Iterable[str] = DEFAULT_CONSENSUS) -> dict[str, dict[str, Selection]]:
    """``{row: {"with_init", "without_init": Selection}}`` for every metric with a direction (not ``twonn_id``),
    the consensus of the ``consensus`` metrics present in the run, and the last-milestone baseline. ValueError
    for a ``consensus`` metric without a direction.

    The without-init variant drops the epoch-0 records before anything is ranked (the consensus ranks
    are recomputed on the rest); a run without an epoch-0 record gets ``"no init milestone"`` there.
    """
    ref_spec = METRICS.get(against, METRICS["lp_acc"])
    consensus = list(consensus)
    for key in consensus:
        sel.check_ranked(key)
    keys = [k for k in _compared_keys(run, against) if k in METRICS and METRICS[k].ranked]
    columns = {k: sel.metric_keys(run.values(k), METRICS[k]) for k in keys}
    seeds = {k: [sel.metric_keys(v, METRICS[k]) for v in seed_values(run, k)] for k in keys}
    members = [k for k in consensus if k in columns]
    reference, epochs, names = run.values(against), run.epochs(), [r.name for r in run.results]
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


def correlate_run(named: NamedRun, against: str = "lp_acc", consensus: Iterable[str] = DEFAULT_CONSENSUS) -> RunCorrelations:
    """Correlate every metric of the run except ``against`` with ``against``, with and without epoch 0,
    and add the selection figures (:func:`select_run`)."""
    run, consensus = named.run, list(consensus)
    table = {key: correlate_metric(run, key, against) for key in _compared_keys(run, against)}
    n_points = sum(v is not None for v in run.values(against))
    n_seeds = len(seed_values(run, against)) or max((len(seed_values(run, k)) for k in consensus), default=0)
    return RunCorrelations(named.name, named.path, n_points, table, select_run(run, against, consensus),
                           [k for k in consensus if k in metric_keys(run)], n_seeds)


def _select(values: list[float | None], keep: list[bool]) -> list[float | None]:
    return [v for v, k in zip(values, keep) if k]


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


def format_p(p: float) -> str:
    """``p<0.001`` or ``p=0.042``."""
    return "p<0.001" if p < 0.001 else f"p={p:.3f}"


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
