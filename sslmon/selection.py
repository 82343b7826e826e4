"""Checkpoint selection: which milestone would a metric pick, and what would that cost?

Pure functions over per-milestone values (lists aligned with a run's records, ``None``
where a value is missing). Everything is expressed in *sort keys*: a number that is
smaller for a better value (:meth:`sslmon.metrics.MetricSpec.sort_key`), so "higher is
better", "lower is better" and "closest to a target" metrics are handled alike.

Definitions, over one run (optionally without its init milestone):

- **pick**: the milestone with the best (smallest) key among those where both the metric
  and the reference are defined. Ties on the best key are broken towards the latest
  epoch (a decision must name one checkpoint; training longer is the usual default) and
  counted in ``ties``.
- **regret** = (reference key of the pick - best reference key in the run) x 100. For a
  "higher is better" reference this is best accuracy - picked accuracy, in percentage
  points when the reference is a fraction (``lp_acc``). The best is taken over every
  milestone with a reference value, also those where the metric is undefined.
- **pick rank**: 1 + the number of milestones whose reference is strictly better than the
  pick's (competition ranking: milestones tied on the reference share a rank).
- **Kendall tau**: ``scipy.stats.kendalltau`` (tau-b, tie-corrected) between the metric's
  goodness (-key) and the reference's goodness, over the milestones where both exist.
- **consensus**: per milestone, the mean over the chosen metrics of the metric's rank
  among the milestones (1 = best, tied values share their mean rank, ``scipy.stats.rankdata``);
  a metric undefined on a milestone is left out of that milestone's mean. Lower is better.
- **last milestone** baseline: the key is -epoch, so the pick is the highest epoch.
- **seed spread**: with per-seed values, the pick is repeated with each seed's metric
  values; ``p_change`` is the fraction of seeds whose pick differs from the pick of the
  mean values, and the seed regrets are measured against the mean reference.
"""

from __future__ import annotations

from dataclasses import dataclass
import math
from typing import Sequence
import warnings

import numpy as np

from sslmon.metrics import METRICS, MetricSpec

Keys = Sequence[float | None]

OK = "ok"
NOT_ENOUGH = "not enough data"
NO_EPOCHS = "no epochs"
MIN_CANDIDATES = 2  # a choice needs at least two milestones
CONSENSUS = "consensus"  # the --rank-by / selection name of the consensus
EPOCH = "epoch"  # the --rank-by name of epoch order, newest first: score's default for a run's milestones (sslmon.recommend)
INPUT = "input"  # the --rank-by name of no ranking (input order, nothing recommended): the default across models and runs
RULES = (EPOCH, CONSENSUS, INPUT)  # the --rank-by names that are not metrics
# The label-free metrics of the consensus: the six of the regret study (docs/selection.md), whose mean rank
# had the lowest mean regret of the label-free choices there. Later metrics join after a study.
DEFAULT_CONSENSUS = ("ami_c1_c2", "silhouette_c1", "entropy_z3", "rankme", "alpha_req", "l2_std")


@dataclass(frozen=True)
class SeedSpread:
    """How the pick moves when each seed's values are used instead of their mean.

    ``p_change`` is the fraction of ``n_seeds`` seeds whose pick differs from the mean
    values' pick; ``regret_mean``/``regret_sd`` (points, ddof = 1; ``None`` for one seed)
    are over the seeds' picks, measured against the mean reference.
    """

    n_seeds: int
    p_change: float
    regret_mean: float
    regret_sd: float | None
    picked_epochs: list[int | None]


@dataclass(frozen=True)
class Selection:
    """What one metric (or the consensus, or the baseline) picks in one run; see the module docstring.

    ``n`` counts the milestones with both the metric and the reference, ``n_undefined`` those with a
    reference but no metric value. Numbers are ``None`` unless ``status`` is ``"ok"``.
    """

    pick_epoch: int | None
    pick_name: str | None
    pick_reference: float | None
    best_reference: float | None
    regret: float | None
    pick_rank: int | None
    kendall_tau: float | None
    kendall_p: float | None
    n: int
    n_undefined: int
    ties: int
    status: str
    seeds: SeedSpread | None = None


def check_ranked(key: str) -> None:
    """ValueError, one line saying why, when ``key`` is a metric without a direction (:attr:`MetricSpec.ranked`):
    such a metric is shown, but nothing is ranked or picked by it and it joins no consensus."""
    spec = METRICS.get(key)
    if spec is not None and not spec.ranked:
        raise ValueError(f"'{key}' has no direction (neither higher nor lower is supported as better), so it is shown "
                         "but never ranked by nor part of a consensus (docs/metrics.md#later-label-free-metrics)")


