"""`sslmon score DIR` and `sslmon compare`: checkpoints through the embedding engine to ranked output."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import SAMPLE_NAMES, SAMPLES, rankme_by_hand, run_cli, without_timings, write_milestones
from sslmon.cli import app
from sslmon.metrics import LABEL_BASED, LABEL_FREE, VIEW_BASED
from sslmon.models.archs import SmallConvNet

FAST = ["--metrics", "rankme,l2_std,knn_acc", "-q"]  # no UMAP: keeps these tests to seconds


def test_folder_with_a_corrupt_file_scores_the_others_and_exits_2(tmp_path, tiny_data, cache_dir, runner):
    ckpts = tmp_path / "ckpts"
    write_milestones(ckpts)
    (ckpts / "broken.pt").write_bytes(b"\x80\x02garbage")
    result = runner.invoke(app, ["score", str(ckpts), "--dataset", tiny_data, "--arch", "convnet-small", "--format", "json", *FAST])
    assert result.exit_code == 2, result.output
    doc = json.loads(result.stdout)
    assert sorted(r["epoch"] for r in doc["results"]) == [0, 2, 5]
    (failure,) = doc["failures"]
    assert failure["path"].endswith("broken.pt")
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and "broken.pt" in error_lines[0]
    assert "Traceback" not in result.output


def test_embeddings_from_cli_match_the_model(tmp_path, tiny_data, cache_dir, runner):
    """The numbers come from the checkpoint's real embeddings: recompute rankme independently."""
    ckpts = tmp_path / "ckpts"
    write_milestones(ckpts, epochs=(3,))
    result = runner.invoke(app, ["score", str(ckpts), "--dataset", tiny_data, "--format", "json", "--arch", "convnet-small", *FAST])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)["results"][0]
    model = SmallConvNet()
    model.load_state_dict(torch.load(ckpts / "ckpt_0003.pt", weights_only=True)["state_dict"])
    data = np.load(tiny_data[4:])
    images = torch.from_numpy(data["images"])[:, None]
    x = images.float() / 255
    mean, std = x.mean().item(), x.std(unbiased=False).item()
    with torch.no_grad():
        Z = model.eval()((x.expand(-1, 3, -1, -1) - mean) / std).numpy().astype(np.float64)
    assert record["metrics"]["rankme"] == pytest.approx(rankme_by_hand(Z), rel=1e-4)
    assert record["reference"] == "train arrays"


def test_cache_hit_is_reported_and_gives_the_same_results(tmp_path, tiny_data, cache_dir, runner):
    ckpts = tmp_path / "ckpts"
    write_milestones(ckpts, epochs=(0, 1))
    args = ["score", str(ckpts), "--dataset", tiny_data, "--format", "json", "--metrics", "rankme,l2_std"]
    first = runner.invoke(app, args)
    second = runner.invoke(app, args)
    assert first.exit_code == second.exit_code == 0
    assert "cached:" not in first.stderr
    assert second.stderr.count("cached:") == 2
    metrics = lambda r: [rec["metrics"] for rec in json.loads(r.stdout)["results"]]
    assert metrics(first) == metrics(second)
    assert len(list(cache_dir.glob("*.json"))) == 2 and not list(cache_dir.glob(".tmp-*"))
    third = runner.invoke(app, [*args, "--no-cache"])
    assert "cached:" not in third.stderr
    # a changed file is a different entry
    torch.manual_seed(99)
    torch.save({"state_dict": SmallConvNet().state_dict(), "epoch": 1}, ckpts / "ckpt_0001.pt")
    fourth = runner.invoke(app, args)
    assert fourth.stderr.count("cached:") == 1


def test_fail_if_exit_codes_and_judged_checkpoint(tmp_path, tiny_data, cache_dir, runner):
    ckpts = tmp_path / "ckpts"
    write_milestones(ckpts)
    base = ["score", str(ckpts), "--dataset", tiny_data, "--arch", "convnet-small", *FAST]
    ok = runner.invoke(app, [*base, "--fail-if", "rankme<0"])
    assert ok.exit_code == 0, ok.output
    tripped = runner.invoke(app, [*base, "--fail-if", "rankme<0", "--fail-if", "l2_std>=0"])
    assert tripped.exit_code == 1
    assert "ckpt_0005.pt" in tripped.stderr  # latest = highest epoch by default
    best = runner.invoke(app, [*base, "--fail-if", "l2_std>=0", "--judge", "best"])
    assert best.exit_code == 1
    bad = runner.invoke(app, [*base, "--fail-if", "rankme<<3"])
    assert bad.exit_code == 2 and "METRIC OP NUMBER" in bad.output


