"""`sslmon plot`: PNG files written and valid, the outlier rule, Z3 selection, clear errors."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from sslmon.cli import app
from sslmon.meta.plots import PlotError, find_outliers, load_z3_dir, make_plots, select_snapshots
from sslmon.io.z3file import write_z3
from test_meta_correlate import AMI, ENTROPY, LP, write_results

matplotlib_image = pytest.importorskip("matplotlib.image")
runner = CliRunner()
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def blobs(n: int, rng: np.random.Generator) -> np.ndarray:
    """A UMAP-like Z3: four tight clusters at the corners of a tetrahedron, 3 units apart."""
    centres = np.array([[0, 0, 0], [3, 0, 0], [1.5, 2.6, 0], [1.5, 0.9, 2.4]])
    return centres[rng.integers(0, 4, n)] + rng.normal(0, 0.4, (n, 3))


@pytest.fixture()
def z3_dir(tmp_path: Path) -> Path:
    """Three Z3 files as `sslmon score --save-z3` writes them; epoch 20 has three planted far points."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "z3"
    folder.mkdir()
    for epoch in (0, 20, 40):
        z3 = blobs(300, rng)
        if epoch == 20:
            z3[:3] += [[40, 0, 0], [0, -35, 0], [0, 0, 50]]
        labels = rng.integers(0, 10, 300)
        write_z3(folder / f"epoch_{epoch:04d}.z3.npz", z3, epoch=epoch, c1=labels % 4, c2=labels % 8, labels=labels)
    return folder


def test_outlier_rule_flags_the_planted_far_points_and_nothing_else():
    rng = np.random.default_rng(1)
    z3 = blobs(2000, rng)
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


def test_cli_writes_every_figure_as_a_valid_png(tmp_path, z3_dir):
    run_a = write_results(tmp_path / "simclr.json", {"lp_acc": LP, "entropy_z3": ENTROPY, "ami_c1_c2": AMI})
    run_b = write_results(tmp_path / "moco.json", {"lp_acc": LP[::-1], "entropy_z3": ENTROPY, "ami_c1_c2": [None] * 6})
    out = tmp_path / "figures"
    res = runner.invoke(app, ["plot", str(run_a), str(run_b), "--out", str(out), "--z3", str(z3_dir), "--epochs", "0,20"])
    assert res.exit_code == 0, res.output
    written = [Path(line) for line in res.stdout.splitlines()]
    assert sorted(p.name for p in written) == sorted([
        "metric_vs_epoch_lp_acc.png", "metric_vs_epoch_entropy_z3.png", "metric_vs_epoch_ami_c1_c2.png",
        "entropy_z3_vs_lp_acc.png", "ami_c1_c2_vs_lp_acc.png",
        "z3_epoch_0.png", "z3_epoch_20.png", "z3_panel.png",
    ])
    for path in written:
        assert path.read_bytes()[:8] == PNG_SIGNATURE
        height, width, _ = matplotlib_image.imread(path).shape
        assert 600 <= width <= 2400 and 500 <= height <= 2000, (path.name, width, height)


def test_errors_are_one_clear_line_and_draw_nothing(tmp_path, z3_dir, monkeypatch):
    results = write_results(tmp_path / "run.json", {"lp_acc": LP, "rankme": AMI})
    out = tmp_path / "figures"
    res = runner.invoke(app, ["plot", str(results), "--out", str(out), "--z3", str(tmp_path / "nowhere")])
    assert res.exit_code == 2
    assert res.stderr.strip() == f"error: {tmp_path / 'nowhere'}: no such folder (write one with `sslmon score ... --save-z3 {tmp_path / 'nowhere'}`)"
    res = runner.invoke(app, ["plot", str(results), "--out", str(out), "--z3", str(z3_dir), "--epochs", "5,20"])
    assert res.exit_code == 2 and "no Z3 for epoch(s) 5; available: 0, 20, 40" in res.stderr
    res = runner.invoke(app, ["plot", str(results), "--out", str(out), "--z3", str(z3_dir), "--epochs", "first"])
    assert res.exit_code == 2 and "not a comma-separated list of epochs" in res.output
    res = runner.invoke(app, ["plot", str(results), "--out", str(out), "--epochs", "0"])
    assert res.exit_code == 2 and "--z3" in res.output
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(PlotError, match="no \\*.z3.npz files"):
        make_plots([], out, z3_dir=empty)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
    with pytest.raises(PlotError, match=r"^matplotlib missing: pip install sslmon\[plot\]$"):
        make_plots([], out)
    assert not out.exists()


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
