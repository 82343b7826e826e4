"""Issue 20's rough edges, each against an independent expectation: --dataset DIR is imagefolder:DIR; a missing path
fails before any dataset is read; score_model/embed take numpy and (n, H, W); correlate without its reference says
so in one line and exits 2; --help in panels, with exit codes, and train's own texts."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from helpers import ROOT, rankme_by_hand
from sslmon import api
from sslmon.errors import OptionsError
from sslmon.evaluation import EvalConfig
from sslmon.io.datasets import DatasetError, load_dataset


def test_an_existing_folder_is_an_imagefolder(tmp_path, monkeypatch):
    for i, (cls, value) in enumerate([("cat", 30), ("cat", 60), ("dog", 200)]):
        (tmp_path / "imgs" / cls).mkdir(parents=True, exist_ok=True)
        Image.new("L", (12, 12), value).save(tmp_path / "imgs" / cls / f"{i}.png")
    monkeypatch.chdir(tmp_path)
    bare, spelled = load_dataset("imgs", image_size=8), load_dataset("imagefolder:imgs", image_size=8)
    assert bare.name == spelled.name == "imagefolder:imgs"
    assert torch.equal(bare.images, spelled.images) and bare.labels.tolist() == [0, 0, 1]
    with pytest.raises(DatasetError, match=r"unknown dataset scheme 'no-such-folder' .*\(and not an existing folder\)"):
        load_dataset("no-such-folder")


def test_a_missing_path_fails_before_the_dataset_is_read(tmp_path, cli):
    missing = tmp_path / "runs" / "nope"
    # the dataset does not exist either: the error names the missing path, so the dataset was never opened
    code, out, err = cli("score", str(missing), "--dataset", f"npz:{tmp_path / 'absent.npz'}")
    assert (code, out) == (2, "")
    assert err.strip().splitlines() == [f"error: {missing}: no such file or folder [PATHS]"]


class Pixels(nn.Module):
    """Embeds an image as its mean over rows: (n, 3, H, W) -> (n, 3 * W); plain torch, no parameters."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=2).flatten(1)


def test_score_model_takes_numpy_and_n_h_w():
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, size=(40, 6, 6), dtype=np.uint8)
    kwargs = dict(mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), device="cpu")
    want = api.embed(Pixels(), torch.from_numpy(gray).unsqueeze(1), **kwargs)
    # by hand: x/255 normalised, the one channel repeated to 3, mean over rows
    by_hand = np.tile(((gray / 255.0 - 0.5) / 0.25).mean(axis=1), (1, 3))
    np.testing.assert_allclose(want, by_hand, rtol=1e-5, atol=1e-5)
    for form in (gray, torch.from_numpy(gray), gray[..., None], gray[:, None]):  # (n,H,W) numpy/tensor, channels-last, NCHW
        np.testing.assert_array_equal(api.embed(Pixels(), form, **kwargs), want)
    result = api.score_model(Pixels(), gray, metrics=["rankme"], config=EvalConfig(k=2, seeds=(0,)), **kwargs)
    assert result.metrics["rankme"] == pytest.approx(rankme_by_hand(want), rel=1e-4)
    with pytest.raises(OptionsError, match=r"images: expected uint8 pixels \(0-255\), got torch.float64"):
        api.embed(Pixels(), gray / 255.0, **kwargs)
    with pytest.raises(OptionsError, match=r"expected shape .* got \(40, 5, 6, 6\)"):
        api.embed(Pixels(), np.zeros((40, 5, 6, 6), np.uint8), **kwargs)


