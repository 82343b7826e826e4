"""`sslmon watch`: a real watcher process on a folder that checkpoints appear in (one written slowly, one corrupt),
--until-idle, kill -9 and resume with nothing lost or doubled; JSON Lines read by `correlate`; unlabelled data
without label columns and with one note line. Cheap metrics (no UMAP) in the watcher tests."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
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


def _wait_for(out: Path, n: int, proc: subprocess.Popen, timeout: float = 600) -> None:
    """Wait for the event "the output holds ``n`` records" (or the watcher's exit, a failure); ``timeout`` is only
    a hang guard, never a pace: no test step depends on how long scoring takes."""
    deadline = time.monotonic() + timeout
    while len(_records(out)) < n:
        assert proc.poll() is None, f"watcher exited early ({proc.returncode})"
        assert time.monotonic() < deadline, f"no {n} records within {timeout} s: the watcher hangs"
        time.sleep(0.05)


def _interrupt(proc: subprocess.Popen) -> str:
    """Ctrl-C to a watcher that has written every record the test waited for: its stdout (the final table)."""
    proc.send_signal(signal.SIGINT)
    stdout, _ = proc.communicate(timeout=240)
    return stdout


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_watch_scores_each_complete_checkpoint_once(tmp_path: Path) -> None:
    folder, out, log = tmp_path / "run", tmp_path / "out.jsonl", tmp_path / "stderr.txt"
    folder.mkdir()
    proc = _watcher(folder, out, tmp_path, log)  # no --until-idle: the test ends it once every record is written
    try:
        for name in NAMES[:2]:
            shutil.copy(SAMPLES / name, folder / name)
        _wait_for(out, 2, proc)
        # a writer's pace, not a wait on the watcher: 5 pieces 0.25 s apart, well inside the 2 s a changing file
        # is given before it is reported; the watcher waits for it, never an error
        data = (SAMPLES / NAMES[2]).read_bytes()
        with open(folder / NAMES[2], "wb") as f:
            for i in range(5):
                f.write(data[i * len(data) // 5:(i + 1) * len(data) // 5])
                f.flush()
                time.sleep(0.25)
        (folder / NAMES[3]).write_bytes((SAMPLES / NAMES[3]).read_bytes()[:5000])  # corrupt: stays truncated
        for name in NAMES[4:]:
            shutil.copy(SAMPLES / name, folder / name)
        _wait_for(out, len(NAMES), proc)  # the 5 good ones and the corrupt one's failure
        stdout = _interrupt(proc)
    finally:
        proc.kill()
    stderr = log.read_text()
    assert proc.returncode == 130, stderr
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


# --------------------------------------------------------------------------- issue 21: nothing hangs, nothing doubles


def test_special_broken_and_unreadable_files_are_reported_once_and_idle_still_fires(tmp_path: Path) -> None:
    folder, out, log = tmp_path / "run", tmp_path / "out.jsonl", tmp_path / "stderr.txt"
    folder.mkdir()
    shutil.copy(SAMPLES / NAMES[1], folder / NAMES[1])
    os.mkfifo(folder / "epoch_0002.pt")  # hashing it waited for a writer forever
    (folder / "epoch_0003.pt").symlink_to("/dev/zero")  # hashing it never ended
    (folder / "epoch_0004.pt").symlink_to(tmp_path / "gone.pt")  # broken: was skipped without a word
    (folder / "loop_a.pt").symlink_to(folder / "loop_b.pt")
    (folder / "loop_b.pt").symlink_to(folder / "loop_a.pt")
    (folder / "epoch_0005.pt").symlink_to("/proc/self/mem")  # unreadable even by root (EIO): kept it "ready" forever
    bad = ["epoch_0002.pt", "epoch_0003.pt", "epoch_0004.pt", "epoch_0005.pt", "loop_a.pt", "loop_b.pt"]
    for attempt in ("first", "restart"):
        proc = _watcher(folder, out, tmp_path, log, "--until-idle", "2")
        try:
            proc.communicate(timeout=240)  # --until-idle fires: a hang fails here
        finally:
            proc.kill()
        stderr = log.read_text()
        assert proc.returncode == 0 and "Traceback" not in stderr, stderr
        errors = [line for line in stderr.splitlines() if line.startswith("error:")]
        if attempt == "first":
            assert len(errors) == len(bad), stderr
            for name in bad:
                (line,) = [line for line in errors if line.startswith(f"error: {folder / name}: ")]
            assert "not a regular file" in [line for line in errors if "epoch_0002.pt" in line][0]
            assert "broken symbolic link or link loop" in [line for line in errors if "epoch_0004.pt" in line][0]
            assert "cannot read (input/output error)" in [line for line in errors if "epoch_0005.pt" in line][0]
        else:  # the output holds them all: nothing reported or written again
            assert errors == [] and sum(line.startswith("already in the output:") for line in stderr.splitlines()) == 7
        records = _records(out)
        assert sorted(Path(r["path"]).name for r in records if r.get("failed")) == bad
        assert [r["name"] for r in records if not r.get("failed")] == [NAMES[1]]
        assert records[-1]["source"]["digest"] == _digest(SAMPLES / NAMES[1])


def test_a_second_writer_on_the_output_is_refused(tmp_path: Path, capsys, monkeypatch) -> None:
    folder, out = tmp_path / "run", tmp_path / "out.jsonl"
    folder.mkdir()
    out.write_text("")
    with open(out, "a") as holder:  # what a running watch holds: an exclusive lock on its output
        fcntl.flock(holder.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        code, stdout, stderr = run_cli(["watch", str(folder), "-o", str(out), "--until-idle", "0", "-q"], capsys, monkeypatch)
    assert code == 2 and stderr.splitlines() == [
        f"error: {out}: another process (a second sslmon watch?) is appending to it; name another output file"]
    assert out.read_text() == ""


def test_correlate_counts_records_that_two_writers_doubled_once(tmp_path: Path, capsys, monkeypatch) -> None:
    from sslmon.io.runfile import jsonl_line
    from sslmon.results import Result

    values, acc = [1.0, 3.0, 2.0, 5.0, 4.0, 7.0], [0.1, 0.4, 0.2, 0.6, 0.5, 0.7]
    lines = [jsonl_line(Result(f"epoch_{e:04d}.pt", None, {"rankme": v, "lp_acc": a}, epoch=e, source={"digest": f"{e:064x}"}))
             for e, (v, a) in enumerate(zip(values, acc))]
    doubled = tmp_path / "doubled.jsonl"
    doubled.write_text("".join(line for line in lines for _ in range(2)))  # every record twice: two watchers, no lock
    code, stdout, stderr = run_cli(["correlate", str(doubled), "--against", "lp_acc", "-f", "json"], capsys, monkeypatch)
    assert code == 0, stderr
    assert stderr.splitlines() == [f"warning: {doubled}: 6 record(s) repeat the (name, digest) of an earlier one "
                                   "(two writers on one file?); each is counted once"]
    cell = json.loads(stdout)["runs"][0]["correlations"]["rankme"]["with_init"]
    assert cell["n"] == 6 and cell["pearson_r"] == pytest.approx(pearsonr(values, acc).statistic)


def test_a_checkpoint_replaced_under_its_name_replaces_its_row(tmp_path: Path) -> None:
    folder, out, log = tmp_path / "run", tmp_path / "out.jsonl", tmp_path / "stderr.txt"
    folder.mkdir()
    shutil.copy(SAMPLES / NAMES[1], folder / NAMES[1])
    shutil.copy(SAMPLES / NAMES[2], folder / NAMES[2])
    proc = _watcher(folder, out, tmp_path, log)  # no --until-idle: the test ends it once the new record is written
    try:
        _wait_for(out, 2, proc)
        shutil.copy(SAMPLES / NAMES[5], folder / ".tmp")  # an atomic save of new weights under the old name
        os.replace(folder / ".tmp", folder / NAMES[1])
        _wait_for(out, 3, proc)
        stdout = _interrupt(proc)
    finally:
        proc.kill()
    assert proc.returncode == 130, log.read_text()
    records = _records(out)
    assert [(r["name"], r["source"]["digest"]) for r in records] == [
        (NAMES[1], _digest(SAMPLES / NAMES[1])), (NAMES[2], _digest(SAMPLES / NAMES[2])), (NAMES[1], _digest(SAMPLES / NAMES[5]))]
    rows = [line for line in stdout.splitlines() if NAMES[1] in line and line.startswith("│")]  # table rows, not the recommendation line
    assert len(rows) == 1  # the final table: the new content only
    new_l2 = records[2]["metrics"]["l2_std"]
    assert f"{new_l2:.4g}" in rows[0] and f"{records[0]['metrics']['l2_std']:.4g}" not in stdout


@pytest.mark.slow
def test_soak_kills_and_restarts_lose_and_double_nothing(tmp_path: Path) -> None:
    """bench/soak_watch.py for 30 s of writing (the long run is 30 min, figures in docs/commands.md): good, slow, truncated,
    replaced, unreadable and special files; watchers killed with SIGKILL at random; a last one with --until-idle."""
    script = Path(__file__).resolve().parents[1] / "bench" / "soak_watch.py"
    run = subprocess.run([sys.executable, str(script), "--duration", "30", "--seed", "3", "--work", str(tmp_path / "soak")],
                         env=child_env(SSLMON_CACHE_DIR=str(tmp_path / "cache")), capture_output=True, text=True, timeout=600)
    figures = json.loads(run.stdout)
    assert run.returncode == 0, (figures, run.stderr)
    assert figures["duplicated"] == 0 and figures["lost"] == 0 and figures["bad_unreported"] == 0
    assert figures["hung"] == 0 and figures["crashed"] == 0 and figures["last_exit"] == 0
    assert figures["written"] > 5 and figures["kills"] >= 1 and figures["scored"] >= figures["written"]
