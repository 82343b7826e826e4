"""`sslmon train` writes milestones that `sslmon score` reads, for every method."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sslmon.cli import app


@pytest.mark.parametrize("method", ["simclr", "moco", "simsiam"])
def test_two_epoch_run_is_scored(tmp_path, cache_dir, method, runner):
    rng = np.random.default_rng(0)
    labels = np.arange(96) % 3
    images = (rng.integers(0, 80, size=(96, 16, 16)) + 80 * labels[:, None, None]).astype(np.uint8)
    data = tmp_path / "tiny.npz"
    np.savez(data, images=images[:48], labels=labels[:48], train_images=images[48:], train_labels=labels[48:])
    out = tmp_path / method
    trained = runner.invoke(app, ["train", method, "--out", str(out), "--dataset", f"npz:{data}", "--epochs", "2",
                                  "--batch-size", "16", "--head-width", "32", "--device", "cpu", "-q"])
    assert trained.exit_code == 0, trained.output
    assert sorted(p.name for p in out.iterdir()) == ["epoch_0000.pt", "epoch_0001.pt", "epoch_0002.pt"]
    scored = runner.invoke(app, ["score", str(out), "--dataset", f"npz:{data}", "--metrics", "rankme,knn_acc",
                                 "--format", "json", "-q"])
    assert scored.exit_code == 0, scored.output
    doc = json.loads(scored.stdout)
    assert sorted(r["epoch"] for r in doc["results"]) == [0, 1, 2]
    assert all(r["source"]["arch"] == "convnet-small" for r in doc["results"])
    assert all(r["metrics"]["rankme"] > 1 for r in doc["results"])
    # the losses `sslmon train` recorded come back in each record's source (held-out: the npz's test images)
    training = {r["epoch"]: r["source"]["training"] for r in doc["results"]}
    assert "train_loss" not in training[0] and all(set(training[e]) == {"train_loss", "heldout_loss"} for e in (1, 2))


def test_train_refuses_a_temperature_for_simsiam(tmp_path, runner):
    res = runner.invoke(app, ["train", "simsiam", "--out", str(tmp_path / "o"), "--temperature", "0.2", "--epochs", "1"])
    assert res.exit_code == 2 and "temperature" in res.output and not (tmp_path / "o").exists()


def test_an_architecture_too_deep_for_the_image_size_is_one_line(tmp_path, tiny_data, cli):
    # squeezenet1_1's five poolings take 16x16 to 0x0: one usage line naming the arch and the size, no traceback
    code, out, err = cli("train", "simclr", "--out", str(tmp_path / "o"), "--dataset", tiny_data, "--arch", "squeezenet1_1",
                         "--epochs", "1", "--batch-size", "8", "--device", "cpu", "-q")
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "squeezenet1_1 cannot take 16x16 images" in err and "--image-size" in err
    assert not any((tmp_path / "o").glob("*.pt"))
