"""`sslmon plot` end to end: every figure a valid PNG, errors one clear line."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from helpers import AMI, ENTROPY, LP, PNG_SIGNATURE, write_results
from sslmon.cli import app
from sslmon.meta.plots import PlotError, make_plots

matplotlib_image = pytest.importorskip("matplotlib.image")


def test_cli_writes_every_figure_as_a_valid_png(tmp_path, z3_dir, runner):
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


def test_errors_are_one_clear_line_and_draw_nothing(tmp_path, z3_dir, monkeypatch, runner):
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
