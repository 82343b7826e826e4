"""Every error sslmon raises for bad input is an SslmonError: one except clause catches them all."""

from __future__ import annotations

import pytest

import sslmon
from sslmon.io.config import ConfigError, read_yaml
from sslmon.io.datasets import DatasetError, load_dataset
from sslmon.io.inputs import InputError, load_embeddings
from sslmon.io.output import OutputError
from sslmon.io.runfile import ResultsFileError, load_run
from sslmon.io.z3file import Z3FileError, read_z3
from sslmon.meta.plots import PlotError
from sslmon.models.encoders import CheckpointError, load_checkpoint
from sslmon.watch import WatchError


@pytest.mark.parametrize("cls", [ConfigError, ResultsFileError, DatasetError, CheckpointError, InputError, OutputError, PlotError, WatchError,
                                 Z3FileError])
def test_error_types_share_the_base(cls):
    assert issubclass(cls, sslmon.SslmonError)


def test_one_except_clause_catches_each_reader_failure(tmp_path):
    junk = tmp_path / "junk"
    junk.write_bytes(b"\x00not what any reader expects")
    calls = [
        lambda: load_checkpoint(junk.with_suffix(".pt").write_bytes(junk.read_bytes()) and junk.with_suffix(".pt")),
        lambda: load_embeddings(junk.with_suffix(".npz").write_bytes(junk.read_bytes()) and junk.with_suffix(".npz")),
        lambda: load_dataset(f"npz:{tmp_path / 'missing.npz'}"),
        lambda: read_yaml(junk),
        lambda: load_run(junk),
        lambda: read_z3(junk),
    ]
    for call in calls:
        with pytest.raises(sslmon.SslmonError) as info:
            call()
        assert "\n" not in str(info.value) and str(tmp_path) in str(info.value)
