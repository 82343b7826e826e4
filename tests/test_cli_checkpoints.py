"""`sslmon score DIR` and `sslmon compare`: checkpoints through the embedding engine to ranked output."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from sslmon.models.archs import SmallConvNet
from sslmon.cli import app
from sslmon.conditions import Condition, judge, parse_condition
from sslmon.models.embed import embed_images, preprocess
from sslmon.results import Result, Run

runner = CliRunner()
FAST = ["--metrics", "rankme,l2_std,knn_acc", "-q"]  # no UMAP: keeps these tests to seconds


@pytest.fixture()
def tiny_data(tmp_path) -> str:
    """60 labelled 16x16 grayscale images (3 classes of different brightness) + 30 train images."""
    rng = np.random.default_rng(0)

    def make(n):
        labels = np.arange(n) % 3
        images = (rng.integers(0, 60, size=(n, 16, 16)) + 80 * labels[:, None, None]).astype(np.uint8)
        return images, labels

    images, labels = make(60)
    train_images, train_labels = make(30)
    path = tmp_path / "tiny.npz"
    np.savez(path, images=images, labels=labels, train_images=train_images, train_labels=train_labels)
    return f"npz:{path}"


def _write_milestones(folder: Path, epochs=(0, 2, 5)) -> None:
    folder.mkdir(exist_ok=True)
    for e in epochs:
        torch.manual_seed(e)
        model = SmallConvNet()
        torch.save({"state_dict": model.state_dict(), "epoch": e}, folder / f"ckpt_{e:04d}.pt")


@pytest.fixture()
def cache_dir(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("SSLMON_CACHE_DIR", str(folder))
    return folder


def test_folder_with_a_corrupt_file_scores_the_others_and_exits_2(tmp_path, tiny_data, cache_dir):
    ckpts = tmp_path / "ckpts"
    _write_milestones(ckpts)
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


def test_embeddings_from_cli_match_the_model(tmp_path, tiny_data, cache_dir):
    """The numbers come from the checkpoint's real embeddings: recompute rankme independently."""
    ckpts = tmp_path / "ckpts"
    _write_milestones(ckpts, epochs=(3,))
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
    s = np.linalg.svd(Z, compute_uv=False)
    p = s / s.sum() + 1e-7
    assert record["metrics"]["rankme"] == pytest.approx(np.exp(-(p * np.log(p)).sum()), rel=1e-4)
    assert record["reference"] == "train arrays"


def test_cache_hit_is_reported_and_gives_the_same_results(tmp_path, tiny_data, cache_dir):
    ckpts = tmp_path / "ckpts"
    _write_milestones(ckpts, epochs=(0, 1))
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


def test_fail_if_exit_codes_and_judged_checkpoint(tmp_path, tiny_data, cache_dir):
    ckpts = tmp_path / "ckpts"
    _write_milestones(ckpts)
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


def test_folder_yaml_and_config_file(tmp_path, tiny_data, cache_dir):
    ckpts = tmp_path / "ckpts"
    _write_milestones(ckpts, epochs=(0, 1))
    (ckpts / "sslmon.yaml").write_text("metrics: rankme\nrank-by: rankme\nlimit: 30\n")
    result = runner.invoke(app, ["score", str(ckpts), "--dataset", tiny_data, "--format", "json", "-q"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["config"]["n_samples"] == 30 and doc["config"]["metrics"] == ["rankme"]
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


def test_compare_torchvision_models_with_random_weights(tiny_data, cache_dir):
    result = runner.invoke(app, ["compare", "resnet18", "mobilenet_v3_small", "--weights", "none", "--dataset", tiny_data,
                                 "--limit", "30", "--format", "json", *FAST])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert {r["name"] for r in doc["results"]} == {"resnet18", "mobilenet_v3_small"}
    dims = {r["name"]: r["dim"] for r in doc["results"]}
    assert dims == {"resnet18": 512, "mobilenet_v3_small": 576}
    assert all(r["source"]["input_size"] == 224 for r in doc["results"])
    assert doc["config"]["entropy_bin_factor"] == 0.8
    unknown = runner.invoke(app, ["compare", "resnet19", "--weights", "none"])
    message = re.sub(r"[\s│]+", " ", unknown.output)  # without Typer's box borders and wrapping
    assert unknown.exit_code == 2 and "unknown architecture 'resnet19'; did you mean resnet18" in message


def test_conditions_parse_and_judge():
    assert parse_condition("rankme < 40") == Condition("rankme", "<", 40.0)
    assert parse_condition("knn_acc>=1e-1") == Condition("knn_acc", ">=", 0.1)
    for bad in ["rankme", "nosuch<3", "rankme<abc"]:
        with pytest.raises(ValueError):
            parse_condition(bad)
    run = Run(config={}, results=[
        Result("a", None, {"rankme": 50.0}, epoch=10),
        Result("b", None, {"rankme": 30.0}, epoch=20),
        Result("c", None, {"rankme": None}, errors={"rankme": "all embeddings are zero"}, epoch=5),
    ])
    cond = [parse_condition("rankme<40")]
    assert judge(run, cond, "best", "rankme") == []
    assert len(judge(run, cond, "latest", "rankme")) == 1  # b, epoch 20
    each = judge(run, cond, "each", "rankme")
    assert len(each) == 2 and any("undefined" in m for m in each)  # undefined never passes a gate


def test_preprocess_matches_a_manual_pipeline():
    images = torch.randint(0, 256, (4, 1, 10, 12), dtype=torch.uint8)
    out = preprocess(images, (0.5, 0.4, 0.3), (0.2, 0.25, 0.5), input_size=20)
    manual = torch.nn.functional.interpolate(images.float().repeat(1, 3, 1, 1) / 255, size=(20, 20), mode="bilinear",
                                             antialias=True, align_corners=False)
    manual = (manual - torch.tensor([0.5, 0.4, 0.3]).view(1, 3, 1, 1)) / torch.tensor([0.2, 0.25, 0.5]).view(1, 3, 1, 1)
    assert torch.allclose(out, manual, atol=1e-6)
    model = SmallConvNet(width=4).eval()
    Z = embed_images(model, images, (0.5,) * 3, (0.25,) * 3, batch_size=3)
    with torch.no_grad():
        ref = model(preprocess(images, (0.5,) * 3, (0.25,) * 3, None)).numpy()
    assert Z.shape == (4, 16) and np.allclose(Z, ref, atol=1e-6)


def test_checkpoint_json_is_identical_across_runs_apart_from_timings(tmp_path, tiny_data, cache_dir):
    ckpts = tmp_path / "ckpts"
    _write_milestones(ckpts, epochs=(0, 1))
    args = ["score", str(ckpts), "--dataset", tiny_data, "--format", "json", "--no-cache", *FAST]
    first, second = runner.invoke(app, args), runner.invoke(app, args)
    strip = lambda text: re.sub(r'"timings": \{[^}]*\}', '"timings": {}', text)
    assert first.exit_code == second.exit_code == 0
    assert strip(first.stdout) == strip(second.stdout)
