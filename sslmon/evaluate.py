"""Evaluate one set of embeddings: every metric, sharing intermediate results.

``evaluate_embeddings`` is the Python entry point a training loop can call:
it runs UMAP once, k-means twice (k1, k2 = 2 k1) on the same Z3, and feeds
these to every metric that needs them. A metric whose input is degenerate gets
``None`` and a reason in ``errors``; nothing here raises for bad data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import time
from typing import Any, Callable

import numpy as np
from sklearn.model_selection import train_test_split

from sslmon import metrics as M
from sslmon._text import one_line
from sslmon.metrics import METRICS, MetricUndefined


@dataclass(frozen=True)
class EvalConfig:
    """Settings of one evaluation (all defaults are the paper's)."""

    k: int | None = None  # k1; None = number of label classes
    seed: int = 0
    n_neighbors: int = 50  # UMAP
    bin_factor: float = 0.4  # entropy bin width in stds (0.8 for supervised ImageNet models)
    knn_k: int = 20
    knn_temperature: float = 0.07
    device: str = "cpu"  # for silhouette and kNN

    def as_dict(self) -> dict[str, Any]:
        return {
            "k": self.k,
            "seed": self.seed,
            "umap_n_neighbors": self.n_neighbors,
            "umap_n_components": 3,
            "entropy_bin_factor": self.bin_factor,
            "entropy_log_base": "e (nats)",
            "knn_k": self.knn_k,
            "knn_temperature": self.knn_temperature,
            "linear_probe": "logistic regression on standardised frozen features, no augmentation",
        }


@dataclass
class Evaluation:
    """Metric values (None where undefined), reasons, timings in seconds, and Z3/C1/C2."""

    metrics: dict[str, float | None]
    errors: dict[str, str]
    timings: dict[str, float]
    k: int | None
    reference: str | None  # which split kNN and the probe were fitted on
    Z3: np.ndarray | None = field(default=None, repr=False)
    C1: np.ndarray | None = field(default=None, repr=False)
    C2: np.ndarray | None = field(default=None, repr=False)


class _Runner:
    """Computes named quantities once, recording failures as reasons and timing each step."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.errors: dict[str, str] = {}
        self.timings: dict[str, float] = {}

    def run(self, name: str, fn: Callable[[], Any], *needs: str) -> Any:
        missing = [n for n in needs if n not in self.values]
        if missing:
            self.errors[name] = self.errors[missing[0]]
            return None
        t0 = time.perf_counter()
        try:
            self.values[name] = fn()
        except MetricUndefined as exc:
            self.errors[name] = str(exc)
        except Exception as exc:  # a library failing on odd data must not lose the other metrics
            self.errors[name] = f"{type(exc).__name__}: {one_line(exc)}"
        self.timings[name] = round(time.perf_counter() - t0, 4)
        return self.values.get(name)


def reference_split(labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic stratified half split of indices 0..n-1: (fit half, score half)."""
    idx = np.arange(len(labels))
    counts = np.unique(labels, return_counts=True)[1]
    stratify = labels if counts.min() >= 2 else None
    fit, score = train_test_split(idx, test_size=0.5, random_state=seed, stratify=stratify)
    return np.sort(fit), np.sort(score)


def evaluate_embeddings(
    Z: Any,
    labels: Any = None,
    train_embeddings: Any = None,
    train_labels: Any = None,
    config: EvalConfig = EvalConfig(),
    metrics: list[str] | None = None,
) -> Evaluation:
    """Compute ``metrics`` (default: all that the inputs allow) for embeddings ``Z``.

    ``labels`` enables the label-based metrics. kNN and the probe are fitted on
    ``train_embeddings``/``train_labels`` when given, else on a stratified half
    of ``Z`` and scored on the other half. ``config.k`` defaults to the number of
    classes in ``labels``; without either, the clustering metrics are undefined.
    """
    wanted = list(METRICS) if metrics is None else metrics
    unknown = [m for m in wanted if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; valid: {list(METRICS)}")
    r = _Runner()
    cfg = config

    r.run("Z", lambda: M.check_embeddings(Z))
    has_labels = labels is not None
    if has_labels:
        r.run("labels", lambda: M.check_labels(labels, len(r.values["Z"]), min_classes=1), "Z")
    else:
        r.errors["labels"] = "no labels given"
    k = cfg.k
    if k is None and "labels" in r.values:
        k = len(np.unique(r.values["labels"]))
    if k is None:
        r.errors["k"] = "k is unknown: give k or labels"
    else:
        r.values["k"] = k

    needs_z3 = {"ami_c1_c2", "silhouette_c1", "entropy_z3", "ami_c1_gt"} & set(wanted)
    if needs_z3:
        r.run("Z3", lambda: M.umap_3d(r.values["Z"], cfg.n_neighbors, cfg.seed), "Z")
    needs_c1 = {"ami_c1_c2", "silhouette_c1", "ami_c1_gt"} & set(wanted)
    if needs_c1:
        r.run("C1", lambda: M.spherical_kmeans(r.values["Z3"], k, cfg.seed), "Z3", "k")
    if "ami_c1_c2" in wanted:
        r.run("C2", lambda: M.spherical_kmeans(r.values["Z3"], 2 * k, cfg.seed), "Z3", "k")

    V = r.values
    reference = None
    if {"knn_acc", "lp_acc", "lp_acc_se"} & set(wanted) and "labels" in V:
        if train_embeddings is not None and train_labels is not None:
            reference = "train arrays"
            r.run("Z_fit", lambda: M.check_embeddings(train_embeddings, "train embeddings"))
            r.run("y_fit", lambda: M.check_labels(train_labels, len(V["Z_fit"]), "train labels"), "Z_fit")
            V["Z_score"], V["y_score"] = V["Z"], V["labels"]
        else:
            reference = f"stratified half split of the evaluated set (seed {cfg.seed})"
            fit, score = reference_split(V["labels"], cfg.seed)
            V["Z_fit"], V["y_fit"] = V["Z"][fit], V["labels"][fit]
            V["Z_score"], V["y_score"] = V["Z"][score], V["labels"][score]

    steps: dict[str, tuple[Callable[[], float], tuple[str, ...]]] = {
        "ami_c1_c2": (lambda: M.ami_c1_c2(V["C1"], V["C2"]), ("C1", "C2")),
        "silhouette_c1": (lambda: M.silhouette_c1(V["Z"], V["C1"], device=cfg.device), ("Z", "C1")),
        "entropy_z3": (lambda: M.entropy_z3(V["Z3"], cfg.bin_factor), ("Z3",)),
        "rankme": (lambda: M.rankme(V["Z"]), ("Z",)),
        "alpha_req": (lambda: M.alpha_req(V["Z"]), ("Z",)),
        "l2_std": (lambda: M.l2_std(V["Z"]), ("Z",)),
        "ami_c1_gt": (lambda: M.ami_c1_gt(V["C1"], V["labels"]), ("C1", "labels")),
        "silhouette_gt": (lambda: M.silhouette_gt(V["Z"], V["labels"], device=cfg.device), ("Z", "labels")),
        "knn_acc": (
            lambda: M.knn_acc(V["Z_fit"], V["y_fit"], V["Z_score"], V["y_score"], cfg.knn_k, cfg.knn_temperature, device=cfg.device),
            ("labels", "y_fit"),
        ),
        "lp_acc": (lambda: M.lp_acc(V["Z_fit"], V["y_fit"], V["Z_score"], V["y_score"], seed=cfg.seed), ("labels", "y_fit")),
        "lp_acc_se": (
            lambda: M.lp_acc_se(V.get("lp_acc") if "lp_acc" in V or "lp_acc" in r.errors else r.run("lp_acc", steps["lp_acc"][0]),
                                len(V["y_score"])),
            ("labels", "y_fit"),
        ),
        "nesum": (lambda: M.nesum(V["Z"]), ("Z",)),
        "stable_rank": (lambda: M.stable_rank(V["Z"]), ("Z",)),
        "self_clustering": (lambda: M.self_clustering(V["Z"]), ("Z",)),
        "coherence": (lambda: M.coherence(V["Z"]), ("Z",)),
        "twonn_id": (lambda: M.twonn_id(V["Z"]), ("Z",)),
    }
    for name in wanted:
        fn, needs = steps[name]
        r.run(name, fn, *needs)

    return Evaluation(
        metrics={name: V.get(name) for name in wanted},
        errors={name: r.errors[name] for name in wanted if name in r.errors},
        timings=r.timings,
        k=k,
        reference=reference,
        Z3=V.get("Z3"),
        C1=V.get("C1"),
        C2=V.get("C2"),
    )
