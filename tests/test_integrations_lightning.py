"""SSLMonitor with a real lightning.Trainer on the CPU: a tiny SimCLR-style module, 2 epochs, CSVLogger."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import stats
from torch import nn

lightning = pytest.importorskip("lightning", reason="needs the extra sslmon[lightning]")  # declared in the dev extra
from lightning.pytorch.callbacks import ModelCheckpoint  # noqa: E402
from lightning.pytorch.loggers import CSVLogger  # noqa: E402

from helpers import rankme_by_hand, sslmon_command  # noqa: E402
from schema_check import check_jsonl  # noqa: E402
from sslmon.io.datasets import load_dataset  # noqa: E402
from sslmon.lightning import SSLMonitor  # noqa: E402

EVAL_LIMIT = 200


class TinySimCLR(lightning.LightningModule):
    """A 2-layer conv backbone and a linear projector trained with NT-Xent on two noisy views."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.backbone = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, 16, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.projector = nn.Linear(16, 8)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))
        self.modes_seen: list[bool] = []  # every submodule's train flag at each step

    def training_step(self, batch: tuple[torch.Tensor], batch_idx: int) -> torch.Tensor:
        self.modes_seen.append(all(m.training for m in self.modules()))
        x = (batch[0].float().div(255).expand(-1, 3, -1, -1) - self.mean) / self.std
        views = [x + 0.3 * torch.randn_like(x) for _ in range(2)]
        z = F.normalize(self.projector(self.backbone(torch.cat(views))), dim=1)
        sim = z @ z.T / 0.5
        sim.fill_diagonal_(float("-inf"))
        n = len(x)
        target = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
        loss = F.cross_entropy(sim, target)
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1, momentum=0.9)


def numpy_l2_std(Z: np.ndarray) -> float:
    """Mean over dimensions of the (population) std of the L2-normalised rows."""
    U = Z.astype(np.float64) / np.linalg.norm(Z.astype(np.float64), axis=1, keepdims=True)
    return float(U.std(axis=0).mean())


def _fit(tmp: Path, checkpoint: ModelCheckpoint | None = None) -> dict:
    """Train TinySimCLR for 2 epochs of 256 images (4 batches of 64) with an SSLMonitor."""
    train = load_dataset("default", limit=256, train_limit=256)
    module = TinySimCLR(train.mean, train.std)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(train.train_images), batch_size=64, shuffle=True)
    monitor = SSLMonitor(limit=EVAL_LIMIT, metrics=["rankme", "l2_std"], seeds=1)
    trainer = lightning.Trainer(
        max_epochs=2, accelerator="cpu", devices=1, logger=CSVLogger(tmp, name="run"), default_root_dir=tmp,
        callbacks=[monitor] + ([checkpoint] if checkpoint else []), enable_checkpointing=checkpoint is not None,
        enable_progress_bar=False, enable_model_summary=False,
    )
    trainer.fit(module, loader)
    return {"trainer": trainer, "module": module, "monitor": monitor, "tmp": tmp, "checkpoint": checkpoint}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("lightning")
    return _fit(tmp, ModelCheckpoint(dirpath=tmp / "ckpt", monitor="sslmon/rankme", mode="max"))


