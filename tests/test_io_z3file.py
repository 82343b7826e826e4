"""Z3 files (sslmon.io.z3file): write_z3 -> read_z3 round trip, the raw archive as numpy reads it, and bad files as
one Z3FileError naming the file."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

from sslmon.io.z3file import Z3FileError, read_z3, write_z3


def test_round_trip_and_the_raw_arrays(tmp_path):
    rng = np.random.default_rng(0)
    z3 = rng.normal(size=(50, 3)).astype(np.float32)
    c1, labels = rng.integers(0, 4, 50), np.array(["cat", "dog"] * 25)
    path = tmp_path / "epoch_0007.z3.npz"
    write_z3(path, z3, epoch=7, c1=c1, c2=c1 * 2, labels=labels)
    back = read_z3(path)
    assert back.epoch == 7 and back.z3.dtype == np.float32
    for got, want in ((back.z3, z3), (back.c1, c1), (back.c2, c1 * 2), (back.labels, labels)):
        np.testing.assert_array_equal(got, want)
    with np.load(path, allow_pickle=False) as raw:  # the file is a plain .npz: numpy reads it without pickles
        assert sorted(raw.files) == ["c1", "c2", "epoch", "labels", "z3"] and int(raw["epoch"]) == 7
    unknown = tmp_path / "x.z3.npz"
    write_z3(unknown, z3)
    with np.load(unknown, allow_pickle=False) as raw:
        assert sorted(raw.files) == ["epoch", "z3"] and int(raw["epoch"]) == -1  # -1: epoch unknown
    assert read_z3(unknown).epoch is None and read_z3(unknown).c1 is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch_0007.z3.npz", "x.z3.npz"]  # no temporary files left


def test_write_refuses_arrays_that_do_not_fit(tmp_path):
    z3 = np.zeros((10, 3))
    for kwargs, match in (({"z3": np.zeros((10, 2))}, r"z3 has shape \(10, 2\)"), ({"c1": np.zeros(9, int)}, r"c1 has shape \(9,\)"),
                          ({"c1": np.zeros(10)}, "'c1' has dtype float64"), ({"epoch": -2}, "epoch is -2")):
        with pytest.raises(ValueError, match=match):
            write_z3(tmp_path / "z.z3.npz", **{"z3": z3, **kwargs})
    assert not any(tmp_path.iterdir())


def _npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


def test_bad_files_are_one_error_naming_the_file(tmp_path):
    z3 = np.zeros((4, 3))
    header = b"{'descr': '<f8', 'fortran_order': False, 'shape': (100000000000, 3), }"
    header += b" " * (118 - len(header)) + b"\n"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("z3.npy", b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + b"\0" * 24)
    (tmp_path / "huge.z3.npz").write_bytes(buf.getvalue())
    (tmp_path / "text.z3.npz").write_text("not a zip")
    cases = {
        "huge.z3.npz": "header claims shape (100000000000, 3)",
        "text.z3.npz": "not a readable .npz archive",
        _npz(tmp_path / "none.z3.npz", embeddings=z3).name: "no array 'z3' (found: embeddings)",
        _npz(tmp_path / "flat.z3.npz", z3=np.zeros(12)).name: "z3 has shape (12,), expected (n, 3)",
        _npz(tmp_path / "short.z3.npz", z3=z3, labels=np.zeros(3)).name: "labels has shape (3,), expected (4,)",
        _npz(tmp_path / "epochs.z3.npz", z3=z3, epoch=np.array([1, 2])).name: "epoch must be one integer",
        _npz(tmp_path / "fepoch.z3.npz", z3=z3, epoch=np.float64(3)).name: "epoch must be one integer",
        _npz(tmp_path / "pickle.z3.npz", z3=z3, labels=np.array([object()] * 4)).name: "object array",
        _npz(tmp_path / "strz3.z3.npz", z3=np.array([["a"] * 3] * 4)).name: "'z3' has dtype <U1, expected real numbers",
    }
    for name, expected in cases.items():
        with pytest.raises(Z3FileError) as exc:
            read_z3(tmp_path / name)
        message = str(exc.value)
        assert "\n" not in message and message.startswith(str(tmp_path / name)) and expected in message, message
