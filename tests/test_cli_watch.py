"""`sslmon watch`: a real watcher process on a folder that checkpoints appear in (one written slowly, one corrupt),
--until-idle, kill -9 and resume with nothing lost or doubled; JSON Lines read by `correlate`; unlabelled data
without label columns and with one note line. Cheap metrics (no UMAP) in the watcher tests."""

from __future__ import annotations

import hashlib
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from scipy.stats import pearsonr

from helpers import SAMPLE_NAMES, SAMPLES, child_env, default_sigint, run_cli, sslmon_command
from schema_check import check_jsonl
from sslmon.io.runfile import load_run
from sslmon.meta.correlate import NamedRun, correlate_run

NAMES = SAMPLE_NAMES
FAST = ["--dataset", "default", "--limit", "200", "--metrics", "rankme,l2_std", "--rank-by", "l2_std", "--poll", "0.2"]


def _watcher(folder: Path, out: Path, tmp: Path, log: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(sslmon_command("watch", str(folder), *FAST, "-o", str(out), *extra),
                            env=child_env(SSLMON_CACHE_DIR=str(tmp / "cache")), stdout=subprocess.PIPE, stderr=log.open("w"), text=True,
                            preexec_fn=default_sigint)


def _records(out: Path) -> list[dict]:
    """The records of the complete lines of the JSON Lines output, each valid against the results schema, without
    the header (the first line)."""
    text = out.read_text() if out.exists() else ""
    records = check_jsonl("\n".join(text.splitlines()[: text.count("\n")]), header=False)
    assert all(r.get("header") is (i == 0 or None) for i, r in enumerate(records))
    return records[1:]


def _wait_for(out: Path, n: int, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while len(_records(out)) < n:
        assert proc.poll() is None, f"watcher exited early ({proc.returncode})"
        assert time.monotonic() < deadline, f"timed out waiting for {n} lines"
        time.sleep(0.1)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_watch_scores_each_complete_checkpoint_once(tmp_path: Path) -> None:
    folder, out, log = tmp_path / "run", tmp_path / "out.jsonl", tmp_path / "stderr.txt"
    folder.mkdir()
    proc = _watcher(folder, out, tmp_path, log, "--until-idle", "3")
    try:
        for name in NAMES[:2]:
            shutil.copy(SAMPLES / name, folder / name)
        _wait_for(out, 2, proc)
        data = (SAMPLES / NAMES[2]).read_bytes()  # written slowly in 5 pieces over ~1 s: waited for, never an error
        with open(folder / NAMES[2], "wb") as f:
            for i in range(5):
                f.write(data[i * len(data) // 5:(i + 1) * len(data) // 5])
                f.flush()
                time.sleep(0.25)
        (folder / NAMES[3]).write_bytes((SAMPLES / NAMES[3]).read_bytes()[:5000])  # corrupt: stays truncated
        for name in NAMES[4:]:
            shutil.copy(SAMPLES / name, folder / name)
        stdout, _ = proc.communicate(timeout=240)
    finally:
        proc.kill()
    stderr = log.read_text()
    assert proc.returncode == 0, stderr
    records = _records(out)
    results = [r for r in records if not r.get("failed")]
    failures = [r for r in records if r.get("failed")]
    good = [n for n in NAMES if n != NAMES[3]]
    assert sorted(r["name"] for r in results) == good  # exactly one line per good checkpoint
    for r in results:  # the resume key is the file's own SHA-256, computed here independently
        assert r["source"]["digest"] == _digest(SAMPLES / r["name"])
        assert r["epoch"] == int(r["name"][6:10])
        assert set(r["metrics"]) == {"rankme", "l2_std"} and r["errors"] == {}
    assert [f["path"] for f in failures] == [str(folder / NAMES[3])]
    assert failures[0]["digest"] == _digest(folder / NAMES[3])
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {folder / NAMES[3]}: "), stderr
    assert sum(line.startswith("scored ") for line in stderr.splitlines()) == 5
    assert all(n in stdout for n in good)  # the final table
    # correlate reads the JSON Lines: Pearson r of l2_std against rankme, by scipy on the file's values
    run = load_run(out)
    assert [f.path for f in run.failures] == [str(folder / NAMES[3])]  # failures are read back, not dropped
    by_hand = pearsonr([r["metrics"]["l2_std"] for r in results], [r["metrics"]["rankme"] for r in results])
    assert correlate_run(NamedRun("out", str(out), run), "rankme").correlations["l2_std"]["with_init"].pearson_r == pytest.approx(by_hand.statistic)


@pytest.mark.slow
def test_killed_watcher_resumes_with_nothing_lost_or_doubled(tmp_path: Path) -> None:
    folder, out = tmp_path / "run", tmp_path / "out.jsonl"
    folder.mkdir()
    for name in NAMES:
        shutil.copy(SAMPLES / name, folder / name)
    first = _watcher(folder, out, tmp_path, tmp_path / "first.txt")
    try:
        _wait_for(out, 2, first)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        first.kill()
    held = [r["name"] for r in _records(out)]
    assert 2 <= len(held) < len(NAMES)
    with out.open("a") as f:  # what a kill in the middle of a write leaves: a last line without its newline
        f.write('{"rank": null, "name": "epoch_00')
    second = _watcher(folder, out, tmp_path, tmp_path / "second.txt", "--until-idle", "3")
    try:
        second.communicate(timeout=240)
    finally:
        second.kill()
    stderr = (tmp_path / "second.txt").read_text()
    assert second.returncode == 0, stderr
    assert sorted(r["name"] for r in _records(out)) == NAMES  # nothing lost, nothing doubled
    assert out.read_text().endswith("\n")
    assert "cutting off an unfinished last line" in stderr
    assert sorted(line.split()[-1] for line in stderr.splitlines() if line.startswith("already in the output:")) == sorted(held)
    assert not any(line.startswith(f"scoring {name}") for name in held for line in stderr.splitlines())


@pytest.mark.slow
def test_ctrl_c_prints_the_table_and_fail_if_stops_at_the_newest(tmp_path: Path) -> None:
    folder, out = tmp_path / "run", tmp_path / "out.jsonl"
    folder.mkdir()
    for name in NAMES[:3]:
        shutil.copy(SAMPLES / name, folder / name)
    proc = _watcher(folder, out, tmp_path, tmp_path / "int.txt")
    try:
        _wait_for(out, 3, proc)
        proc.send_signal(signal.SIGINT)
        stdout, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130
    assert all(name in stdout for name in NAMES[:3])  # the final table
    # epoch 1 is the newest non-init checkpoint when it is scored: its l2_std (from the file) is below 1, so the
    # watcher stops there with exit 1, before epoch 2
    gate = tmp_path / "gate.jsonl"
    proc = _watcher(folder, gate, tmp_path, tmp_path / "gate.txt", "--fail-if", "l2_std<1")
    try:
        proc.communicate(timeout=240)
    finally:
        proc.kill()
    stderr = (tmp_path / "gate.txt").read_text()
    assert proc.returncode == 1, stderr
    records = _records(gate)
    assert [r["name"] for r in records] == NAMES[:2] and records[1]["metrics"]["l2_std"] < 1
    assert f"fail-if: {NAMES[1]}: l2_std = " in stderr


def test_bad_outputs_are_one_error_line_before_watching(tmp_path: Path, capsys, monkeypatch) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    garbage = tmp_path / "notes.jsonl"
    garbage.write_text("my own notes\n")
    for output, expected in ((tmp_path / "r.json", "name a .jsonl file"), (garbage, "line 1 is not an sslmon record")):
        code, _, stderr = run_cli(["watch", str(folder), "-o", str(output), "--until-idle", "0"], capsys, monkeypatch)
        assert code == 2 and len(stderr.splitlines()) == 1 and expected in stderr, stderr
    assert garbage.read_text() == "my own notes\n"  # not appended to
    code, _, stderr = run_cli(["watch", str(tmp_path / "missing")], capsys, monkeypatch)
    assert code == 2 and stderr == f"error: {tmp_path / 'missing'}: not a directory\n"
