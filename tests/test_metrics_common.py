"""Common tests of every registered metric, driven by the registry (in the spirit of scikit-learn's
sklearn/metrics/cluster/tests/test_common.py): each metric of ``METRICS`` gets its inputs from the registered builders
of the intermediates its ``needs`` name, and is checked for row-order invariance, invariance to renaming classes and
clusters, float32 against float64, torch tensors against numpy arrays, a clear reason on collapsed input, and a
Python float. Independent computations of each metric are in test_metrics.py and test_fidelity.py.

The UMAP layout is replaced by a fixed linear projection of Z to 3-d (the metrics of Z3 only see an (n, 3) array);
the test of the real layout is marked slow.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
import re
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import make_blobs
import torch

from sslmon.engine.intermediates import INTERMEDIATES, Step
from sslmon.engine.spectrum import spectrum
from sslmon.evaluation import EvalConfig, evaluate_embeddings
from sslmon.metrics import METRICS, MetricUndefined

DOCS = Path(__file__).resolve().parent.parent / "docs" / "metrics.md"
CFG = EvalConfig(k=4, seeds=(0,), n_neighbors=10)
N, D, N_VIEWS = 160, 8, 3
# Row-aligned values (one row per embedding), permuted and cast with Z; the labellings among them are renamed.
ROWS = ("Z", "labels", "Z3", "C1", "C2", "CZ")
LABELLINGS = ("labels", "C1", "C2", "CZ", "y_fit", "y_score")
FLOATS = ("Z", "Z3", "Z_fit", "Z_score", "views")
# The stream of cluster learnability is a seeded permutation of the rows as given: another row order is another stream.
ORDER_DEPENDENT = {"cluster_learnability"}
# Values that are defined on collapsed (identical) rows, by hand: measuring collapse is their job (docs/metrics.md).
# RankMe's p = (1, 0, ..., 0) + 1e-7 over min(n, d) = 8 singular values; the probes see one point and predict one
# class for every row: the share of one class of the scored half (20 of 80 rows each), and its standard error.
_P = np.array([1.0] + [0.0] * (D - 1)) + 1e-7
COLLAPSED = {"l2_std": 0.0, "rankme": float(np.exp(-(_P * np.log(_P)).sum())), "stable_rank": 1.0, "self_clustering": 1.0,
             "knn_acc": 0.25, "lp_acc": 0.25, "lp_acc_se": float(np.sqrt(0.25 * 0.75 / (N // 2)))}
RTOL = 1e-6


def _projection(Z: np.ndarray) -> np.ndarray:
    """A stand-in for the UMAP layout: Z times a fixed (d, 3) matrix."""
    return Z @ np.random.default_rng(7).standard_normal((Z.shape[1], 3)).astype(Z.dtype)


def _needed(metric: str) -> set[str]:
    """What ``metric`` is computed from, transitively, with the layout's own needs (kNN, fuzzy graph) left out."""
    found: set[str] = set()
    todo = [metric]
    while todo:
        name = todo.pop()
        if name not in found:
            found.add(name)
            todo += ["Z"] if name == "Z3" else METRICS[name].needs if name in METRICS else INTERMEDIATES[name].needs
    return found


def build(metric: str, Z: np.ndarray, labels: np.ndarray, views: np.ndarray) -> dict[str, Any]:
    """The intermediates ``metric`` needs (transitively), each from its registered builder in table order, the layout
    replaced by :func:`_projection`."""
    needed = _needed(metric)
    step = Step({"Z": Z, "labels": labels, "views": views, "train_embeddings": None, "train_labels": None}, CFG, seed=0)
    values: dict[str, Any] = {}
    for name, item in INTERMEDIATES.items():
        if name in needed or item.always:
            values[name] = _projection(values["Z"]) if name == "Z3" else item.build(values, step)
    return values