def test_folder_yaml_and_config_file(tmp_path, tiny_data, cache_dir, runner):
    ckpts = tmp_path / "ckpts"
    write_milestones(ckpts, epochs=(0, 1))
    (ckpts / "sslmon.yaml").write_text("metrics: rankme\nrank-by: rankme\nlimit: 30\n")
    result = runner.invoke(app, ["score", str(ckpts), "--dataset", tiny_data, "--format", "json", "-q"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["config"]["n_samples"] == 30 and doc["config"]["metrics"] == ["rankme", "l2_std"]  # + the collapse alarm's
    # the command line wins over the folder file
    result = runner.invoke(app, ["score", str(ckpts), "--dataset", tiny_data, "--format", "json", "-q", "--limit", "45"])
    assert json.loads(result.stdout)["config"]["n_samples"] == 45
    # --config (trusted: may name the dataset, and the documented key `format`) wins over the folder file
    user = tmp_path / "user.yaml"
    user.write_text(f"dataset: {tiny_data}\nlimit: 40\nformat: json\nquiet: true\n")
    result = runner.invoke(app, ["score", str(ckpts), "--config", str(user)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["config"]["n_samples"] == 40
    bad = tmp_path / "bad.yaml"
    bad.write_text("no_such_option: 1\n")
    result = runner.invoke(app, ["score", str(ckpts), "--config", str(bad)])
    assert result.exit_code == 2 and "no_such_option" in result.output


def test_checkpoint_json_is_identical_across_runs_apart_from_timings(tmp_path, tiny_data, cache_dir, runner):
    ckpts = tmp_path / "ckpts"
    write_milestones(ckpts, epochs=(0, 1))
    args = ["score", str(ckpts), "--dataset", tiny_data, "--format", "json", "--no-cache", *FAST]
    first, second = runner.invoke(app, args), runner.invoke(app, args)
    assert first.exit_code == second.exit_code == 0
    assert without_timings(first.stdout) == without_timings(second.stdout)


def test_unlabelled_imagefolder_has_no_label_columns_and_one_note(tmp_path: Path, capsys, monkeypatch, cache_dir) -> None:
    images = tmp_path / "images"  # a flat folder: no class subfolders, so no labels
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(60):
        Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8)).save(images / f"{i:03d}.png")
    for name in SAMPLE_NAMES[:3]:
        shutil.copy(SAMPLES / name, tmp_path / name)
    args = ["score", *(str(tmp_path / n) for n in SAMPLE_NAMES[:3]), "--dataset", f"imagefolder:{images}", "--image-size", "28",
            "--k", "10", "--seeds", "1", "--umap-epochs", "5", "--rank-by", "rankme", "-o", str(tmp_path / "r.json")]
    code, stdout, stderr = run_cli(args, capsys, monkeypatch)
    assert code == 0, stderr
    notes = [line for line in (stdout + stderr).splitlines() if "no labels" in line]
    assert len(notes) == 1 and notes[0].startswith("note: "), stdout + stderr
    assert "rankme" in stdout and "acc ↑" not in stdout and "gt ↑" not in stdout  # no knn/lp/ami_gt/silhouette_gt columns
    doc = json.loads((tmp_path / "r.json").read_text())
    for r in doc["results"]:
        assert set(r["metrics"]) == set(LABEL_FREE) - set(VIEW_BASED)  # LiDAR also needs views
        assert not set(LABEL_BASED) & set(r["errors"])
    # asked for by name, the label-based metrics share one line for the whole run
    code, stdout, stderr = run_cli([*args[:-2], "--metrics", "rankme,knn_acc,lp_acc"], capsys, monkeypatch)
    assert code == 0, stderr
    notes = [line for line in (stdout + stderr).splitlines() if "no labels" in line]
    assert notes == ["knn_acc, lp_acc undefined: no labels given"], stdout + stderr


@pytest.mark.slow
def test_later_milestones_beat_init_on_label_based_references(cache_dir, runner):
    result = runner.invoke(app, ["score", str(SAMPLES), "--limit", "1000", "--metrics", "ami_c1_gt,knn_acc",
                                      "--rank-by", "ami_c1_gt", "--format", "json", "-q"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    by_epoch = {r["epoch"]: r["metrics"] for r in doc["results"]}
    assert sorted(by_epoch) == [0, 1, 2, 3, 4, 5]
    last = max(by_epoch)
    assert by_epoch[last]["ami_c1_gt"] > by_epoch[0]["ami_c1_gt"] + 0.05
    assert by_epoch[last]["knn_acc"] > by_epoch[0]["knn_acc"] + 0.02
    assert doc["results"][-1]["epoch"] == 0  # ranked by ami_c1_gt, init comes last


def test_score_defaults_are_epoch_order_and_excluding_init(runner):
    helptext = runner.invoke(app, ["score", "--help"], env={"COLUMNS": "250", "NO_COLOR": "1"})
    text = " ".join(helptext.stdout.replace("│", " ").split())
    assert "Default: epoch for a run's milestones, the last one recommended" in text and "[default: exclude-init]" in text
    from sslmon.api import Options

    assert Options().resolve("checkpoints").rank_by == "epoch" and Options().resolve("models").rank_by == "input"


def test_exclude_init_changes_the_sample_checkpoint_ranking(cache_dir, runner):
    """alpha-ReQ of the untrained sample milestone is the closest to 1, so it ranks first unless excluded."""
    base = ["score", str(SAMPLES), "--limit", "300", "--metrics", "alpha_req", "--rank-by", "alpha_req", "-f", "json", "-q"]
    included = runner.invoke(app, [*base, "--include-init", "--fail-if", "alpha_req<2.3", "--judge", "best"])
    assert included.exit_code == 1, included.output  # the gate judges the init milestone (alpha-ReQ ~2.1)
    doc = json.loads(included.stdout)
    assert doc["results"][0]["epoch"] == 0 and doc["results"][0]["rank"] == 1
    alpha = {r["epoch"]: r["metrics"]["alpha_req"] for r in doc["results"]}
    assert min(alpha, key=lambda e: abs(alpha[e] - 1)) == 0
    excluded = runner.invoke(app, [*base, "--fail-if", "alpha_req<2.3", "--judge", "best"])  # the default
    assert excluded.exit_code == 0, excluded.output
    doc = json.loads(excluded.stdout)
    assert doc["config"]["exclude_init"] is True
    ranked = [r["epoch"] for r in doc["results"] if r["rank"] is not None]
    assert ranked == sorted((e for e in alpha if e != 0), key=lambda e: abs(alpha[e] - 1))
    assert doc["results"][-1]["epoch"] == 0 and doc["results"][-1]["rank"] is None  # still reported
