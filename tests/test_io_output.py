"""sslmon.io.output: atomic replacement, streamed JSON Lines, refusals before any work."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from sslmon.io.output import OutputError, ResultsFile, check_target, read_regular, write_atomic


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def test_write_atomic_creates_replaces_and_keeps_permissions(tmp_path):
    target = tmp_path / "sub" / "r.json"
    write_atomic(target, "one")
    assert target.read_text() == "one"
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~_umask()  # as open() would have made it
    target.chmod(0o640)
    write_atomic(target, b"two")
    assert target.read_text() == "two" and stat.S_IMODE(target.stat().st_mode) == 0o640
    link = tmp_path / "link.json"
    link.symlink_to(target)
    write_atomic(link, "three")
    assert link.is_symlink() and target.read_text() == "three"  # the link is followed, not replaced
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["r.json"]  # no temporary file left


def test_write_atomic_to_a_full_device_is_one_output_error():
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full")
    with pytest.raises(OutputError, match="/dev/full: cannot write"):
        write_atomic(Path("/dev/full"), "x" * 100_000)


def test_check_target_refusals(tmp_path):
    (tmp_path / "in.npz").write_bytes(b"x")
    (tmp_path / "hard.npz").hardlink_to(tmp_path / "in.npz")
    for path, reason in [(tmp_path, "is a directory"), (tmp_path / "hard.npz", "is one of the inputs"),
                         (tmp_path / "in.npz" / "r.json", "is not a folder"), (Path("/proc/r.json"), "cannot write")]:
        with pytest.raises(OutputError, match=reason):
            check_target(path, [tmp_path / "in.npz"])
    check_target(tmp_path / "new" / "r.json", [tmp_path / "in.npz"])  # fine: the folder is made
    assert [p.name for p in (tmp_path / "new").iterdir()] == []  # and the probe removed


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write read-only files")
def test_check_target_refuses_a_read_only_file(tmp_path):
    (tmp_path / "r.json").write_text("{}")
    (tmp_path / "r.json").chmod(0o444)
    with pytest.raises(OutputError, match="read-only"):
        check_target(tmp_path / "r.json")


def test_results_file_streams_lines_then_replaces_with_the_document(tmp_path):
    said: list[str] = []
    out = ResultsFile(tmp_path / "r.jsonl", "jsonl", said.append)
    for i in range(3):
        out.stream(json.dumps({"i": i}) + "\n")
        assert [json.loads(line)["i"] for line in (tmp_path / "r.jsonl").read_text().splitlines()] == list(range(i + 1))
    assert out.finish('{"final": true}\n')
    assert (tmp_path / "r.jsonl").read_text() == '{"final": true}\n' and said == [] and not out.failed
    json_out = ResultsFile(tmp_path / "r.json", "json", said.append)
    json_out.stream("ignored\n")  # only JSON Lines is streamed
    assert not (tmp_path / "r.json").exists()


def test_results_file_failure_is_said_once(tmp_path):
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full")
    said: list[str] = []
    out = ResultsFile(Path("/dev/full"), "jsonl", said.append)
    out.stream("{}\n")
    assert not out.finish("{}\n") and out.failed
    assert len(said) == 1 and said[0].startswith("error: /dev/full: cannot write")


def test_read_regular_refuses_fifos_and_stops_at_the_limit(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(OSError, match="not a regular file"):
        read_regular(tmp_path / "fifo", 10)
    (tmp_path / "big").write_bytes(b"x" * 100)
    assert len(read_regular(tmp_path / "big", 10)) == 11