def unavailable(status: str, n: int = 0, n_undefined: int = 0) -> Selection:
    """A selection without numbers; ``status`` says why."""
    return Selection(None, None, None, None, None, None, None, None, n, n_undefined, 0, status)


def _valid(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def metric_keys(values: Sequence[float | None], spec: MetricSpec) -> list[float | None]:
    """Sort keys (smaller = better) of a metric's values; ``None`` stays ``None``."""
    return [spec.sort_key(v) if _valid(v) else None for v in values]


def epoch_keys(epochs: Sequence[int | None]) -> list[float | None]:
    """Keys of the last-milestone baseline: -epoch (the highest epoch is best)."""
    return [None if e is None else -float(e) for e in epochs]


def consensus_keys(columns: Sequence[Keys]) -> list[float | None]:
    """Mean rank per milestone over the metrics' key columns (1 = best; ties share their mean rank).

    Each column is ranked over the milestones where it is defined; a milestone's consensus is the
    mean of its defined ranks, ``None`` where no metric is defined.
    """
    from scipy import stats

    n = len(columns[0]) if columns else 0
    sums, counts = np.zeros(n), np.zeros(n)
    for column in columns:
        idx = [i for i, k in enumerate(column) if _valid(k)]
        if idx:
            sums[idx] += stats.rankdata([column[i] for i in idx], method="average")
            counts[idx] += 1
    return [float(sums[i] / counts[i]) if counts[i] else None for i in range(n)]


def pick(keys: Keys, epochs: Sequence[int | None], allowed: Sequence[bool]) -> tuple[int | None, int]:
    """Index of the best (smallest) key among ``allowed`` milestones, and how many share that key.

    Ties go to the highest epoch (unknown epochs count as lowest), then to the later index.
    ``(None, 0)`` when no allowed milestone has a key.
    """
    candidates = [i for i, k in enumerate(keys) if allowed[i] and _valid(k)]
    if not candidates:
        return None, 0
    best = min(keys[i] for i in candidates)
    tied = [i for i in candidates if keys[i] == best]
    chosen = max(tied, key=lambda i: (epochs[i] if epochs[i] is not None else -math.inf, i))
    return chosen, len(tied)


def _kendall(keys: Keys, ref_keys: Keys) -> tuple[float | None, float | None]:
    pairs = [(-k, -r) for k, r in zip(keys, ref_keys) if _valid(k) and _valid(r)]
    if len(pairs) < MIN_CANDIDATES:
        return None, None
    from scipy import stats

    x, y = np.array(pairs).T
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant input: NaN, reported as None
        result = stats.kendalltau(x, y)
    tau, p = float(result.statistic), float(result.pvalue)
    return (tau, p) if math.isfinite(tau) else (None, None)


def select(
    keys: Keys,
    ref_keys: Keys,
    reference: Sequence[float | None],
    epochs: Sequence[int | None],
    names: Sequence[str],
    seed_keys: Sequence[Keys] = (),
) -> Selection:
    """The pick of ``keys`` judged by ``ref_keys`` (reference values in ``reference``, for display).

    All sequences are aligned with the milestones (``names`` label them in the result).
    ``seed_keys`` (one key list per seed, same alignment) adds the :class:`SeedSpread`.
    """
    has_ref = [_valid(r) for r in ref_keys]
    n = sum(1 for k, ok in zip(keys, has_ref) if ok and _valid(k))
    n_undefined = sum(has_ref) - n
    if n < MIN_CANDIDATES:
        return unavailable(NOT_ENOUGH, n, n_undefined)
    best_ref = min(r for r, ok in zip(ref_keys, has_ref) if ok)
    chosen, ties = pick(keys, epochs, has_ref)
    tau, tau_p = _kendall(keys, ref_keys)

    def regret(i: int) -> float:
        return (ref_keys[i] - best_ref) * 100

    spread = None
    seed_picks = [pick(sk, epochs, has_ref)[0] for sk in seed_keys]
    if seed_picks and all(i is not None for i in seed_picks):
        regrets = [regret(i) for i in seed_picks]
        spread = SeedSpread(
            n_seeds=len(seed_picks),
            p_change=sum(i != chosen for i in seed_picks) / len(seed_picks),
            regret_mean=float(np.mean(regrets)),
            regret_sd=float(np.std(regrets, ddof=1)) if len(regrets) > 1 else None,
            picked_epochs=[epochs[i] for i in seed_picks],
        )
    rank = 1 + sum(1 for r, ok in zip(ref_keys, has_ref) if ok and r < ref_keys[chosen])
    best_value = next(v for v, r, ok in zip(reference, ref_keys, has_ref) if ok and r == best_ref)
    return Selection(epochs[chosen], names[chosen], reference[chosen], best_value, regret(chosen), rank, tau, tau_p,
                     n, n_undefined, ties, OK, spread)
