"""`--tensorboard DIR` (score, watch, train): real event files, read back with TensorBoard's own reader
(EventAccumulator) and compared with the JSON / JSON Lines / milestone files that the same run wrote."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from helpers import SAMPLE_NAMES, SAMPLES, run_cli
from schema_check import check_jsonl

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")

CHEAP = ["--dataset", "default", "--limit", "200", "--metrics", "rankme,l2_std", "--rank-by", "l2_std"]


def scalars(folder: Path) -> dict[str, dict[int, float]]:
    """Every scalar tag in the event files of ``folder``: {tag: {step: value}} (TensorBoard's reader)."""
    acc = event_accumulator.EventAccumulator(str(folder))
    acc.Reload()
    return {tag: {e.step: e.value for e in acc.Scalars(tag)} for tag in acc.Tags()["scalars"]}


def expected(records: list[dict]) -> dict[str, dict[int, float]]:
    """{sslmon/<metric>: {epoch: value}} of the defined metrics of result records."""
    out: dict[str, dict[int, float]] = {}
    for r in records:
        for key, value in r["metrics"].items():
            if value is not None:
                out.setdefault(f"sslmon/{key}", {})[r["epoch"]] = value
    return out


def same(got: dict[str, dict[int, float]], want: dict[str, dict[int, float]]) -> None:
    """Same tags and steps; values equal to float32 (TensorBoard stores scalars as 32-bit floats)."""
    assert {t: sorted(s) for t, s in got.items()} == {t: sorted(s) for t, s in want.items()}
    for tag, steps in want.items():
        for step, value in steps.items():
            assert got[tag][step] == pytest.approx(value, rel=1e-6, abs=1e-30), (tag, step)


def test_score_writes_each_metric_at_its_epoch(tmp_path, capsys, monkeypatch, cache_dir):
    board = tmp_path / "tb"
    code, out, err = run_cli(["score", str(SAMPLES), *CHEAP, "-f", "json", "--tensorboard", str(board), "-q"], capsys, monkeypatch)
    assert code == 0, err
    doc = json.loads(out)
    assert sorted(r["epoch"] for r in doc["results"]) == list(range(6))
    assert list(board.glob("events.out.tfevents.*"))
    same(scalars(board), expected(doc["results"]))


def test_watch_writes_each_new_checkpoint(tmp_path, capsys, monkeypatch, cache_dir):
    folder, board, out_file = tmp_path / "run", tmp_path / "tb", tmp_path / "out.jsonl"
    folder.mkdir()
    for name in SAMPLE_NAMES[:3]:
        shutil.copy(SAMPLES / name, folder / name)
    args = ["watch", str(folder), *CHEAP, "--poll", "0.05", "--until-idle", "0.3", "-o", str(out_file), "--tensorboard", str(board), "-q"]
    code, _, err = run_cli(args, capsys, monkeypatch)
    assert code == 0, err
    records = check_jsonl(out_file.read_text())[1:]
    assert sorted(r["epoch"] for r in records) == [0, 1, 2]
    same(scalars(board), expected(records))
    # a restart that finds a new checkpoint adds only it (the held ones are in TensorBoard already)
    shutil.copy(SAMPLES / SAMPLE_NAMES[3], folder / SAMPLE_NAMES[3])
    code, _, err = run_cli(args, capsys, monkeypatch)
    assert code == 0, err
    records = check_jsonl(out_file.read_text())[1:]
    assert sorted(r["epoch"] for r in records) == [0, 1, 2, 3]
    same(scalars(board), expected(records))


def test_train_writes_the_losses_of_each_epoch(tmp_path, capsys, monkeypatch, tiny_data):
    out, board = tmp_path / "ckpts", tmp_path / "tb"
    code, _, err = run_cli(["train", "simsiam", "--out", str(out), "--dataset", tiny_data, "--epochs", "3", "--every", "2",
                            "--batch-size", "16", "--head-width", "32", "--device", "cpu", "--tensorboard", str(board), "-q"],
                           capsys, monkeypatch)
    assert code == 0, err
    got = scalars(board)
    stored = {int(p.stem.split("_")[1]): torch.load(p, weights_only=True)["training"] for p in sorted(out.glob("epoch_*.pt"))}
    assert sorted(stored) == [0, 2, 3]
    assert sorted(got["sslmon/train_loss"]) == [1, 2, 3]  # every epoch, milestone or not
    assert sorted(got["sslmon/heldout_loss"]) == [0, 2, 3]  # at the milestones
    for epoch in (2, 3):
        for key in ("train_loss", "heldout_loss"):
            assert got[f"sslmon/{key}"][epoch] == pytest.approx(stored[epoch][key], rel=1e-6)
    assert got["sslmon/heldout_loss"][0] == pytest.approx(stored[0]["heldout_loss"], rel=1e-6)


def test_a_file_in_the_way_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch):
    blocker = tmp_path / "tb"
    blocker.write_text("not a folder")
    code, out, err = run_cli(["score", str(SAMPLES), *CHEAP, "--tensorboard", str(blocker)], capsys, monkeypatch)
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [f"error: {blocker}: not a folder (--tensorboard names the folder of the event files)"]  # the message names the flag: no tag
