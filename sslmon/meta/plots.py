"""PNG figures of runs (the paper's Figs 2-6) and of Z3, with matplotlib (the optional extra ``plot``).

Each figure readable on its own (title, axis units, legend naming the runs):

- ``metric_vs_epoch_<key>.png``: one metric against the training epoch, a line per run
  (Figs 2-4); with a Z3 folder, epochs whose Z3 has far outliers are marked.
- ``<key>_vs_<against>.png``: a label-free metric against the reference accuracy, a colour
  per run with Pearson r in the legend (Figs 5-6).
- grids (:func:`plot_grid_vs_epoch`, :func:`plot_grid_vs_reference`): a panel per metric in one
  figure, drawn by the same per-axis code as the two kinds above (docs/results.md's overviews).
- ``z3_epoch_<e>.png`` and ``z3_panel.png``: 3-d scatters of Z3 (the UMAP projection the
  clustering and entropy metrics use), coloured by class (else by C1), outliers marked.

matplotlib is imported only when drawing, through its object-oriented API on the Agg
canvas (``Figure.savefig``): pyplot and the user's backend are never touched.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
import re
import textwrap
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from sslmon.meta.correlate import NO_INIT, OK, Correlation, NamedRun, correlate_metric, format_p, metric_keys, ordered_keys
from sslmon.errors import SslmonError
from sslmon.metrics import LABEL_FREE, METRICS
from sslmon.io.z3file import SUFFIX, Z3FileError, read_z3

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

_SAFE_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")  # a metric key that is a plain file-name part
OUTLIER_FACTOR = 5.0
MAD_TO_STD = 1.4826  # MAD * 1.4826 estimates the std of normally distributed values
OUTLIER_RULE = (f"black × = outlier: distance to the median of Z3 > median distance + {OUTLIER_FACTOR:g} robust std "
                f"(robust std = {MAD_TO_STD} × median absolute deviation of the distances)")
DPI = 120
MAX_PLOT_VALUE = 1e100  # metric values beyond this make matplotlib's axis arithmetic overflow (sslmon's are far below)


class PlotError(SslmonError, ValueError):
    """Plots cannot be drawn (matplotlib missing, no Z3 files, ...); the message says why in one line."""


@dataclass
class Z3Snapshot:
    """One ``NAME.z3.npz`` written by ``sslmon score --save-z3``: Z3 of a checkpoint and its colours."""

    name: str
    epoch: int | None
    z3: np.ndarray
    colours: np.ndarray | None
    colour_by: str

    @property
    def label(self) -> str:
        return f"epoch {self.epoch}" if self.epoch is not None else f"{self.name} (epoch unknown)"


def _require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise PlotError("matplotlib missing: pip install sslmon[plot]") from None


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=DPI)
    return path


def _name(key: str) -> str:
    """The registry title (figure titles)."""
    return f"{METRICS[key].title} [{key}]" if key in METRICS else key


def _label(key: str) -> str:
    """The registry symbol and unit (axis labels)."""
    return f"{METRICS[key].symbol}  ({METRICS[key].unit})" if key in METRICS else key


def _subtitle(key: str) -> str:
    """The registry summary and direction (target metrics state their target in the summary)."""
    spec = METRICS.get(key)
    if spec is None:
        return key
    better = f" ({spec.direction})" if spec.better != "target" else ""
    return textwrap.fill(spec.summary + better, 110)


# --------------------------------------------------------------------------- outliers and Z3 files


def find_outliers(Z3: np.ndarray, factor: float = OUTLIER_FACTOR) -> np.ndarray:
    """Boolean mask of the far outliers of a point cloud (n, d).

    d_i = Euclidean distance of point i to the coordinate-wise median of the points;
    point i is an outlier when d_i > median(d) + ``factor`` * 1.4826 * MAD(d), with
    MAD(d) = median(|d - median(d)|): more than ``factor`` robust standard deviations
    beyond the typical distance. At factor 5 it flags about 1 in 100,000 points of a
    3-d Gaussian cloud, and none of a uniform cube.
    """
    Z3 = np.asarray(Z3, dtype=np.float64)
    d = np.linalg.norm(Z3 - np.median(Z3, axis=0), axis=1)
    centre = np.median(d)
    return d > centre + factor * MAD_TO_STD * np.median(np.abs(d - centre))


def load_z3_dir(folder: Path) -> list[Z3Snapshot]:
    """The ``*.z3.npz`` files of ``folder``, by epoch (unknown epochs last, by name)."""
    if not folder.is_dir():
        raise PlotError(f"{folder}: no such folder (write one with `sslmon score ... --save-z3 {folder}`)")
    files = sorted(folder.glob(f"*{SUFFIX}"))
    if not files:
        raise PlotError(f"{folder}: no *.z3.npz files (write them with `sslmon score ... --save-z3 {folder}`)")
    snapshots = []
    for path in files:
        try:
            saved = read_z3(path)
        except Z3FileError as exc:
            raise PlotError(str(exc)) from None
        source = "labels" if saved.labels is not None else "c1" if saved.c1 is not None else None
        colours = getattr(saved, source) if source else None
        colour_by = {"labels": "ground-truth class", "c1": "k-means cluster C1", None: ""}[source]
        snapshots.append(Z3Snapshot(path.name.removesuffix(SUFFIX), saved.epoch, np.asarray(saved.z3, dtype=np.float64),
                                    colours, colour_by))
    return sorted(snapshots, key=lambda s: (s.epoch is None, s.epoch or 0, s.name))


def select_snapshots(snapshots: list[Z3Snapshot], epochs: Sequence[int] | None = None) -> list[Z3Snapshot]:
    """The snapshots of ``epochs``; by default the first, middle and last (of at most three distinct)."""
    if epochs is None:
        picks = sorted({0, len(snapshots) // 2, len(snapshots) - 1})
        return [snapshots[i] for i in picks]
    by_epoch = {s.epoch: s for s in snapshots if s.epoch is not None}
    missing = [e for e in epochs if e not in by_epoch]
    if missing:
        available = ", ".join(map(str, by_epoch)) or "none (epochs unknown)"
        raise PlotError(f"no Z3 for epoch(s) {', '.join(map(str, missing))}; available: {available}")
    return [by_epoch[e] for e in epochs]


# --------------------------------------------------------------------------- metric figures


def _series(named: NamedRun, key: str) -> tuple[list[int], list[float]]:
    """(epochs, values) of the results with an epoch and a value for ``key``, by epoch."""
    run = named.run
    points = sorted((e, v) for e, v in zip(run.epochs(), run.values(key)) if e is not None and v is not None)
    return [e for e, _ in points], [v for _, v in points]


def _pairs(named: NamedRun, key: str, against: str) -> list[tuple[float, float, int | None]]:
    """(reference, metric, epoch) of the results with both values."""
    run = named.run
    return [(x, y, e) for x, y, e in zip(run.values(against), run.values(key), run.epochs()) if x is not None and y is not None]


def _note_missing(ax: Axes, missing: list[str]) -> None:
    """Name, inside the axes, the runs that have no point on it."""
    if missing:
        ax.text(0.02, 0.98, textwrap.fill("no values: " + ", ".join(missing), 40), transform=ax.transAxes,
                fontsize=7, color="0.4", va="top")


def _draw_vs_epoch(ax: Axes, runs: list[NamedRun], key: str) -> None:
    """One line per run (colour ``C<index>``, label the run name) of ``key`` against epoch; runs without values are noted."""
    from matplotlib.ticker import MaxNLocator

    missing = []
    for i, run in enumerate(runs):
        epochs, values = _series(run, key)
        if epochs:
            ax.plot(epochs, values, marker="o", markersize=4, color=f"C{i}", label=run.name)
        else:
            missing.append(run.name)
    _note_missing(ax, missing)
    ax.set_xlabel("epoch")
    ax.set_ylabel(_label(key))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)


def _draw_vs_reference(ax: Axes, runs: list[NamedRun], key: str, against: str,
                       label: Callable[[NamedRun], str], label_epochs: bool) -> None:
    """One colour per run (``C<index>``) of ``key`` against ``against``, a point per checkpoint with both values.

    ``label_epochs``: write each point's epoch beside it; else join the points in epoch order
    (the path of training) and mark the first epoch's point with a cross. Runs without points are noted.
    """
    missing = []
    for i, run in enumerate(runs):
        points = _pairs(run, key, against)
        if not points:
            missing.append(run.name)
            continue
        xs, ys, _ = zip(*points)
        ax.scatter(xs, ys, color=f"C{i}", s=40 if label_epochs else 14, label=label(run))
        if label_epochs:
            for x, y, e in points:
                if e is not None:
                    ax.annotate(str(e), (x, y), xytext=(4, 3), textcoords="offset points", fontsize=7, color=f"C{i}")
            continue
        path = sorted((e, x, y) for x, y, e in points if e is not None)
        if path:
            _, px, py = zip(*path)
            ax.plot(px, py, color=f"C{i}", alpha=0.3)
            ax.scatter(px[:1], py[:1], marker="x", s=50, color=f"C{i}")
    _note_missing(ax, missing)
    ax.set_xlabel(_label(against))
    ax.set_ylabel(_label(key))
    ax.grid(alpha=0.3)


def plot_metric_vs_epoch(runs: list[NamedRun], key: str, out_dir: Path, outlier_epochs: dict[int, int] | None = None) -> Path:
    """``metric_vs_epoch_<key>.png``: the metric against epoch, one line per run.

    ``outlier_epochs`` (epoch -> number of Z3 outliers) adds a dotted vertical line per epoch.
    """
    fig = _figure(8, 5)
    ax = fig.add_subplot()
    _draw_vs_epoch(ax, runs, key)
    if outlier_epochs:
        counts = ", ".join(f"{e} ({n})" for e, n in sorted(outlier_epochs.items()))
        label = textwrap.fill(f"epochs whose Z3 (--z3) has outliers (count): {counts}", 70)
        for j, epoch in enumerate(sorted(outlier_epochs)):
            ax.axvline(epoch, color="black", alpha=0.5, linestyle=":", linewidth=1.5, label=None if j else label)
    fig.legend(loc="outside lower center", ncols=min(3, len(runs) + bool(outlier_epochs)), fontsize=9)
    ax.set_title(_subtitle(key), fontsize=9, color="0.3")
    fig.suptitle(f"{_name(key)} during training")
    return _save(fig, out_dir / f"metric_vs_epoch_{key}.png")


def _legend_stats(c: dict[str, Correlation]) -> str:
    """``r = +0.83 (p=0.042), w/o init r = -0.82 (p=0.087), n = 6``; a status instead of r where undefined."""

    def one(x: Correlation) -> str:
        return f"r = {x.pearson_r:+.2f} ({format_p(x.pearson_p)})" if x.status == OK else x.status

    text = one(c["with_init"])
    if c["without_init"].status != NO_INIT:
        text += f", w/o init {one(c['without_init'])}"
    return f"{text}, n = {c['with_init'].n}"


def plot_metric_vs_reference(runs: list[NamedRun], key: str, against: str, out_dir: Path) -> Path:
    """``<key>_vs_<against>.png``: the metric against the reference, a colour per run, Pearson r in the legend.

    Each point is a checkpoint, annotated with its epoch.
    """
    fig = _figure(8, 5.5)
    ax = fig.add_subplot()
    _draw_vs_reference(ax, runs, key, against, lambda run: f"{run.name}: {_legend_stats(correlate_metric(run.run, key, against))}",
                       label_epochs=True)
    fig.legend(loc="outside lower center", title="run: Pearson r over its checkpoints (point labels: epoch)",
               fontsize=9, title_fontsize=9)
    ax.set_title(_subtitle(key), fontsize=9, color="0.3")
    fig.suptitle(f"{_name(key)} against {_name(against)}")
    return _save(fig, out_dir / f"{key}_vs_{against}.png")


def _grid(runs: list[NamedRun], keys: Sequence[str], columns: int, draw: Callable[[Axes, str], None],
          title: str, legend_title: str | None) -> Figure:
    """A figure with one panel per key (``columns`` per row), titled by the registry, and one legend naming the runs."""
    from matplotlib.lines import Line2D

    if not keys:
        raise PlotError("no metric keys to draw")
    cols = min(columns, len(keys))
    rows = -(-len(keys) // cols)
    fig = _figure(3.4 * cols, 2.9 * rows + 0.9)
    for i, key in enumerate(keys):
        ax = fig.add_subplot(rows, cols, i + 1)
        draw(ax, key)
        ax.set_title(textwrap.fill(METRICS[key].title if key in METRICS else key, 32), fontsize=10)
        ax.yaxis.label.set_fontsize(8)
        ax.xaxis.label.set_fontsize(8)
        ax.tick_params(labelsize=7)
    handles = [Line2D([], [], marker="o", color=f"C{i}", label=run.name) for i, run in enumerate(runs)]
    fig.legend(handles=handles, loc="outside lower center", ncols=max(1, len(runs)), title=legend_title,
               fontsize=9, title_fontsize=9)
    fig.suptitle(title)
    return fig


def plot_grid_vs_epoch(runs: list[NamedRun], keys: Sequence[str], out_path: Path, title: str = "Metrics during training",
                       columns: int = 5) -> Path:
    """``out_path`` (PNG): a panel per metric key against epoch, one line per run (colour ``C<index>`` in every panel).

    Panels are titled by the registry's title, y axes by its symbol and unit; a run without values
    for a key is left out of that panel and named in it.
    """
    _require_matplotlib()
    fig = _grid(runs, keys, columns, lambda ax, key: _draw_vs_epoch(ax, runs, key), title, None)
    return _save(fig, out_path)


def plot_grid_vs_reference(runs: list[NamedRun], keys: Sequence[str], against: str, out_path: Path,
                           title: str | None = None, columns: int = 5) -> Path:
    """``out_path`` (PNG): a panel per metric key against ``against``; per run, its checkpoints joined in epoch order
    and its first epoch marked with a cross. Panels and missing runs as in :func:`plot_grid_vs_epoch`.
    """
    _require_matplotlib()
    fig = _grid(runs, keys, columns, lambda ax, key: _draw_vs_reference(ax, runs, key, against, lambda run: run.name, False),
                title or f"Metrics against {_name(against)}", "× = first epoch (untrained at epoch 0); lines join consecutive epochs")
    return _save(fig, out_path)


# --------------------------------------------------------------------------- Z3 figures


def _class_colours(n: int) -> np.ndarray:
    """``n`` distinct RGBA colours: tab10 or tab20 up to 20 classes, else evenly along turbo."""
    from matplotlib import colormaps

    if n <= 20:
        return colormaps["tab10" if n <= 10 else "tab20"](np.arange(n))
    return colormaps["turbo"](np.linspace(0, 1, n))


def _scatter_z3(ax: Axes, snap: Z3Snapshot, mask: np.ndarray) -> None:
    """Draw one Z3 cloud on a 3-d axis: inliers small and coloured, outliers as black crosses."""
    if snap.colours is None:
        colours: Any = "C0"
    else:
        classes, index = np.unique(snap.colours, return_inverse=True)
        colours = _class_colours(len(classes))[index][~mask]
    size = float(np.clip(6000 / len(snap.z3), 1, 8))
    ax.scatter(*snap.z3[~mask].T, c=colours, s=size, alpha=0.7, linewidths=0)
    if mask.any():
        ax.scatter(*snap.z3[mask].T, marker="x", s=40, color="black", linewidths=1.5, depthshade=False)
    for axis, name in zip("xyz", ("UMAP 1", "UMAP 2", "UMAP 3")):
        getattr(ax, f"set_{axis}label")(name, fontsize=8, labelpad=-2)
    ax.tick_params(labelsize=6, pad=0)
    ax.set_box_aspect(None, zoom=0.85)  # room for the axis labels


def _z3_key(fig: Figure, snap: Z3Snapshot, axes: Any) -> None:
    """Legend of the classes (up to 20, else a colour bar of the class index) and of the outlier marker."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import ListedColormap, Normalize
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], marker="x", color="black", linestyle="", markersize=7, label="outlier")]
    title = None
    if snap.colours is not None:
        classes = np.unique(snap.colours)
        table = _class_colours(len(classes))
        if len(classes) <= 20:
            handles = [Line2D([], [], marker="o", linestyle="", color=c, label=str(v)) for v, c in zip(classes, table)] + handles
            title = snap.colour_by
        else:
            bar = fig.colorbar(ScalarMappable(Normalize(0, len(classes) - 1), ListedColormap(table)), ax=axes, shrink=0.6)
            bar.set_label(f"{snap.colour_by} (index)", fontsize=8)
            bar.ax.tick_params(labelsize=8)
    fig.legend(handles=handles, loc="outside right center", title=title, fontsize=8, title_fontsize=8)