def _metrics_csv(trainer: lightning.Trainer) -> list[dict[str, str]]:
    with open(Path(trainer.logger.log_dir) / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def _jsonl(trainer: lightning.Trainer) -> list[dict]:
    """The records of the callback's JSON Lines (each valid against the results schema), without the header."""
    return check_jsonl((Path(trainer.log_dir) / "sslmon.jsonl").read_text())[1:]


def test_jsonl_has_init_and_each_epoch(trained: dict) -> None:
    records = _jsonl(trained["trainer"])
    assert [r["epoch"] for r in records] == [0, 1, 2]
    assert [r["name"] for r in records] == ["epoch_0000", "epoch_0001", "epoch_0002"]
    for r in records:
        assert set(r["metrics"]) == {"rankme", "l2_std"} and r["errors"] == {}
        assert r["n_samples"] == EVAL_LIMIT and r["dim"] == 16 and r["rank"] is None
    # the weights changed between milestones, so the scores did too
    assert len({r["metrics"]["rankme"] for r in records}) == 3


def test_logged_values_match_jsonl_and_an_independent_rankme(trained: dict) -> None:
    trainer, module = trained["trainer"], trained["module"]
    rows = _metrics_csv(trainer)
    logged = [(int(row["step"]), float(row["sslmon/rankme"]), float(row["sslmon/l2_std"]), float(row["sslmon/epoch"]))
              for row in rows if row.get("sslmon/rankme")]
    records = _jsonl(trainer)
    assert [epoch for *_, epoch in logged] == [0.0, 1.0, 2.0]
    assert logged[0][0] == 0  # the init milestone at step 0
    for (_, rankme, l2, _), record in zip(logged, records):
        assert rankme == pytest.approx(record["metrics"]["rankme"], rel=1e-6)  # logged as float32
        assert l2 == pytest.approx(record["metrics"]["l2_std"], rel=1e-6)

    Z = final_embeddings(module)
    assert logged[-1][1] == pytest.approx(rankme_by_hand(Z), rel=1e-4)
    assert logged[-1][2] == pytest.approx(numpy_l2_std(Z), rel=1e-4)


def test_epoch_values_can_be_monitored(trained: dict) -> None:
    """ModelCheckpoint(monitor="sslmon/rankme") sees the values logged through pl_module.log."""
    best = trained["checkpoint"].best_model_score
    assert best is not None
    assert float(best) == pytest.approx(max(r["metrics"]["rankme"] for r in _jsonl(trained["trainer"])[1:]), rel=1e-6)


def final_embeddings(module: TinySimCLR) -> np.ndarray:
    """The backbone's embeddings of the 200 evaluation images, computed here without sslmon's engine."""
    data = load_dataset("default", limit=EVAL_LIMIT)
    images = data.images.double() / 255
    mean = images.mean(dim=(0, 2, 3))  # grayscale: the one channel's statistics, repeated to 3 channels
    std = images.std(dim=(0, 2, 3), unbiased=False)
    x = ((images - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)).float().expand(-1, 3, -1, -1)
    module.backbone.eval()
    with torch.no_grad():
        return module.backbone(x).numpy()


def test_training_mode_is_restored(trained: dict) -> None:
    module = trained["module"]
    assert len(module.modes_seen) == 2 * 4 and all(module.modes_seen)  # 256 images / 64 per batch, 2 epochs


def test_correlate_reads_the_records(trained: dict) -> None:
    records = _jsonl(trained["trainer"])
    jsonl = Path(trained["trainer"].log_dir) / "sslmon.jsonl"  # read as it is: correlate takes JSON Lines
    out = subprocess.run(
        sslmon_command("correlate", str(jsonl), "--against", "rankme", "--format", "json"),
        capture_output=True, text=True, check=True,
    )
    corr = json.loads(out.stdout)["runs"][0]["correlations"]["l2_std"]["with_init"]
    x = [r["metrics"]["l2_std"] for r in records]
    y = [r["metrics"]["rankme"] for r in records]
    assert corr["n"] == 3
    assert corr["pearson_r"] == pytest.approx(stats.pearsonr(x, y)[0], abs=1e-9)


class ReportingSimCLR(TinySimCLR):
    """Appends, on every rank, the sslmon/rankme value Lightning holds at the end of each epoch to ``report``."""

    report: str = os.devnull

    def on_train_epoch_end(self) -> None:
        value = float(self.trainer.callback_metrics["sslmon/rankme"])
        with open(self.report, "a") as f:
            f.write(f"rank {self.global_rank} epoch {self.current_epoch + 1} rankme {value!r}\n")


DDP_SCRIPT = """
import sys, torch, lightning
from test_integrations_lightning import EVAL_LIMIT, ReportingSimCLR
from sslmon.io.datasets import load_dataset
from sslmon.lightning import SSLMonitor
train = load_dataset("default", limit=256, train_limit=256)
loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(train.train_images), batch_size=64)
trainer = lightning.Trainer(
    max_epochs=2, accelerator="cpu", devices=2, strategy="ddp_spawn", logger=False, enable_checkpointing=False,
    enable_progress_bar=False, enable_model_summary=False,
    callbacks=[SSLMonitor(limit=EVAL_LIMIT, metrics=["rankme"], seeds=1, output=sys.argv[1])])
module = ReportingSimCLR(train.mean, train.std)
module.report = sys.argv[2]  # an instance attribute: ddp_spawn pickles the module into each process
trainer.fit(module, loader)
"""


@pytest.mark.slow
def test_two_processes_score_on_rank_zero_and_log_on_both(tmp_path: Path) -> None:
    """DDP on the CPU (2 processes, gloo): one record per milestone; every rank logs rank 0's values."""
    out = tmp_path / "ddp.jsonl"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), *sys.path])}
    proc = subprocess.run([sys.executable, "-c", DDP_SCRIPT, str(out), str(tmp_path / "seen.txt")],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    records = check_jsonl(out.read_text())[1:]
    assert [r["epoch"] for r in records] == [0, 1, 2]
    seen = re.findall(r"rank (\d) epoch (\d) rankme (\S+)", (tmp_path / "seen.txt").read_text())
    assert sorted((int(rank), int(epoch)) for rank, epoch, _ in seen) == [(0, 1), (0, 2), (1, 1), (1, 2)]
    for _, epoch, value in seen:
        assert float(value) == pytest.approx(records[int(epoch)]["metrics"]["rankme"], rel=1e-6)


def test_bad_backbone_is_one_clear_error() -> None:
    class NoBackbone(lightning.LightningModule):
        pass

    with pytest.raises(ValueError, match="has no nn.Module attribute 'backbone' or 'encoder'"):
        SSLMonitor(limit=20)._backbone(NoBackbone())
    with pytest.raises(ValueError, match="unknown metric"):
        SSLMonitor(metrics=["rank_me"])


def test_the_callback_takes_options_and_its_keywords_build_the_same() -> None:
    from sslmon.api import Options
    from sslmon.evaluation import DEFAULT_SEEDS, EvalConfig

    plain = SSLMonitor()  # the defaults as before Options: 2000 images, seeds 0, 1, 2, all metrics, 256 per batch
    assert plain.config == EvalConfig(seeds=DEFAULT_SEEDS) and plain.limit == 2000 and plain.dataset == "default"
    assert plain.metrics is None and plain.batch_size == 256 and plain.lidar_views == 0
    given = SSLMonitor(Options(limit=30, metrics=("rankme",), seeds=(4, 1), k=3, batch_size=16, bin_factor=0.8))
    assert given.config == EvalConfig(k=3, seeds=(4, 1), bin_factor=0.8)
    assert (given.limit, given.metrics, given.batch_size) == (30, ["rankme"], 16)
    built = SSLMonitor(limit=30, metrics=["rankme"], seeds=2, k=3, batch_size=16)
    assert built.options == Options(limit=30, metrics=("rankme",), seeds=(0, 1), k=3, batch_size=16)
    with pytest.raises(TypeError, match="not both"):
        SSLMonitor(Options(), limit=5)
    with pytest.raises(TypeError, match="unexpected keyword argument"):
        SSLMonitor(limt=5)
    with pytest.raises(ValueError, match="every_n_epochs: must be >= 1"):
        SSLMonitor(every_n_epochs=0)
    with pytest.raises(ValueError, match="seeds"):
        SSLMonitor(seeds=[1, 1])


class ConstantEncoder(lightning.LightningModule):
    """A collapsed encoder: every image gets the same embedding (a learnable vector), trained towards a target."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.vector = nn.Parameter(torch.randn(16))
        self.backbone = _Constant(self.vector)

    def training_step(self, batch: tuple[torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = (self.backbone(batch[0].float()) - 1.0).pow(2).mean()
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)


class _Constant(nn.Module):
    def __init__(self, vector: nn.Parameter) -> None:
        super().__init__()
        self.vector = vector

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.vector.expand(len(x), -1)


def test_collapse_is_logged_and_stops_training(tmp_path: Path, trained: dict) -> None:
    assert {float(r["sslmon/collapse"]) for r in _metrics_csv(trained["trainer"]) if r.get("sslmon/collapse")} == {0.0}
    train = load_dataset("default", limit=128, train_limit=128)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(train.train_images), batch_size=64)
    monitor = SSLMonitor(limit=100, metrics=["rankme", "l2_std"], seeds=1, stop_on_collapse=True)
    trainer = lightning.Trainer(max_epochs=3, accelerator="cpu", devices=1, logger=CSVLogger(tmp_path, name="run"),
                                default_root_dir=tmp_path, callbacks=[monitor], enable_checkpointing=False,
                                enable_progress_bar=False, enable_model_summary=False)
    with pytest.warns(UserWarning, match="stopping training: epoch 0 is flagged collapse"):
        trainer.fit(ConstantEncoder(), loader)
    assert trainer.current_epoch == 0 and [r.epoch for r in monitor.results] == [0]  # stopped before epoch 1
    assert monitor.results[0].spread < 1e-6  # the embeddings are identical: computed here from the record
    logged = [float(r["sslmon/collapse"]) for r in _metrics_csv(trainer) if r.get("sslmon/collapse")]
    assert logged == [1.0]