def compute(metric: str, values: dict[str, Any]) -> float:
    """``metric`` of ``values``, after the metrics it needs (lp_acc before its standard error)."""
    values = dict(values)
    for name in (m for m in METRICS if m in _needed(metric) and m != metric):
        values[name] = METRICS[name].compute(values, CFG)
    return METRICS[metric].compute(values, CFG)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Four float32 blobs in 8-d with their labels, and 3 augmented views of 40 images (noisy copies of rows)."""
    Z, y = make_blobs(n_samples=N, n_features=D, centers=4, cluster_std=2.5, random_state=0)
    rng = np.random.default_rng(0)
    views = Z[:40, None, :] + 0.5 * rng.standard_normal((40, N_VIEWS, D))
    return Z.astype(np.float32), y, views.astype(np.float32)


@pytest.fixture(scope="module")
def reference(data) -> dict[str, tuple[dict[str, Any], float]]:
    """Each metric's values and its value on the data."""
    out = {}
    for metric in METRICS:
        values = build(metric, *data)
        out[metric] = values, compute(metric, values)
    return out


def _permuted(values: dict[str, Any], perm: np.ndarray, view_perm: np.ndarray) -> dict[str, Any]:
    """The same values with the rows in the order ``perm`` (views: images in the order ``view_perm``)."""
    out = dict(values)
    for name in ROWS:
        if name in values:
            out[name] = values[name][perm]
    if "knn_indices" in values:  # rows move and so do the indices they hold
        inverse = np.argsort(perm)
        out["knn_indices"] = inverse[values["knn_indices"][perm]]
    if "spectrum" in values:
        out["spectrum"] = spectrum(out["Z"])
    if "views" in values:
        out["views"] = values["views"][view_perm]
    for half in ("fit", "score"):  # the reference split's halves, each in an order of its own
        if f"Z_{half}" in values:
            order = np.random.default_rng(3).permutation(len(values[f"Z_{half}"]))
            out[f"Z_{half}"], out[f"y_{half}"] = values[f"Z_{half}"][order], values[f"y_{half}"][order]
    return out


@pytest.mark.parametrize("metric", list(METRICS))
def test_value_is_a_python_float(metric, reference):
    values, value = reference[metric]
    assert type(value) is float and np.isfinite(value)


@pytest.mark.parametrize("metric", list(METRICS))
def test_row_order_does_not_change_the_value(metric, reference):
    values, value = reference[metric]
    rng = np.random.default_rng(1)
    moved = compute(metric, _permuted(values, rng.permutation(N), rng.permutation(len(values["views"]))))
    if metric in ORDER_DEPENDENT:  # another stream: another value, but not another kind of value
        assert 0 <= moved <= 1
    else:
        assert moved == pytest.approx(value, rel=RTOL, abs=1e-12)


@pytest.mark.parametrize("metric", [m for m in METRICS if set(LABELLINGS) & _needed(m)])
def test_renaming_classes_and_clusters_does_not_change_the_value(metric, reference):
    values, value = reference[metric]
    renamed = dict(values)
    for name in LABELLINGS:
        if name in values:  # a permutation of the names, spread out and shifted: 0..K-1 -> other integers
            names = np.unique(values["labels" if name.startswith("y_") else name])  # the split's halves: the classes' names
            new = 7 * np.random.default_rng(2).permutation(len(names)) + 100
            renamed[name] = new[np.searchsorted(names, values[name])]
    assert compute(metric, renamed) == pytest.approx(value, rel=RTOL, abs=1e-12)


@pytest.mark.parametrize("metric", list(METRICS))
def test_float32_and_float64_agree(metric, data):
    Z, y, views = data  # float32 numbers, exact in float64 too: only the arithmetic differs
    values = build(metric, Z, y, views)
    wide = dict(values)
    for name in FLOATS:
        if name in values:
            wide[name] = values[name].astype(np.float64)
    if "spectrum" in values:
        wide["spectrum"] = spectrum(wide["Z"])
    assert compute(metric, wide) == pytest.approx(compute(metric, values), rel=1e-4, abs=1e-6)


