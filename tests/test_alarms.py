"""sslmon.alarms: collapse, noise and plateau flags on hand-made results, checked against hand computations, and
the collapse gates against every milestone of the repository's results files."""

from __future__ import annotations

import glob
import math

import numpy as np
import pytest

from helpers import ROOT
from sslmon.alarms import (FULL_COLLAPSE, L2_STD_GATE, RANKME_GATE, collapse_flag, noise_flags, plateau_flag,
                           relative_spread, run_flags, short)
from sslmon.io.runfile import load_run
from sslmon.metrics import l2_std, rankme
from sslmon.results import Result


def _result(name: str, epoch: int | None, metrics: dict, std: dict | None = None, **kw) -> Result:
    return Result(name, None, metrics, epoch=epoch, metrics_std=std or {}, **kw)


def test_relative_spread_by_hand():
    rng = np.random.default_rng(0)
    row = rng.normal(size=16)
    assert relative_spread(np.tile(row, (50, 1))) < 1e-14  # every row the same vector (mean: float64 round-off)
    X = rng.normal(size=(200, 8))
    by_hand = np.sqrt(((X - X.mean(0)) ** 2).sum(1).mean()) / np.sqrt((X ** 2).sum(1).mean())
    assert relative_spread(X) == pytest.approx(by_hand, rel=1e-12)
    assert relative_spread(np.zeros((5, 3))) is None and relative_spread(np.full((2, 2), np.nan)) is None


def test_a_constant_embedding_is_flagged_even_without_metrics():
    Z = np.tile(np.arange(1, 9, dtype=np.float32), (40, 1)) + np.float32(1e-7)  # identical rows (round-off at most)
    result = _result("const", 3, {"l2_std": None, "rankme": None}, spread=relative_spread(Z), n_samples=40, dim=8)
    flag = collapse_flag(result)
    assert flag is not None and flag["code"] == "collapse" and "same vector" in flag["message"]
    assert result.spread < FULL_COLLAPSE


def test_near_collapse_gates_fire_on_a_rank_one_embedding_and_not_on_noise():
    rng = np.random.default_rng(1)
    n, d = 400, 128
    line = rng.normal(size=(n, 1)) @ rng.normal(size=(1, d)) + 1e-3 * rng.normal(size=(n, d))  # dimensional collapse
    noise = rng.normal(size=(n, d))
    for Z, collapsed in ((line, True), (noise, False)):
        metrics = {"l2_std": l2_std(Z), "rankme": rankme(Z)}
        result = _result("z", None, metrics, spread=relative_spread(Z), n_samples=n, dim=d)
        assert (collapse_flag(result) is not None) is collapsed, metrics


def test_gates_never_fire_on_the_repository_milestones():
    """The provisional thresholds against every milestone of docs/results (and docs/selection): the margins the
    module docstring states (2.6x for l2_std*sqrt(d), 3.0x for rankme/min(n, d)) hold."""
    files = [f for f in glob.glob(str(ROOT / "docs/results/**/*.json"), recursive=True)
             + glob.glob(str(ROOT / "docs/selection/**/*.json"), recursive=True) if "table1" not in f]
    l2s, ranks, flagged = [], [], []
    for path in files:
        for r in load_run(path).results:
            if r.metrics.get("l2_std") is None:
                continue
            l2s.append(r.metrics["l2_std"] * math.sqrt(r.dim))
            ranks.append(r.metrics["rankme"] / min(r.n_samples, r.dim))
            if collapse_flag(r):
                flagged.append((path, r.name))
    assert len(l2s) >= 500 and not flagged
    assert min(l2s) / L2_STD_GATE > 2.6 and min(ranks) / RANKME_GATE > 2.9


def test_noise_flags_by_hand():
    before = _result("a", 1, {"ami_c1_c2": 0.70, "rankme": 10.0, "entropy_z3": 4.0}, {"ami_c1_c2": 0.03, "rankme": 0.0, "entropy_z3": 0.01})
    after = _result("b", 2, {"ami_c1_c2": 0.74, "rankme": 12.0, "entropy_z3": 3.9}, {"ami_c1_c2": 0.04, "rankme": 0.0, "entropy_z3": 0.02})
    flags = noise_flags(after, before)
    # ami: |0.04| <= hypot(0.03, 0.04) = 0.05 -> noise; entropy: 0.1 > hypot(0.01, 0.02) = 0.022 -> moved;
    # rankme has no seed spread -> never judged
    assert [f["metric"] for f in flags] == ["ami_c1_c2"] and all(f["code"] == "noise" for f in flags)


def test_plateau_by_hand():
    std = {"ami_c1_c2": 0.02, "silhouette_c1": 0.01}
    flat = [_result(f"e{e}", e, {"ami_c1_c2": 0.80 + 0.01 * (e % 2), "silhouette_c1": 0.20}, std) for e in range(5, 9)]
    flag = plateau_flag(flat)  # range 0.01 <= 2 * 0.02 and 0 <= 2 * 0.01
    assert flag is not None and "epochs 5-8" in flag["message"]
    rising = [_result(f"e{e}", e, {"ami_c1_c2": 0.70 + 0.03 * e, "silhouette_c1": 0.20}, std) for e in range(5, 9)]
    assert plateau_flag(rising) is None  # ami moved 0.09 > 0.04
    assert plateau_flag(flat[1:]) is None  # fewer than 4 milestones: not judged
    results = [_result("init", 0, {"ami_c1_c2": 0.1}, {"ami_c1_c2": 0.02}), *flat]
    flags = run_flags(results)
    assert [f["code"] for f in flags[-1]].count("plateau") == 1 and not any(f["code"] == "plateau" for fl in flags[:-1] for f in fl)
    assert short(flags[-1]) == "plateau,noise×2"
