"""`sslmon score --executor ray` on a local Ray instance (2 CPUs): the same JSON as the local executor, one line per
bad checkpoint."""

from __future__ import annotations

import json
import shutil

import pytest

from helpers import SAMPLES
from sslmon.cli import app

pytest.importorskip("ray")
BASE = ["--limit", "300", "--seeds", "0,1", "--umap-epochs", "30", "--no-cache", "-f", "json", "-q"]


def _comparable(doc: dict) -> dict:
    """The document without what legitimately differs between executors: timings and config.executor."""
    doc["config"].pop("executor")
    for record in doc["results"]:
        record.pop("timings")
    return doc


@pytest.mark.slow
def test_ray_gives_the_local_json(ray_session, tmp_path, runner):
    folder = tmp_path / "ckpts"
    folder.mkdir()
    for name in ("epoch_0000.pt", "epoch_0003.pt", "epoch_0005.pt"):
        shutil.copy(SAMPLES / name, folder / name)
    local = runner.invoke(app, ["score", str(folder), *BASE])
    remote = runner.invoke(app, ["score", str(folder), *BASE, "--executor", "ray"])
    assert local.exit_code == 0 and remote.exit_code == 0, (local.output, remote.output)
    local_doc, remote_doc = json.loads(local.stdout), json.loads(remote.stdout)
    assert local_doc["config"]["executor"] == "local" and remote_doc["config"]["executor"] == "ray"
    assert [r["name"] for r in remote_doc["results"]] == [r["name"] for r in local_doc["results"]]
    assert _comparable(remote_doc) == _comparable(local_doc)


@pytest.mark.slow
def test_ray_reports_a_corrupt_checkpoint_and_scores_the_others(ray_session, tmp_path, runner):
    folder = tmp_path / "ckpts"
    folder.mkdir()
    shutil.copy(SAMPLES / "epoch_0001.pt", folder / "epoch_0001.pt")
    shutil.copy(SAMPLES / "epoch_0002.pt", folder / "epoch_0002.pt")
    (folder / "epoch_0003.pt").write_bytes(b"not a checkpoint")
    result = runner.invoke(app, ["score", str(folder), *BASE, "--executor", "ray", "--metrics", "rankme"])
    assert result.exit_code == 2
    doc = json.loads(result.stdout)
    assert [r["name"] for r in doc["results"]] == ["epoch_0002.pt", "epoch_0001.pt"]  # a run's milestones: newest first
    assert [f["path"] for f in doc["failures"]] == [str(folder / "epoch_0003.pt")]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "epoch_0003.pt" in errors[0]