@pytest.mark.parametrize("metric", list(METRICS))
def test_torch_tensors_give_the_numpy_value(metric, reference):
    values, value = reference[metric]
    tensors = {name: torch.as_tensor(v) if name in FLOATS + LABELLINGS and name in values else v for name, v in values.items()}
    assert compute(metric, tensors) == pytest.approx(value, rel=RTOL, abs=1e-12)


@pytest.mark.parametrize("metric", list(METRICS))
def test_collapsed_input_is_undefined_or_the_collapse_value(metric, data):
    """Identical rows (and identical views): a reason, never a made-up number, except for the collapse measures."""
    _, y, views = data
    Z = np.tile(np.arange(1.0, D + 1, dtype=np.float32), (N, 1))
    flat = np.broadcast_to(Z[: len(views), None, :], views.shape).copy()
    try:
        value = compute(metric, build(metric, Z, y, flat))
    except MetricUndefined as exc:
        assert metric not in COLLAPSED and str(exc)
        return
    assert metric in COLLAPSED, f"{metric} gave {value} for identical rows"
    assert type(value) is float and value == pytest.approx(COLLAPSED[metric], rel=1e-6, abs=1e-12)  # float32 sums


@pytest.mark.parametrize("metric", [m for m in METRICS if METRICS[m].train_split])
def test_train_split_metrics_are_fitted_on_the_train_arrays(metric, data):
    """A train split given: kNN and the probe are fitted on it (TRAIN_SPLIT), not on half of the evaluated set."""
    Z, y, views = data
    values = build(metric, Z, y, views)
    step = Step({"Z": Z, "labels": y, "views": None, "train_embeddings": Z[::2], "train_labels": y[::2]}, CFG)
    given = dict(values)
    for name in ("Z", "labels", "Z_fit", "y_fit", "Z_score", "y_score"):
        given[name] = INTERMEDIATES[name].build(given, step)
    np.testing.assert_array_equal(given["Z_fit"], Z[::2])
    np.testing.assert_array_equal(given["Z_score"], Z)


@pytest.mark.slow
def test_metrics_of_the_real_layout_are_row_order_invariant_up_to_the_layout(data):
    """Through evaluate_embeddings: the metrics of no layout, k-means or split do not move when the rows are permuted
    (k-means++ draws its first centres by row index, the split by position, and UMAP's layout changes with the order)."""
    Z, y, views = data
    cfg = replace(CFG, umap_epochs=50)
    first = evaluate_embeddings(Z, y, config=cfg, views=views)
    perm = np.random.default_rng(4).permutation(N)
    second = evaluate_embeddings(Z[perm], y[perm], config=cfg, views=views)
    for metric, spec in METRICS.items():
        if not spec.seeded and not spec.train_split and "CZ" not in _needed(metric):
            assert second.metrics[metric] == pytest.approx(first.metrics[metric], rel=RTOL), metric


def _documented_directions() -> dict[str, str]:
    """key -> the 'better' cell of every row of docs/metrics.md's metric tables (those headed ``| key | better |``)."""
    rows: dict[str, str] = {}
    in_table = False
    for line in DOCS.read_text(encoding="utf-8").splitlines():
        if line.startswith("| key | better |"):
            in_table = True
        elif not line.startswith("|"):
            in_table = False
        elif in_table and (row := re.match(r"\| `(\w+)` \| ([^|]+) \|", line)):
            rows[row[1]] = row[2].strip()
    return rows


def test_docs_list_exactly_the_registry_with_its_directions():
    documented = _documented_directions()
    assert sorted(documented) == sorted(METRICS)
    for metric, spec in METRICS.items():
        words = f"closest to {spec.target:g}" if spec.better == "target" else spec.better
        cell = documented[metric]
        assert cell.strip("()").startswith(words), (metric, cell)
        assert cell.startswith("(") == (spec.uncertainty_of is not None), (metric, cell)  # an uncertainty, never ranked alone
