"""`sslmon plot`: PNG files written and valid, the outlier rule, Z3 selection, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import z3_blobs
from sslmon.meta.plots import PlotError, find_outliers, load_z3_dir, select_snapshots


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