def _colour_note(snap: Z3Snapshot) -> str:
    return f"colour: {snap.colour_by}" if snap.colour_by else "no labels or clusters saved: one colour"


def plot_z3(snap: Z3Snapshot, out_dir: Path) -> Path:
    """``z3_epoch_<e>.png`` (``z3_<name>.png`` for an unknown epoch): one Z3 in 3-d, outliers marked."""
    mask = find_outliers(snap.z3)
    fig = _figure(8, 6)
    ax = fig.add_subplot(projection="3d")
    _scatter_z3(ax, snap, mask)
    _z3_key(fig, snap, ax)
    fig.suptitle(f"Z3 (UMAP 3-d of the embeddings) at {snap.label}: {len(snap.z3)} points, {int(mask.sum())} outliers")
    ax.set_title(textwrap.fill(f"{_colour_note(snap)}; {OUTLIER_RULE}", 100), fontsize=8, color="0.3")
    stem = f"z3_epoch_{snap.epoch}" if snap.epoch is not None else f"z3_{snap.name}"
    return _save(fig, out_dir / f"{stem}.png")


def plot_z3_panel(snapshots: list[Z3Snapshot], out_dir: Path, columns: int = 3, file_name: str = "z3_panel.png") -> Path:
    """``file_name`` in ``out_dir``: the chosen Z3 snapshots side by side (at most ``columns`` per row, rows filled evenly)."""
    rows = -(-len(snapshots) // columns)
    cols = -(-len(snapshots) // rows)  # 4 snapshots: 2 x 2, not 3 + 1
    fig = _figure(4.5 * cols + 1.5, 4.8 * rows + 0.8)
    axes = []
    for i, snap in enumerate(snapshots):
        ax = fig.add_subplot(rows, cols, i + 1, projection="3d")
        mask = find_outliers(snap.z3)
        _scatter_z3(ax, snap, mask)
        ax.set_title(f"{snap.label}: {int(mask.sum())} outliers", fontsize=10)
        axes.append(ax)
    _z3_key(fig, snapshots[-1], axes)
    note = textwrap.fill(f"{_colour_note(snapshots[-1])}; {OUTLIER_RULE}", int(10 * fig.get_figwidth()))
    fig.suptitle(f"Z3 (UMAP 3-d of the embeddings) during training\n{note}", fontsize=10)
    return _save(fig, out_dir / file_name)


# --------------------------------------------------------------------------- all figures


def make_plots(
    runs: list[NamedRun],
    out_dir: Path,
    against: str = "lp_acc",
    z3_dir: Path | None = None,
    epochs: Sequence[int] | None = None,
    log: Callable[[str], None] | None = None,
) -> list[Path]:
    """Write every figure for ``runs`` (and the Z3 files of ``z3_dir``) to ``out_dir``; return their paths.

    Metrics without a value at any epoch get no epoch figure; label-free metrics get a
    figure against ``against`` when some run has both. Raises PlotError before drawing
    anything if matplotlib is missing or the Z3 folder or ``epochs`` cannot be used.
    """
    _require_matplotlib()
    for run in runs:
        for key in metric_keys(run.run):
            if not _SAFE_KEY.fullmatch(key):
                raise PlotError(f"{run.path}: metric key {key!r} cannot be part of a file name "
                                "(letters, digits, '_', '-' and '.' only)")
            values = [v for v in run.run.values(key) if v is not None]
            if values and max(abs(v) for v in values) > MAX_PLOT_VALUE:
                raise PlotError(f"{run.path}: metric {key} holds {max(values, key=abs):g}, beyond the +-{MAX_PLOT_VALUE:g} "
                                "an axis can show; not an sslmon value")
    snapshots = load_z3_dir(z3_dir) if z3_dir is not None else []
    chosen = select_snapshots(snapshots, epochs) if snapshots else []
    outlier_epochs = {s.epoch: int(n) for s in snapshots if s.epoch is not None and (n := find_outliers(s.z3).sum())}
    out_dir.mkdir(parents=True, exist_ok=True)
    keys = ordered_keys(k for run in runs for k in metric_keys(run.run))
    written = []
    for key in keys:
        if any(_series(run, key)[0] for run in runs):
            written.append(plot_metric_vs_epoch(runs, key, out_dir, outlier_epochs))
        elif log:
            log(f"no {key} values at a known epoch: no metric_vs_epoch_{key}.png")
    for key in (k for k in keys if k in LABEL_FREE and k != against):
        if any(_pairs(run, key, against) for run in runs):
            written.append(plot_metric_vs_reference(runs, key, against, out_dir))
        elif log:
            log(f"no checkpoint has both {key} and {against}: no {key}_vs_{against}.png")
    written += [plot_z3(snap, out_dir) for snap in chosen]
    if chosen:
        written.append(plot_z3_panel(chosen, out_dir))
    return written
