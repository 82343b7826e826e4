"""Output that survives: SIGKILL after the first result, then a re-run, gives the uninterrupted file; Ctrl-C
writes what finished and exits 130; two processes can share a cache folder. Real processes on the six sample
checkpoints with cheap metrics (no UMAP)."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
from pathlib import Path

import pytest

from helpers import SAMPLE_NAMES, SAMPLES, child_env, default_sigint, sslmon_command, without_timings
from schema_check import check_jsonl
from sslmon.io.runfile import load_run
from sslmon.io.cache import ResultCache

NAMES = SAMPLE_NAMES
pytestmark = pytest.mark.slow  # each test runs sslmon in real processes on the six sample checkpoints (30-110 s)


def _command(out: Path, *extra: str, limit: int = 600) -> list[str]:
    return sslmon_command("score", str(SAMPLES), "--limit", str(limit), "--metrics", "rankme,l2_std", "-o", str(out), *extra)


def _env(cache: Path) -> dict[str, str]:
    return child_env(SSLMON_CACHE_DIR=str(cache))


def _complete_lines(path: Path) -> list[str]:
    text = path.read_text() if path.exists() else ""
    return text.splitlines()[: text.count("\n")]


def _wait_for_line(proc: subprocess.Popen, prefix: str, count: int = 1, timeout: float = 600) -> bool:
    """Read the child's stderr until its ``count``-th line starting with ``prefix`` (the event waited for); False
    when the child ended first. ``timeout`` is only a hang guard (the child is killed and the test fails), never a
    pace."""
    seen = threading.Event()

    def read() -> None:
        found = 0
        for line in proc.stderr:
            found += line.startswith(prefix)
            if found == count:
                seen.set()
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    if reader.is_alive():
        proc.kill()
        raise AssertionError(f"no {count} line(s) '{prefix}...' within {timeout} s: the run hangs")
    return seen.is_set()


def test_sigkill_after_the_first_result_then_rerun_gives_the_uninterrupted_file(tmp_path):
    out, cache = tmp_path / "out.jsonl", tmp_path / "cache"
    proc = subprocess.Popen(_command(out), env=_env(cache), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    # the second "scoring NAME" line is logged once the first result is streamed (fsync) to the output: kill then
    still_running = _wait_for_line(proc, "scoring ", count=2)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert still_running, "the run ended before it could be killed"
    assert proc.returncode == -signal.SIGKILL
    header, *kept = [json.loads(line) for line in _complete_lines(out)]  # every line left behind is a whole record
    assert header["header"] is True
    assert 1 <= len(kept) < len(NAMES)
    assert [r["name"] for r in kept] == NAMES[: len(kept)]  # streamed in the order they finished

    rerun = subprocess.run(_command(out), env=_env(cache), capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert rerun.stderr.count("cached:") >= len(kept)  # resumed from the results cache

    fresh_out = tmp_path / "fresh.jsonl"
    fresh = subprocess.run(_command(fresh_out), env=_env(tmp_path / "fresh-cache"), capture_output=True, text=True, timeout=600)
    assert fresh.returncode == 0, fresh.stderr
    assert "cached:" not in fresh.stderr
    assert without_timings(out.read_text()) == without_timings(fresh_out.read_text())
    header, *records = check_jsonl(out.read_text())
    assert load_run(out).config == header["config"] and header["config"]["rank_by"]
    assert sorted(r["name"] for r in records) == NAMES
    assert [r["rank"] for r in records] == [1, 2, 3, 4, 5, None]  # the init milestone is reported, not ranked
    assert records[-1]["epoch"] == 0
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left behind


def test_ctrl_c_writes_the_finished_results_and_exits_130(tmp_path):
    out = tmp_path / "out.json"
    proc = subprocess.Popen(_command(out, "--no-cache"), env=_env(tmp_path / "cache"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)
    assert _wait_for_line(proc, "scoring epoch_0001.pt"), "the run ended before Ctrl-C"  # epoch_0000.pt has finished
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted" in stderr
    doc = json.loads(out.read_text())
    names = [r["name"] for r in doc["results"]]
    assert 1 <= len(names) < len(NAMES) and set(names) <= set(NAMES) and "epoch_0000.pt" in names
    assert all(r["metrics"]["rankme"] > 1 for r in doc["results"])


def test_two_processes_share_a_cache_folder(tmp_path):
    cache = tmp_path / "cache"
    procs = [subprocess.Popen(_command(tmp_path / f"out{i}.json", "-q", limit=300), env=_env(cache),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    for proc in procs:
        _, stderr = proc.communicate(timeout=600)
        assert proc.returncode == 0, stderr
    docs = [without_timings((tmp_path / f"out{i}.json").read_text()) for i in range(2)]
    assert docs[0] == docs[1]
    entries = sorted(cache.glob("*.json"))
    assert len(entries) == len(NAMES) and not list(cache.glob(".tmp-*"))
    stored = ResultCache(cache)
    assert all(stored.get(entry.stem) is not None for entry in entries)  # each a whole, sound entry


@pytest.mark.parametrize("target", ["/dev/full"])
def test_full_disk_mid_stream_prints_the_results_instead(tmp_path, target):
    if not Path(target).exists():
        pytest.skip(f"{target} is not available")
    run = subprocess.run(_command(Path(target), "-f", "jsonl", "-q", limit=100), env=_env(tmp_path / "cache"),
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 2
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and target in errors[0]
    assert sorted(r["name"] for r in check_jsonl(run.stdout)[1:]) == NAMES
