"""Alarms on a run's results: ``collapse``, ``plateau`` and ``noise`` flags (docs/metrics.md#alarms-collapse-plateau-noise).

Each flag is a dict ``{"code": ..., "message": ...}`` (``noise`` adds ``"metric"``). Definitions:

- **collapse** (per result): the encoder's embeddings are (nearly) collapsed when any of
  - the *relative spread* of the embeddings (:func:`relative_spread`, stored as ``Result.spread``) is below
    :data:`FULL_COLLAPSE`: every row is the same vector up to round-off;
  - ``l2_std * sqrt(d)`` is below :data:`L2_STD_GATE` (``l2_std`` is about ``1/sqrt(d)`` for embeddings spread
    over the sphere, 0 for collapsed ones);
  - ``rankme / min(n, d)`` is below :data:`RANKME_GATE` (dimensional collapse: a few directions carry everything).
  The two gates are provisional: set so that none fires on any milestone in docs/results/ (582 milestones, the
  smallest values there are 0.131 and 0.089: margins 2.6x and 3.0x) until issue 17's study tests them.
- **noise** (per result and metric): the difference of a metric's mean to the previous milestone's (by epoch) is at
  most ``sqrt(s_prev^2 + s^2)``, the spread over the evaluation seeds of that difference of single-seed values
  (``s`` = ``metrics_std``); only metrics with a positive spread at both milestones (two or more seeds).
- **plateau** (the last milestone of a run only): over the last :data:`PLATEAU_WINDOW` milestones after init, every
  label-free metric with a positive seed spread at all of them moved less than twice that spread: max - min of its
  means <= 2 sqrt(mean of its seed variances); needs at least one such metric.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from sslmon.metrics import LABEL_FREE, METRICS

if TYPE_CHECKING:
    from sslmon.results import Result

Flag = dict[str, str]

COLLAPSE, PLATEAU, NOISE = "collapse", "plateau", "noise"
FLAG_CODES = (COLLAPSE, PLATEAU, NOISE)
FULL_COLLAPSE = 1e-4  # relative spread below which every embedding is the same vector (float32 round-off is ~1e-7)
L2_STD_GATE = 0.05  # l2_std * sqrt(d) below this: near-collapse (smallest healthy value in docs/results/: 0.131)
RANKME_GATE = 0.03  # rankme / min(n, d) below this: dimensional collapse (smallest healthy value there: 0.089)
ALARM_METRICS = ("l2_std", "rankme")  # the metrics the collapse alarm reads (cheap: one SVD), always computed
PLATEAU_WINDOW = 4  # milestones (after init) over which a plateau is judged
PLATEAU_SPREADS = 2.0  # ... and how many seed standard deviations the metrics may move within it


def relative_spread(Z: Any) -> float | None:
    """RMS distance of the rows of ``Z`` (n, d) to their mean, divided by the RMS norm of the rows (float64).

    0 when every row is the same vector; about 1 for centred data; ``None`` when it is undefined (no rows, all rows
    zero, or non-finite values)."""
    if hasattr(Z, "detach"):  # a torch tensor, on any device
        Z = Z.detach().cpu().numpy()
    X = np.asarray(Z, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] == 0 or not np.isfinite(X).all():
        return None
    scale = math.sqrt(float(np.mean(np.sum(X * X, axis=1))))
    if scale == 0.0:
        return None
    centred = X - X.mean(axis=0)
    return math.sqrt(float(np.mean(np.sum(centred * centred, axis=1)))) / scale


def collapse_flag(result: Result) -> Flag | None:
    """The ``collapse`` flag of one result (see the module docstring), or None."""
    m, d, n = result.metrics, result.dim, result.n_samples
    if result.spread is not None and result.spread < FULL_COLLAPSE:
        return _flag(COLLAPSE, f"every embedding is the same vector (relative spread {result.spread:.1e} < {FULL_COLLAPSE:g})")
    l2 = m.get("l2_std")
    if l2 is not None and d and l2 * math.sqrt(d) < L2_STD_GATE:
        return _flag(COLLAPSE, f"near-collapse: l2_std*sqrt(d) = {l2 * math.sqrt(d):.3g} < {L2_STD_GATE:g}")
    rankme = m.get("rankme")
    if rankme is not None and d and n and rankme / min(n, d) < RANKME_GATE:
        return _flag(COLLAPSE, f"dimensional collapse: rankme/min(n,d) = {rankme:.3g}/{min(n, d)} < {RANKME_GATE:g}")
    return None


def is_collapsed(result: Result) -> bool:
    """Whether :func:`collapse_flag` flags ``result``."""
    return collapse_flag(result) is not None


def _flag(code: str, message: str, **extra: str) -> Flag:
    return {"code": code, "message": message, **extra}


def _spread_of(result: Result, key: str) -> tuple[float, float] | None:
    """(mean, seed std) of a metric when both are finite and the std is positive."""
    value, std = result.metrics.get(key), result.metrics_std.get(key)
    if value is None or std is None or not std > 0 or not math.isfinite(value) or not math.isfinite(std):
        return None
    return value, std


def noise_flags(result: Result, previous: Result) -> list[Flag]:
    """A ``noise`` flag per metric whose change from ``previous`` is within the seed spread of that change."""
    flags = []
    for key in METRICS:
        now, before = _spread_of(result, key), _spread_of(previous, key)
        if now is None or before is None:
            continue
        delta, spread = now[0] - before[0], math.hypot(now[1], before[1])
        if abs(delta) <= spread:
            flags.append(_flag(NOISE, f"{key} changed by {delta:+.3g} since {previous.name}, within the seed spread "
                                      f"{spread:.3g}", metric=key))
    return flags


def plateau_flag(window: Sequence[Result]) -> Flag | None:
    """The ``plateau`` flag of the last of ``window`` (:data:`PLATEAU_WINDOW` milestones in epoch order), or None."""
    if len(window) < PLATEAU_WINDOW:
        return None
    judged = []
    for key in LABEL_FREE:
        pairs = [_spread_of(r, key) for r in window]
        if any(p is None for p in pairs):
            continue
        means = [p[0] for p in pairs]  # type: ignore[index]
        spread = math.sqrt(float(np.mean([p[1] ** 2 for p in pairs])))  # type: ignore[index]
        if max(means) - min(means) > PLATEAU_SPREADS * spread:
            return None
        judged.append(key)
    if not judged:
        return None
    epochs = f"epochs {window[0].epoch}-{window[-1].epoch}"
    return _flag(PLATEAU, f"{', '.join(judged)} moved less than {PLATEAU_SPREADS:g} seed std over {epochs}")


def run_flags(results: Sequence[Result]) -> list[list[Flag]]:
    """The flags of each result, aligned with ``results``: collapse for every result; noise against the previous
    milestone (a lower epoch) and plateau for the last one, among the results with an epoch of the same training
    run (:attr:`~sslmon.results.Result.run`; each run's sequence is its own)."""
    runs = list(dict.fromkeys(r.run for r in results))
    if len(runs) > 1:
        flags_of: dict[int, list[Flag]] = {}
        for label in runs:
            part = [r for r in results if r.run == label]
            flags_of.update(zip(map(id, part), run_flags(part)))
        return [flags_of[id(r)] for r in results]
    flags: list[list[Flag]] = [[f] if (f := collapse_flag(r)) else [] for r in results]
    order = sorted((i for i, r in enumerate(results) if r.epoch is not None), key=lambda i: (results[i].epoch, i))
    for before, now in zip(order, order[1:]):
        if results[now].epoch != results[before].epoch:  # models of one epoch (untrained ones) are no sequence
            flags[now] += noise_flags(results[now], results[before])
    trained = [i for i in order if results[i].epoch != 0]
    if trained:
        plateau = plateau_flag([results[i] for i in trained[-PLATEAU_WINDOW:]])
        if plateau:
            flags[trained[-1]].append(plateau)
    return flags


def short(flags: Sequence[Flag]) -> str:
    """The table's compact ``alarms`` cell: ``collapse``, ``plateau``, ``noise×N`` (N metrics), comma-separated."""
    codes = [f["code"] for f in flags]
    parts = [c for c in (COLLAPSE, PLATEAU) if c in codes]
    if NOISE in codes:
        parts.append(f"noise×{codes.count(NOISE)}")
    return ",".join(parts)
