"""sslmon.meta.plots: the outlier rule, Z3 files and their selection, clear errors; the multi-metric grids."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from helpers import AMI, ENTROPY, EPOCHS, LP, PNG_SIGNATURE, named, write_results, z3_blobs
from sslmon.meta import plots
from sslmon.meta.plots import PlotError, find_outliers, load_z3_dir, plot_grid_vs_epoch, plot_grid_vs_reference, select_snapshots
from sslmon.metrics import METRICS

matplotlib_image = pytest.importorskip("matplotlib.image")


def test_outlier_rule_flags_the_planted_far_points_and_nothing_else():
    rng = np.random.default_rng(1)
    z3 = z3_blobs(2000, rng)
    assert not find_outliers(z3).any()
    far = np.array([[30.0, 30.0, 30.0], [-25.0, 0.0, 10.0], [0.0, 40.0, -20.0]])
    mask = find_outliers(np.vstack([z3, far]))
    assert mask[-3:].all() and not mask[:-3].any()
    # the rule by hand: distance to the coordinate-wise median beyond median + 5 * 1.4826 * MAD
    line = np.zeros((11, 3))
    line[:, 0] = [-5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 30]  # median 0; d = |x|: median 3, MAD 1 -> threshold 10.413
    assert find_outliers(line).tolist() == [False] * 10 + [True]
    assert find_outliers(line, factor=0.7).tolist() == [True] + [False] * 9 + [True]  # threshold 4.04: d = 5 and 30


def test_z3_files_are_read_by_epoch_and_the_default_is_first_middle_last(z3_dir):
    snaps = load_z3_dir(z3_dir)
    assert [s.epoch for s in snaps] == [0, 20, 40]
    assert snaps[0].colour_by == "ground-truth class"
    assert [s.epoch for s in select_snapshots(snaps)] == [0, 20, 40]
    assert [s.epoch for s in select_snapshots(snaps[:2])] == [0, 20]
    assert [s.epoch for s in select_snapshots(snaps, [40])] == [40]
    with pytest.raises(PlotError, match=r"no Z3 for epoch\(s\) 7; available: 0, 20, 40"):
        select_snapshots(snaps, [7])


def test_z3_file_claiming_a_huge_array_is_one_error_not_a_memory_error(tmp_path):
    import io
    import zipfile

    from sslmon.meta.plots import PlotError, load_z3_dir

    header = b"{'descr': '<f8', 'fortran_order': False, 'shape': (100000000000, 3), }"
    header += b" " * (118 - len(header)) + b"\n"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("z3.npy", b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + b"\0" * 24)
    (tmp_path / "huge.z3.npz").write_bytes(buf.getvalue())
    with pytest.raises(PlotError, match="huge.z3.npz"):
        load_z3_dir(tmp_path)


@pytest.fixture()
def grid_runs(tmp_path: Path) -> list:
    """Two runs: simclr written in reverse epoch order with a metric unknown to the registry; moco without AMI(C1;C2)."""
    rev = slice(None, None, -1)
    simclr = write_results(tmp_path / "simclr.json", {"lp_acc": LP[rev], "entropy_z3": ENTROPY[rev], "ami_c1_c2": AMI[rev],
                                                      "my_metric": [1.0, 2.0, None, 4.0, 5.0, 6.0]}, epochs=EPOCHS[rev])
    moco = write_results(tmp_path / "moco.json", {"lp_acc": LP[::-1], "entropy_z3": ENTROPY, "ami_c1_c2": [None] * 6})
    return [named(simclr), named(moco)]


@pytest.fixture()
def drawn(monkeypatch) -> list:
    """The figures the plotting functions save (they still write their PNG files)."""
    figures = []
    save = plots._save

    def keep(fig, path):
        figures.append(fig)
        return save(fig, path)

    monkeypatch.setattr(plots, "_save", keep)
    return figures


def panel_text(ax) -> list[str]:
    return [t.get_text().replace("\n", " ") for t in ax.texts]


def test_grid_vs_epoch_has_a_panel_per_key_titled_by_the_registry_and_each_runs_values_by_epoch(tmp_path, grid_runs, drawn):
    keys = ["lp_acc", "ami_c1_c2", "entropy_z3", "my_metric"]
    out = plot_grid_vs_epoch(grid_runs, keys, tmp_path / "grid.png", title="my grid", columns=3)
    assert out == tmp_path / "grid.png" and out.read_bytes()[:8] == PNG_SIGNATURE
    (fig,) = drawn
    height, width, _ = matplotlib_image.imread(out).shape
    assert (width, height) == tuple(round(v * plots.DPI) for v in fig.get_size_inches())
    assert len(fig.axes) == len(keys)
    assert [ax.get_subplotspec().get_geometry()[:2] for ax in fig.axes] == [(2, 3)] * 4  # 3 columns, 2 rows
    assert [ax.get_title().replace("\n", " ") for ax in fig.axes] == [METRICS[k].title for k in keys[:3]] + ["my_metric"]
    assert [ax.get_ylabel() for ax in fig.axes[:3]] == [f"{METRICS[k].symbol}  ({METRICS[k].unit})" for k in keys[:3]]
    assert fig.get_suptitle() == "my grid"
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["simclr", "moco"]
    lp, ami, entropy, mine = fig.axes
    # simclr was written from epoch 100 down to 0: its line still runs by epoch, with its values re-paired to them
    (simclr_lp, moco_lp) = lp.get_lines()
    assert simclr_lp.get_xdata().tolist() == EPOCHS and simclr_lp.get_ydata().tolist() == LP
    assert moco_lp.get_ydata().tolist() == LP[::-1]
    assert [line.get_color() for line in lp.get_lines()] == ["C0", "C1"]
    assert entropy.get_lines()[1].get_ydata().tolist() == ENTROPY
    # a run without values is left out of the panel and named in it; a None value is one point fewer
    assert len(ami.get_lines()) == 1 and ami.get_lines()[0].get_ydata().tolist() == AMI
    assert panel_text(ami) == ["no values: moco"] and panel_text(lp) == []
    assert mine.get_lines()[0].get_xdata().tolist() == [0, 20, 40, 80, 100]  # None at epoch 60
    assert mine.get_lines()[0].get_ydata().tolist() == [6.0, 5.0, 4.0, 2.0, 1.0]
    assert panel_text(mine) == ["no values: moco"]


def test_grid_vs_reference_joins_each_runs_checkpoints_in_epoch_order_and_marks_the_first(tmp_path, grid_runs, drawn):
    keys = ["entropy_z3", "ami_c1_c2"]
    out = plot_grid_vs_reference(grid_runs, keys, "lp_acc", tmp_path / "vs_lp.png")
    assert out.read_bytes()[:8] == PNG_SIGNATURE
    (fig,) = drawn
    assert len(fig.axes) == 2
    assert [ax.get_title().replace("\n", " ") for ax in fig.axes] == [METRICS[k].title for k in keys]
    assert all(ax.get_xlabel() == f"{METRICS['lp_acc'].symbol}  ({METRICS['lp_acc'].unit})" for ax in fig.axes)
    assert fig.get_suptitle() == f"Metrics against {METRICS['lp_acc'].title} [lp_acc]"
    entropy, ami = fig.axes
    simclr_path, moco_path = entropy.get_lines()
    assert simclr_path.get_xdata().tolist() == LP and simclr_path.get_ydata().tolist() == ENTROPY
    assert moco_path.get_xdata().tolist() == LP[::-1] and moco_path.get_ydata().tolist() == ENTROPY
    # per run: every checkpoint, then the epoch-0 cross
    points, cross = (c.get_offsets().tolist() for c in entropy.collections[:2])
    assert sorted(points) == sorted(map(list, zip(LP, ENTROPY))) and cross == [[LP[0], ENTROPY[0]]]
    assert entropy.collections[3].get_offsets().tolist() == [[LP[-1], ENTROPY[0]]]  # moco's epoch 0
    assert len(ami.get_lines()) == 1 and panel_text(ami) == ["no values: moco"]


def test_grid_without_keys_is_an_error(tmp_path, grid_runs):
    with pytest.raises(PlotError, match="no metric keys"):
        plot_grid_vs_epoch(grid_runs, [], tmp_path / "grid.png")
    assert not (tmp_path / "grid.png").exists()
