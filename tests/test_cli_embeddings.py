"""`sslmon score FILE...` on embedding files, end to end through the console script."""

from __future__ import annotations

import csv
import json
import re
import subprocess

import numpy as np
import pytest

from helpers import sslmon_command, without_timings
from schema_check import check_csv, check_jsonl
from sslmon.cli import app
from sslmon.metrics import METRICS, VIEW_BASED


def _sslmon(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(sslmon_command(*args), capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_json_on_real_data_has_every_key_and_is_reproducible(fmnist_npz):
    first = _sslmon("score", str(fmnist_npz), "--format", "json", "--seed", "0", "--seeds", "0,2", "--umap-epochs", "60")
    assert first.returncode == 0, first.stderr
    doc = json.loads(first.stdout)
    assert set(doc) == {"sslmon_version", "schema_version", "config", "results", "failures", "recommendation", "reference_values"}
    (record,) = doc["results"]
    assert {"name", "path", "metrics", "errors", "timings"} <= set(record)
    computed = [m for m in METRICS if m not in VIEW_BASED]  # LiDAR needs augmented views: files have none
    assert set(record["metrics"]) == set(computed)
    assert record["errors"] == {}
    assert all(isinstance(v, float) for v in record["metrics"].values())
    # chance level of AMI is 0: pixel clusters of Fashion-MNIST carry real class information
    assert record["metrics"]["ami_c1_gt"] > 0.3
    assert record["metrics"]["knn_acc"] > 0.6
    # two evaluation seeds: the metrics are the mean of the per-seed dicts, with their spread
    assert doc["config"]["seeds"] == [0, 2] and doc["config"]["umap_epochs"] == 60 and doc["config"]["data_seed"] == 0
    assert len(record["per_seed"]) == 2
    for m in computed:
        values = [d[m] for d in record["per_seed"]]
        assert record["metrics"][m] == pytest.approx(np.mean(values), rel=1e-12)
        assert record["metrics_std"][m] == pytest.approx(np.std(values, ddof=1), abs=1e-12)
    assert record["metrics_std"]["entropy_z3"] > 0  # two layouts differ
    second = _sslmon("score", str(fmnist_npz), "--format", "json", "--seed", "0", "--seeds", "0,2", "--umap-epochs", "60")
    # byte-identical apart from the timings blocks
    assert without_timings(first.stdout) == without_timings(second.stdout)


@pytest.mark.parametrize("value", ["0", "1,1", "-1", "x"])
def test_bad_seed_lists_are_usage_errors(fmnist_npz, value, runner):
    result = runner.invoke(app, ["score", str(fmnist_npz), "--seeds", value, "--metrics", "rankme"])
    assert result.exit_code == 2
    assert "--seeds" in result.output and "Traceback" not in result.output


def test_bad_files_are_reported_in_one_line_and_others_still_scored(tmp_path):
    good = tmp_path / "good.npz"
    rng = np.random.default_rng(0)
    np.savez(good, embeddings=rng.normal(size=(80, 4)), labels=rng.integers(0, 2, 80))
    (tmp_path / "corrupt.npz").write_bytes(b"not numpy at all")
    np.savez(tmp_path / "noemb.npz", features=np.zeros((3, 3)))
    np.save(tmp_path / "wrongshape.npy", np.zeros(10))
    np.savez(tmp_path / "badlabels.npz", embeddings=np.zeros((5, 2)), labels=np.zeros(4))
    paths = [tmp_path / n for n in ["corrupt.npz", "good.npz", "noemb.npz", "wrongshape.npy", "missing.npz", "badlabels.npz"]]
    proc = _sslmon("score", *map(str, paths), "--format", "json", "--metrics", "rankme,knn_acc", "-q")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    errors = proc.stderr.strip().splitlines()
    assert len(errors) == 5
    for name, line in zip(["corrupt.npz", "noemb.npz", "wrongshape.npy", "missing.npz", "badlabels.npz"], errors):
        assert line.startswith(f"error: {tmp_path / name}: ")
    doc = json.loads(proc.stdout)
    assert [r["name"] for r in doc["results"]] == ["good"]
    assert len(doc["failures"]) == 5


def test_k_is_required_without_labels(tmp_path, runner):
    path = tmp_path / "z.npy"
    np.save(path, np.random.default_rng(0).normal(size=(60, 3)))
    result = runner.invoke(app, ["score", str(path), "--metrics", "rankme"])
    assert result.exit_code == 2
    assert "give k" in result.output
    ok = runner.invoke(app, ["score", str(path), "--metrics", "rankme", "--k", "3", "--format", "csv", "-q"])
    assert ok.exit_code == 0, ok.output
    (row,) = check_csv(ok.stdout)
    assert row["metrics.rankme"] > 1 and row["name"] == "z"


def test_ranking_output_file_and_formats(tmp_path, runner):
    rng = np.random.default_rng(0)
    collapsed = rng.normal(size=(100, 1)) @ rng.normal(size=(1, 16)) + 1e-3 * rng.normal(size=(100, 16))
    spread = rng.normal(size=(100, 16))
    np.save(tmp_path / "collapsed.npy", collapsed)
    np.save(tmp_path / "spread.npy", spread)
    out = tmp_path / "res.csv"
    args = ["score", str(tmp_path / "collapsed.npy"), str(tmp_path / "spread.npy"), "--k", "2", "--metrics", "rankme,l2_std", "-q"]
    result = runner.invoke(app, [*args, "--rank-by", "rankme", "--output", str(out)])  # files' default: not ranked
    assert result.exit_code == 0, result.output
    assert "ranked by rankme" in result.stdout
    rows = list(csv.DictReader(out.open()))
    assert [r["name"] for r in rows] == ["spread", "collapsed"]  # higher RankMe first
    assert [r["rank"] for r in rows] == ["1", "2"]
    jsonl = runner.invoke(app, [*args, "--format", "jsonl", "--rank-by", "l2_std"])
    lines = check_jsonl(jsonl.stdout)[1:]
    assert [r["name"] for r in lines] == ["spread", "collapsed"]


def test_files_are_not_ranked_by_default_and_by_entropy_when_asked(tmp_path, runner):
    """Issue 17: different models are listed in input order, none ranked or recommended, with the reason; asked,
    --rank-by entropy_z3 ranks them lowest first and recommends rank 1."""
    rng = np.random.default_rng(1)
    names = ["wide", "line", "blobs"]
    np.save(tmp_path / "wide.npy", rng.normal(size=(90, 8)))
    np.save(tmp_path / "line.npy", rng.normal(size=(90, 1)) @ rng.normal(size=(1, 8)) + 0.05 * rng.normal(size=(90, 8)))
    np.save(tmp_path / "blobs.npy", np.repeat(rng.normal(scale=5, size=(3, 8)), 30, axis=0) + rng.normal(size=(90, 8)))
    args = ["score", *(str(tmp_path / f"{n}.npy") for n in names), "--k", "3", "--seeds", "1", "--umap-epochs", "10",
            "--metrics", "entropy_z3,rankme,l2_std", "-q"]
    plain = runner.invoke(app, [*args, "-f", "json"])
    assert plain.exit_code == 0, plain.output
    doc = json.loads(plain.stdout)
    assert [(r["name"], r["rank"], r["recommended"]) for r in doc["results"]] == [(n, None, False) for n in names]
    assert doc["config"]["rank_by"] == "input" and doc["recommendation"]["name"] is None
    table = runner.invoke(app, args, env={"COLUMNS": "100"})
    assert table.exit_code == 0, table.output
    assert "not ranked (input order" in table.stdout and "✓" not in table.stdout
    assert "no recommendation: no label-free ranking beat a random pick" in " ".join(table.stdout.split())
    asked = json.loads(runner.invoke(app, [*args, "-f", "json", "--rank-by", "entropy_z3"]).stdout)
    entropy = {r["name"]: r["metrics"]["entropy_z3"] for r in doc["results"]}  # the same cached values
    by_hand = sorted(names, key=entropy.get)  # lower is better
    assert [(r["name"], r["rank"]) for r in asked["results"]] == list(zip(by_hand, [1, 2, 3]))
    assert [r["name"] for r in asked["results"] if r["recommended"]] == [by_hand[0]] == [asked["recommendation"]["name"]]


def test_usage_errors_and_help(fmnist_npz, runner):
    # an existing input: only the bad option can be what exits 2, and the message names it
    def message(result) -> str:  # Typer draws a box around usage errors: undo its borders and wrapping
        return re.sub(r"[\s│]+", " ", result.output)

    bad_rank = runner.invoke(app, ["score", str(fmnist_npz), "--rank-by", "nonsense"])
    assert bad_rank.exit_code == 2 and "'nonsense' is neither 'epoch', 'consensus', 'input' nor a metric" in message(bad_rank)
    bad_metric = runner.invoke(app, ["score", str(fmnist_npz), "--metrics", "rankme,bogus"])
    assert bad_metric.exit_code == 2 and "unknown metric(s) bogus" in message(bad_metric)
    helptext = runner.invoke(app, ["score", "--help"])
    assert helptext.exit_code == 0 and "--rank-by" in helptext.stdout
    listing = runner.invoke(app, ["metrics"])
    assert listing.exit_code == 0 and all(m in listing.stdout for m in METRICS)


def test_seeds_and_umap_epochs_from_a_yaml_config(fmnist_npz, tmp_path, runner):
    config = tmp_path / "opts.yaml"
    config.write_text("seeds: 4\numap-epochs: 30\nprecision: bf16\nrank-by: rankme\n")
    result = runner.invoke(app, ["score", str(fmnist_npz), "--config", str(config), "--metrics", "rankme", "-f", "json", "-q"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["config"]["seeds"] == [0, 1, 2, 3] and doc["config"]["umap_epochs"] == 30
    (record,) = doc["results"]
    assert len(record["per_seed"]) == 4 and record["metrics_std"]["rankme"] == 0.0
    config.write_text("seeds: [5]\nmetrics: [rankme, l2_std]\n")
    listed = runner.invoke(app, ["score", str(fmnist_npz), "--config", str(config), "-f", "json", "-q", "--rank-by", "rankme"])
    assert listed.exit_code == 0, listed.output
    doc = json.loads(listed.stdout)
    assert doc["config"]["seeds"] == [5] and set(doc["results"][0]["metrics"]) == {"rankme", "l2_std"}
