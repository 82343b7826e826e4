"""The metric registry: adding a metric is one MetricSpec entry, and every entry is consistent."""

from __future__ import annotations

from dataclasses import replace
import re

import numpy as np
import pytest
from rich.console import Console
from typer.testing import CliRunner

from sslmon.meta import plots
from sslmon.cli import app
from sslmon.meta.correlate import ordered_keys
from sslmon.evaluation import SEEDED, EvalConfig, evaluate_embeddings
from sslmon.metrics import INTERMEDIATES, METRICS, SEED_DEPENDENT, MetricSpec
from sslmon.report import render_table
from sslmon.results import Result, Run

FAST = EvalConfig(seeds=(0, 1), umap_epochs=10)


@pytest.fixture
def blobs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, 200)
    return rng.standard_normal((200, 8)) + 4 * np.eye(8)[y], y


@pytest.fixture
def total_variance(monkeypatch) -> MetricSpec:
    """A toy metric registered for one test (monkeypatch restores METRICS afterwards)."""
    spec = MetricSpec(
        "total_variance", "higher", False, "sum of the per-dimension variances of Z (ddof 1)",
        title="total variance", symbol="tr Cov(Z)", unit="squared units of Z",
        needs=("spectrum",), compute=lambda v, cfg: float(v["spectrum"].covariance.sum()),
    )
    monkeypatch.setitem(METRICS, spec.name, spec)
    return spec


@pytest.fixture
def z3_spread(monkeypatch) -> MetricSpec:
    """A toy metric of the UMAP layout: it depends on the evaluation seed."""
    spec = MetricSpec(
        "z3_spread", "lower", False, "mean population std of the columns of Z3",
        title="spread of Z3", symbol="std(Z3)", unit="layout units",
        needs=("Z3",), compute=lambda v, cfg: float(v["Z3"].std(axis=0).mean()),
    )
    monkeypatch.setitem(METRICS, spec.name, spec)
    return spec


def test_total_variance(blobs, total_variance):
    Z, _ = blobs
    ev = evaluate_embeddings(Z, metrics=["total_variance"], config=EvalConfig(seeds=(0,)))
    assert ev.metrics["total_variance"] == pytest.approx(Z.var(axis=0, ddof=1).sum(), rel=1e-9)


def test_a_registered_label_free_metric_is_in_the_default_set(blobs, total_variance):
    Z, _ = blobs
    ev = evaluate_embeddings(Z, config=FAST)  # no labels, no metrics named: every label-free metric
    assert ev.metrics["total_variance"] == pytest.approx(Z.var(axis=0, ddof=1).sum(), rel=1e-9)
    assert not total_variance.seeded and ev.metrics_std["total_variance"] == 0.0  # seed-independent: no spread
    assert [s["total_variance"] for s in ev.per_seed] == [ev.metrics["total_variance"]] * 2


def test_a_metric_of_z3_pulls_in_the_layout_and_varies_with_the_seed(blobs, z3_spread):
    Z, _ = blobs
    ev = evaluate_embeddings(Z, metrics=["z3_spread"], config=FAST)
    assert z3_spread.seeded
    assert "umap_layout" in ev.timings and ev.Z3 is not None
    assert ev.per_seed[0]["z3_spread"] == pytest.approx(ev.Z3.std(axis=0).mean(), rel=1e-12)  # Z3 is the first seed's
    values = [s["z3_spread"] for s in ev.per_seed]
    assert ev.metrics["z3_spread"] == pytest.approx(np.mean(values)) and ev.metrics_std["z3_spread"] == pytest.approx(np.std(values, ddof=1))
    assert evaluate_embeddings(Z, metrics=["rankme"], config=FAST).Z3 is None  # no metric asks for the layout: none is made


def test_a_registered_metric_gets_a_column_with_its_arrow_and_a_line_in_the_listing(blobs, total_variance):
    Z, _ = blobs
    ev = evaluate_embeddings(Z, metrics=["rankme", "total_variance"], config=EvalConfig(seeds=(0,)))
    console = Console(record=True, width=200)
    render_table(Run(config={}, results=[Result("a", None, ev.metrics, metrics_std=ev.metrics_std)]), "total_variance", console)
    text = console.export_text()
    assert "variance ↑" in text and f"{Z.var(axis=0, ddof=1).sum():.4g}" in text
    assert "ranked by total_variance (higher is better" in " ".join(text.split())  # the title may wrap
    listing = CliRunner().invoke(app, ["metrics"])
    assert listing.exit_code == 0
    assert "total_variance" in listing.stdout and "per-dimension variances" in re.sub(r"[\s│]+", " ", listing.stdout)


def test_registry_order_is_the_display_order(total_variance):
    assert ordered_keys(["aaa", "total_variance", "rankme"]) == ["rankme", "total_variance", "aaa"]  # registered before unknown keys
    assert plots._name("total_variance") == "total variance [total_variance]"
    assert plots._label("total_variance") == "tr Cov(Z)  (squared units of Z)"


def test_arrows():
    assert [METRICS[k].arrow for k in ("rankme", "entropy_z3", "alpha_req")] == ["↑", "↓", "→1"]
    assert replace(METRICS["alpha_req"], target=2.5).arrow == "→2.5"


def _closure(needs: tuple[str, ...]) -> set[str]:
    found: set[str] = set()
    todo = list(needs)
    while todo:
        name = todo.pop()
        if name not in found:
            found.add(name)
            todo += METRICS[name].needs if name in METRICS else INTERMEDIATES[name]
    return found


def test_every_entry_is_consistent():
    for key, spec in METRICS.items():
        assert key == spec.name and spec.title and spec.symbol and spec.unit and spec.summary, key
        assert spec.needs and all(n in INTERMEDIATES or n in METRICS for n in spec.needs), key
        assert spec.needs_labels == ("labels" in _closure(spec.needs)), key
        assert spec.silhouette_of is None or spec.silhouette_of in spec.needs, key
        assert spec.uncertainty_of is None or spec.uncertainty_of in spec.needs, key
        assert (spec.better == "target") == (spec.target is not None), key
    assert all(dep in INTERMEDIATES for deps in INTERMEDIATES.values() for dep in deps)
    assert set(SEED_DEPENDENT) <= set(INTERMEDIATES)
    # the metrics of the layout and its clusters (the paper's four) are exactly the seeded ones
    assert SEEDED == ("ami_c1_c2", "silhouette_c1", "entropy_z3", "ami_c1_gt")


def test_batched_silhouettes_equal_each_entry_alone(blobs):
    Z, y = blobs
    cfg = EvalConfig(seeds=(0,), umap_epochs=10)
    ev = evaluate_embeddings(Z, y, metrics=["silhouette_c1", "silhouette_gt"], config=cfg)
    alone = {"silhouette_c1": {"Z": Z, "C1": ev.C1}, "silhouette_gt": {"Z": Z, "labels": y}}
    for key, values in alone.items():
        assert ev.metrics[key] == pytest.approx(METRICS[key].compute(values, cfg), abs=1e-12)
