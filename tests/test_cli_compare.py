"""`sslmon compare`: torchvision models by name with random or downloaded weights, offline, end to end."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from helpers import CHEAP_JSON, error_lines, serve_weights
from sslmon.cli import app


def test_cli_compare_offline_names_the_missing_file_and_scores_the_cached_model(tmp_path, tiny_data, monkeypatch, runner):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    folder = tmp_path / "torch" / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    torch.manual_seed(0)
    # a cached file whose name carries the hash prefix of its content (else it is refused as corrupt)
    name = serve_weights(folder, "https://download.pytorch.org/models", torchvision.models.squeezenet1_1().state_dict(), monkeypatch)
    cached = folder / name
    url = torchvision.models.MobileNet_V3_Small_Weights.DEFAULT.url
    result = runner.invoke(app, ["compare", "squeezenet1_1", "mobilenet_v3_small", "--dataset", tiny_data, "--offline",
                                 "--k", "3", *CHEAP_JSON])
    assert result.exit_code == 2
    (line,) = error_lines(result)
    assert line.startswith("error: mobilenet_v3_small: pretrained weights not cached and downloads are off")
    assert Path(url).name in line and str(cached.parent) in line and url in line
    assert [r["name"] for r in json.loads(result.stdout)["results"]] == ["squeezenet1_1"]


def test_cli_compare_downloads_and_keeps_stdout_for_results(torch_home, weights_server, monkeypatch, tmp_path, runner):
    """End to end: compare fetches the missing weights from the (local) URL and stdout stays valid JSON."""
    folder, base, requested = weights_server
    name = serve_weights(folder, base, torchvision.models.squeezenet1_1().state_dict(), monkeypatch)
    labels = np.arange(30) % 3
    images = (np.random.default_rng(0).integers(0, 60, (30, 16, 16)) + 80 * labels[:, None, None]).astype(np.uint8)
    np.savez(tmp_path / "tiny.npz", images=images, labels=labels)
    result = runner.invoke(app, ["compare", "squeezenet1_1", "--dataset", f"npz:{tmp_path / 'tiny.npz'}", "--k", "3",
                                      "--metrics", "rankme,l2_std", "-q", "--format", "json", "--no-cache"])
    assert result.exit_code == 0, result.output
    assert requested == [f"/{name}"] and (torch_home / "hub" / "checkpoints" / name).is_file()
    (record,) = json.loads(result.stdout)["results"]
    assert record["name"] == "squeezenet1_1" and f"downloaded from {base}/{name} (SHA-256 prefix checked)" in record["source"]["notes"]
    assert f"Downloading: \"{base}/{name}\"" in result.stderr


@pytest.mark.slow  # full torchvision resnet18 and mobilenet_v3_small forward passes at 224 px on CPU
def test_compare_torchvision_models_with_random_weights(tiny_data, cache_dir, runner):
    result = runner.invoke(app, ["compare", "resnet18", "mobilenet_v3_small", "--weights", "none", "--dataset", tiny_data,
                                 "--limit", "30", "--format", "json", "--metrics", "rankme,l2_std,knn_acc", "-q"])
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