def test_correlate_without_its_reference_is_one_line_and_exit_2(tmp_path, cli):
    doc = json.loads((ROOT / "docs" / "results" / "simclr.json").read_text())
    for record in doc["results"]:
        record["metrics"] = {k: v for k, v in record["metrics"].items() if k not in ("lp_acc", "lp_acc_se")}
    unlabelled = tmp_path / "unlabelled.json"
    unlabelled.write_text(json.dumps(doc))
    code, out, err = cli("correlate", str(unlabelled))
    assert (code, out) == (2, "")
    assert err.strip().splitlines() == [f"error: {unlabelled}: no lp_acc values in its results (scored without labels?); "
                                        "name a reference metric it holds with --against"]
    code, out, err = cli("correlate", str(ROOT / "docs" / "results" / "simclr.json"), str(unlabelled))  # the other run is kept
    assert code == 2 and "Pearson correlation with lp_acc" in out and len(err.strip().splitlines()) == 1


def _help(cli, *command: str) -> str:
    code, out, _ = cli(*command, "--help")
    assert code == 0
    return re.sub(r"[\s│]+", " ", out)


def test_help_in_panels_with_exit_codes_and_trains_own_texts(cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    score = _help(cli, "score")
    for panel in ("Images", "Checkpoints", "Evaluation", "Output", "Execution", "Gates"):
        assert f"╭─ {panel} ─" in score
    for command in ("score", "compare", "watch", "train", "correlate", "plot", "report"):
        assert "Exit codes: 0 success" in _help(cli, command), command
    train = _help(cli, "train")
    assert "Images per SGD step (two augmented views of each)" in train and "Images per forward pass" not in train
    assert "Images to train on" in train and "Images to embed" not in train
    assert "Images per forward pass" in score


def test_the_trained_input_size_is_recorded_and_used(tmp_path, cli, tiny_data, cache_dir):
    out = tmp_path / "ckpts"
    code, _, err = cli("train", "simsiam", "--out", str(out), "--dataset", tiny_data, "--epochs", "1", "--batch-size", "16",
                       "--head-width", "32", "--device", "cpu", "-q")
    assert code == 0, err
    for path in out.glob("epoch_*.pt"):  # the 16-px images of tiny_data
        assert torch.load(path, weights_only=True)["input_size"] == 16
    # a flat folder of 12-px images: read at their native size (not 224), then resized to the 16 px the encoder expects
    for i in range(24):
        (tmp_path / "imgs").mkdir(exist_ok=True)
        Image.fromarray(np.full((12, 12), 10 * i, np.uint8)).save(tmp_path / "imgs" / f"{i:02d}.png")
    code, out_text, err = cli("score", str(out), "--dataset", str(tmp_path / "imgs"), "--k", "2", "--metrics", "rankme",
                              "--seeds", "1", "-f", "json")
    assert code == 0, err
    assert "dataset imagefolder:" in err and "24 images, 12x12 px" in err
    notes = [line for line in err.splitlines() if line.startswith("note: images resized")]
    assert notes == ["note: images resized from 12 to 16 px for epoch_0000.pt (the input size it expects) and the others of that size"]
    assert {r["source"]["input_size"] for r in json.loads(out_text)["results"]} == {16}


def test_an_os_error_is_one_error_line_naming_the_file(tmp_path, cli, tiny_data):
    """The one error boundary also turns an OSError the library does not wrap (here: a milestone folder under a
    regular file) into `error: FILE: problem` and exit 2, never a traceback."""
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    code, _, err = cli("train", "simclr", "--out", str(blocker / "milestones"), "--dataset", tiny_data, "--epochs", "1",
                       "--batch-size", "8", "--head-width", "8", "-q")
    assert code == 2 and err.splitlines() == [f"error: {blocker / 'milestones'}: not a directory"], err


def test_a_usage_error_is_the_same_line_in_process_and_from_the_console_script(tmp_path, cli, runner):
    from sslmon.cli import app

    args = ["score", str(tmp_path), "--k", "1"]
    code, _, err = cli(*args)
    result = runner.invoke(app, args)
    assert code == result.exit_code == 2
    assert err == result.stderr == "error: Invalid value for '--k': Input should be greater than or equal to 2\n"
