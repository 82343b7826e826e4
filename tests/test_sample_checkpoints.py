"""The shipped sample_checkpoints are real milestones: training improved the embedding."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from sslmon.cli import app

SAMPLES = Path(__file__).resolve().parents[1] / "sample_checkpoints"


def test_later_milestones_beat_init_on_label_based_references(tmp_path, monkeypatch):
    monkeypatch.setenv("SSLMON_CACHE_DIR", str(tmp_path / "cache"))
    result = CliRunner().invoke(app, ["score", str(SAMPLES), "--limit", "1000", "--metrics", "ami_c1_gt,knn_acc",
                                      "--rank-by", "ami_c1_gt", "--format", "json", "-q"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    by_epoch = {r["epoch"]: r["metrics"] for r in doc["results"]}
    assert sorted(by_epoch) == [0, 1, 2, 3, 4, 5]
    last = max(by_epoch)
    assert by_epoch[last]["ami_c1_gt"] > by_epoch[0]["ami_c1_gt"] + 0.05
    assert by_epoch[last]["knn_acc"] > by_epoch[0]["knn_acc"] + 0.02
    assert doc["results"][-1]["epoch"] == 0  # ranked by ami_c1_gt, init comes last
