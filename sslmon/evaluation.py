"""Evaluate one set of embeddings: every metric, sharing intermediate results.

``evaluate_embeddings`` is the Python entry point a training loop can call. It walks the needs graph of the
registry: the wanted metrics' ``needs`` (``sslmon.metrics.METRICS``) name the intermediates
(``sslmon.engine.intermediates.INTERMEDIATES``), and each of those that some wanted metric needs is built once,
by its registered builder, in table order: per embedding set the exact kNN graph (the distance matrix is kept for
the silhouettes when it fits), UMAP's fuzzy graph and the layouts of every seed (side by side in worker
processes), the spectrum, the cosine k-means of Z (``CZ``, the data seed), the reference split; per evaluation
seed what the seed changes (the layout Z3, k-means with k1 and k2 = 2 k1 on it) and the metrics of those. Both
silhouettes (C1 of every seed and the ground truth) come from one pass over the distances. ``metrics`` is the
mean over the seeds. A metric whose input is degenerate gets ``None`` and a reason in ``errors``; nothing here
raises for bad data.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
import time
from typing import Any, Callable

import numpy as np

from sslmon import metrics as M, rules
from sslmon._text import one_line
from sslmon.engine import pool
from sslmon.engine.arrays import ROUNDOFF_ULPS, MetricUndefined, collect_notes
from sslmon.engine.clustering import KMEANS_N_INIT, Z3_KMEANS_VARIANTS, check_clustering, silhouettes
from sslmon.engine.intermediates import INTERMEDIATES, NO_LABELS, NO_VIEWS, Step, reference, reference_split
from sslmon.metrics import METRICS
from sslmon.versions import library_versions

__all__ = ["NO_LABELS", "NO_VIEWS", "reference_split"]  # their home is sslmon.engine.intermediates


# Layout epochs of the named settings: ``paper`` (the default) is umap-learn's own rule (None: 500 epochs up to
# 10,000 points, 200 above), as the paper ran it; ``fast`` lays out 100 epochs (docs/speed.md: H(Z3) differs).
PRESETS: dict[str, int | None] = {"paper": None, "fast": 100}
DEFAULT_UMAP_EPOCHS = PRESETS["paper"]
# Evaluation seeds by default: chosen by the seed study in docs/speed.md.
DEFAULT_SEEDS = (0, 1, 2)
# Keep the (n, n) distance matrix between the kNN pass and the silhouettes up to this size.
DISTANCE_MATRIX_BYTES = 2**30
# Metrics whose value depends on the evaluation seed (through Z3 and the k-means clusters).
SEEDED = tuple(name for name, spec in METRICS.items() if spec.seeded)


@dataclass(frozen=True)
class EvalConfig:
    """Settings of one evaluation (the paper's where it fixes them).

    ``seeds``: evaluation seeds; each gives its own UMAP layout and k-means. ``seed``: the data seed
    (the reference half split of kNN and the probe); it never changes the UMAP or k-means seeds.
    """

    k: int | None = None  # k1; None = number of label classes
    seed: int = 0
    seeds: tuple[int, ...] = DEFAULT_SEEDS
    n_neighbors: int = 50  # UMAP
    umap_epochs: int | None = DEFAULT_UMAP_EPOCHS  # None = umap-learn's own rule (500 up to 10k points, else 200)
    bin_factor: float = 0.4  # entropy bin width in stds (0.8 for supervised ImageNet models)
    knn_k: int = 20
    knn_temperature: float = 0.07
    device: str = "cpu"  # for the kNN graph, silhouettes and kNN accuracy
    z3_kmeans: str = "paper"  # what cosine k-means clusters: Z3 ("paper") or Z3 minus its mean ("centred"); kmeans_points
    layout_workers: int | None = None  # processes besides this one laying out seeds; None = one per further CPU (pool)

    def __post_init__(self) -> None:
        rules.check_seeds(self.seeds)
        rules.check("umap_epochs", self.umap_epochs)
        rules.check_choice("z3_kmeans", self.z3_kmeans, Z3_KMEANS_VARIANTS)

    def as_dict(self) -> dict[str, Any]:
        """The settings, and what else determines the numbers (fixed choices, library versions): a run's ``config``."""
        return {
            "k": self.k,
            "data_seed": self.seed,
            "seeds": list(self.seeds),
            "umap_n_neighbors": self.n_neighbors,
            "umap_n_components": 3,
            "umap_epochs": self.umap_epochs,
            "preset": layout_preset(self.umap_epochs),
            "umap_knn": "exact",
            "layout": pool.LAYOUT,
            "layout_workers": pool.worker_count(len(self.seeds), self.layout_workers),
            "z3_kmeans": self.z3_kmeans,
            "kmeans_n_init": KMEANS_N_INIT,
            "entropy_bin_factor": self.bin_factor,
            "entropy_log_base": "e (nats)",
            "knn_k": self.knn_k,
            "knn_temperature": self.knn_temperature,
            "linear_probe": "logistic regression on standardised frozen features, no augmentation "
                            "(lbfgs, max_iter 1000; a record's notes say when it did not converge)",
            "alpha_req_range": M.ALPHA_REQ_RANGE,
            "alpha_req_floor": M.ALPHA_REQ_FLOOR,  # eigenvalues below this fraction of the largest are raised to it
            "roundoff_ulps": ROUNDOFF_ULPS,  # differences below this many ulps of the data's scale are round-off
            "versions": library_versions(),
        }


def layout_preset(umap_epochs: int | None) -> str:
    """The name of a layout setting: ``paper`` (umap-learn's own epochs), ``fast`` (100 epochs) or ``custom``."""
    return next((name for name, epochs in PRESETS.items() if epochs == umap_epochs), "custom")


def layout_note(umap_epochs: int | None) -> str | None:
    """One line for a run laid out at other epochs than umap-learn's own (None for the paper's setting)."""
    if umap_epochs is None:
        return None
    return (f"note: UMAP layout at {umap_epochs} epochs (preset {layout_preset(umap_epochs)}), not umap-learn's own "
            "500 up to 10,000 points / 200 above: H(Z3) is not the paper's and is comparable only with runs at the "
            "same setting and the same number of images")


@dataclass
class Evaluation:
    """Metric means over the seeds (None where undefined), their std, per-seed values, reasons, timings (s).

    ``notes``: what a metric recorded beside its value (:func:`sslmon.metrics.note`), e.g. a probe that
    did not converge. ``metrics_std``: sample standard deviation over the seeds (ddof 1; None with one seed or where
    undefined). ``per_seed``: one dict per seed, in ``seeds`` order, of every metric (seed-independent
    ones repeat). ``Z3``/``C1``/``C2``: those of the first seed.
    """

    metrics: dict[str, float | None]
    errors: dict[str, str]
    timings: dict[str, float]
    k: int | None
    reference: str | None  # which split kNN and the probe were fitted on
    metrics_std: dict[str, float | None] = field(default_factory=dict)
    per_seed: list[dict[str, float | None]] = field(default_factory=list)
    Z3: np.ndarray | None = field(default=None, repr=False)
    C1: np.ndarray | None = field(default=None, repr=False)
    C2: np.ndarray | None = field(default=None, repr=False)
    notes: dict[str, str] = field(default_factory=dict)


class _Runner:
    """Computes named quantities once, recording failures as reasons and timing each step (summed over repeats)."""

    def __init__(self, values: dict[str, Any] | None = None, errors: dict[str, str] | None = None) -> None:
        self.values: dict[str, Any] = dict(values or {})
        self.errors: dict[str, str] = dict(errors or {})
        self.notes: dict[str, str] = {}
        self.timings: dict[str, float] = {}

    def run(self, name: str, fn: Callable[[], Any], *needs: str, timing: str | None = None, timed: bool = True) -> Any:
        missing = [n for n in needs if n not in self.values]
        if missing:
            self.errors[name] = self.errors[missing[0]]
            return None
        t0 = time.perf_counter()
        try:
            with collect_notes() as notes:
                self.values[name] = fn()
            if notes:
                self.notes[name] = "; ".join(notes)
        except MetricUndefined as exc:
            self.errors[name] = str(exc)
        except Exception as exc:  # a library failing on odd data must not lose the other metrics
            self.errors[name] = f"{type(exc).__name__}: {one_line(exc)}"
        if timed:
            self._add_time(timing or name, time.perf_counter() - t0)
        return self.values.get(name)

    def _add_time(self, key: str, seconds: float) -> None:
        self.timings[key] = round(self.timings.get(key, 0.0) + seconds, 4)

    def fork(self) -> "_Runner":
        """A runner that starts from this one's values and reasons (for one seed)."""
        return _Runner(self.values, self.errors)

    def absorb_timings(self, other: "_Runner") -> None:
        for key, seconds in other.timings.items():
            self._add_time(key, seconds)
        for key, note in other.notes.items():
            self.notes.setdefault(key, note)


def _aggregate(name: str, runs: list[_Runner]) -> tuple[float | None, float | None, str | None]:
    """(mean, sample std or None, reason) of one metric over the per-seed runners; undefined if any seed is."""
    for seed_run in runs:
        if name not in seed_run.values:
            return None, None, seed_run.errors.get(name, "not computed")
    values = np.array([seed_run.values[name] for seed_run in runs], dtype=np.float64)
    std = float(values.std(ddof=1)) if len(values) > 1 else None
    return float(values.mean()), std, None


def _required(wanted: list[str]) -> set[str]:
    """The metrics and intermediates (:data:`sslmon.engine.intermediates.INTERMEDIATES`) that ``wanted`` need,
    transitively."""
    found: set[str] = set()
    todo = list(wanted)
    while todo:
        name = todo.pop()
        if name not in found:
            found.add(name)
            todo += METRICS[name].needs if name in METRICS else INTERMEDIATES[name].needs
    return found


def _build(run: _Runner, names: set[str], step: Step) -> None:
    """Build the intermediates among ``names`` with their registered builders, in table order (a need comes before
    what needs it); an input the caller did not give is undefined with its ``absent`` reason."""
    for name, item in INTERMEDIATES.items():
        if name not in names or name in run.values or name in run.errors:
            continue
        if item.given and step.inputs[item.given] is None:
            run.errors[name] = item.absent
        else:
            run.run(name, lambda: item.build(run.values, step), *item.needs, timing=item.timing, timed=item.timed)


def _compute(run: _Runner, name: str, cfg: EvalConfig) -> None:
    """Compute one metric with its registry entry, after the metrics it needs (lp_acc before its standard error)."""
    spec = METRICS[name]
    for need in spec.needs:
        if need in METRICS and need not in run.values and need not in run.errors:
            _compute(run, need, cfg)
    if name not in run.values and name not in run.errors:
        run.run(name, lambda: spec.compute(run.values, cfg), *spec.needs)


def evaluate_embeddings(
    Z: Any,
    labels: Any = None,
    train_embeddings: Any = None,
    train_labels: Any = None,
    config: EvalConfig = EvalConfig(),
    metrics: list[str] | None = None,
    views: Any = None,
) -> Evaluation:
    """Compute ``metrics`` (default: all that the inputs allow) for embeddings ``Z``, averaged over ``config.seeds``.

    ``labels`` enables the label-based metrics: without labels and without ``metrics`` they are left out
    (absent from ``metrics``, ``errors`` and ``per_seed``); asked for by name they are None with reason
    :data:`NO_LABELS`. ``views`` (n_images, n_views, d), embeddings of augmented views of some of the
    images, enables LiDAR in the same way (reason :data:`NO_VIEWS`). kNN and the probe are fitted on
    ``train_embeddings``/``train_labels`` when given, else on a stratified half
    of ``Z`` and scored on the other half. ``config.k`` defaults to the number of
    classes in ``labels``; without either, the clustering metrics are undefined.
    """
    step = Step({"Z": Z, "labels": labels, "views": views, "train_embeddings": train_embeddings,
                 "train_labels": train_labels}, config)
    absent = {name for name, item in INTERMEDIATES.items() if item.given and step.inputs[item.given] is None}
    wanted = metrics if metrics is not None else [m for m in METRICS if not _required([m]) & absent]  # what the inputs allow
    unknown = [m for m in wanted if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; valid: {list(METRICS)}")
    specs = {name: METRICS[name] for name in wanted}
    required = _required(wanted)
    r = _Runner()
    cfg = config
    V = r.values

    # ---- the inputs' checks, then what the metrics need once per embedding set (the layouts of every seed included)
    _build(r, {name for name, item in INTERMEDIATES.items() if item.always}, step)
    if "Z" in V:  # keep the kNN pass's distance matrix for the silhouettes when it fits
        step.keep_distances = (any(spec.silhouette_of for spec in specs.values())
                               and V["Z"].shape[0] ** 2 * V["Z"].itemsize <= DISTANCE_MATRIX_BYTES)
    _build(r, {name for name in required if name in INTERMEDIATES and not INTERMEDIATES[name].seeded}, step)

    # ---- per evaluation seed: what the seed changes (Z3, k-means on it) and the metrics of those
    seed_runs = []
    for seed in cfg.seeds:
        s = r.fork()
        _build(s, {name for name in required if name in INTERMEDIATES and INTERMEDIATES[name].seeded},
               replace(step, seed=seed, add_time=s._add_time))
        for name, spec in specs.items():
            if spec.seeded and not spec.silhouette_of:
                _compute(s, name, cfg)
        seed_runs.append(s)
        r.absorb_timings(s)

    # ---- every silhouette (C1 of every seed, the classes) from one pass over the distances, in registry order
    labelings: list[tuple[_Runner, str, np.ndarray]] = []
    for name in (m for m, spec in METRICS.items() if m in specs and spec.silhouette_of):
        of = METRICS[name].silhouette_of
        for owner in seed_runs if METRICS[name].seeded else [r]:
            owner.run(f"{name}_ok", lambda: check_clustering(owner.values[of], len(V["Z"])), of, "Z", timing="silhouettes")
            if f"{name}_ok" in owner.values:
                labelings.append((owner, name, owner.values[of]))
            else:
                owner.errors[name] = owner.errors[f"{name}_ok"]
    if labelings:
        stored = V["knn"].distances_full if "knn" in V else None
        r.run("silhouettes", lambda: silhouettes(V["Z"], [lab for _, _, lab in labelings], stored, device=cfg.device), "Z")
        for j, (owner, name, _) in enumerate(labelings):
            if "silhouettes" in V:
                owner.values[name] = V["silhouettes"][j]
            else:
                owner.errors[name] = r.errors["silhouettes"]
    V.pop("knn", None)  # frees the distance matrix before the probes
    V.pop("layouts", None)

    # ---- seed-independent metrics
    fitted = any(METRICS[name].train_split for name in required if name in METRICS)
    ref = reference(step.inputs, cfg.seed) if fitted and "labels" in V else None
    for name, spec in specs.items():
        if not spec.seeded and not spec.silhouette_of:
            _compute(r, name, cfg)

    # ---- mean, spread and per-seed values
    means: dict[str, float | None] = {}
    stds: dict[str, float | None] = {}
    errors: dict[str, str] = {}
    for name in wanted:
        if specs[name].seeded:
            mean, std, why = _aggregate(name, seed_runs)
        elif name in V:
            mean, std, why = float(V[name]), (0.0 if len(seed_runs) > 1 else None), None
        else:
            mean, std, why = None, None, r.errors.get(name, "not computed")
        means[name], stds[name] = mean, std
        if why is not None:
            errors[name] = why
    per_seed = [
        {name: (s.values.get(name) if specs[name].seeded else means[name]) for name in wanted} for s in seed_runs
    ]
    first = seed_runs[0].values
    return Evaluation(
        metrics=means,
        errors=errors,
        timings=r.timings,
        k=V.get("k"),
        reference=ref,
        metrics_std=stds,
        per_seed=per_seed,
        Z3=first.get("Z3"),
        C1=first.get("C1"),
        C2=first.get("C2"),
        notes={name: note for name, note in r.notes.items() if name in wanted},
    )
