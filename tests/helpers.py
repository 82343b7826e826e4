"""Plain helpers shared by the test files (fixtures live in conftest.py): the CLI in-process and as a child process,
tree snapshots, RankMe by hand, small checkpoints and results files written by sslmon's own writers."""

from __future__ import annotations

import hashlib
import math
import os
import re
import signal
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from scipy import stats
from torch import Tensor, nn

from sslmon.cli import main
from sslmon.io.runfile import load_run
from sslmon.meta.correlate import NamedRun
from sslmon.models.archs import SmallConvNet
from sslmon.results import Result, Run

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_checkpoints"  # the six shipped milestones, epoch_0000.pt .. epoch_0005.pt
SAMPLE_NAMES = [f"epoch_{e:04d}.pt" for e in range(6)]


def run_cli(args: list[str], capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``sslmon ARGS`` through the console-script entry point."""
    monkeypatch.setattr(sys, "argv", ["sslmon", *args])
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 0
    out, err = capsys.readouterr()
    return code, out, err


def sslmon_command(*args: str) -> list[str]:
    """The argv of ``sslmon ARGS`` in a child Python process."""
    return [sys.executable, "-c", "from sslmon.cli import main; main()", *args]


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a child process: this one, this checkout first on PYTHONPATH, and ``extra``."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), **extra}


def default_sigint() -> None:
    """``preexec_fn`` for a child that a test interrupts with SIGINT: a shell's background job (``nohup ... &``,
    some CI runners) starts with SIGINT ignored, the child would inherit that and Python would then install no
    KeyboardInterrupt handler. The child gets the default, as under a terminal."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def snapshot(root: Path) -> dict[str, str]:
    """Relative path -> SHA-256 of the content ('dir' for folders) of everything under ``root``."""
    return {str(p.relative_to(root)): "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if not p.is_symlink()}


def without_timings(text: str) -> str:
    """A JSON document or JSON Lines text with every ``timings`` block emptied and every ``time``/``started``
    (JSON Lines) blanked: the only parts that vary."""
    text = re.sub(r'"(time|started)": "[^"]*"', r'"\1": ""', text)
    return re.sub(r'"timings": \{[^}]*\}', '"timings": {}', text)


def rankme_by_hand(Z: np.ndarray) -> float:
    """RankMe by its definition (docs/metrics.md): p_k = s_k / sum(s) + 1e-7 over the singular values, exp(entropy), in float64."""
    s = np.linalg.svd(np.asarray(Z, dtype=np.float64), compute_uv=False)
    p = s / s.sum() + 1e-7
    return float(np.exp(-(p * np.log(p)).sum()))


def write_checkpoint(path: Path, seed: int, **extra: object) -> Path:
    """A seeded convnet-small state dict saved as ``{"state_dict": ..., **extra}`` (the epoch comes from the file name
    unless ``extra`` holds one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    torch.save({"state_dict": SmallConvNet().state_dict(), **extra}, path)
    return path


def write_milestones(folder: Path, epochs: tuple[int, ...] = (0, 2, 5)) -> Path:
    """``folder/ckpt_EEEE.pt`` for each epoch: convnet-small seeded with the epoch, the epoch stored in the file."""
    for e in epochs:
        write_checkpoint(folder / f"ckpt_{e:04d}.pt", e, epoch=e)
    return folder


def write_tiny_images(path: Path, n: int = 60, n_train: int = 30, seed: int = 0) -> str:
    """``n`` labelled 16x16 grayscale images (3 classes of different brightness) and ``n_train`` train images in an
    .npz file; returns its dataset spec ``npz:PATH``."""
    rng = np.random.default_rng(seed)

    def make(count: int) -> tuple[np.ndarray, np.ndarray]:
        labels = np.arange(count) % 3
        return (rng.integers(0, 60, size=(count, 16, 16)) + 80 * labels[:, None, None]).astype(np.uint8), labels

    images, labels = make(n)
    arrays = {"images": images, "labels": labels}
    if n_train:
        arrays["train_images"], arrays["train_labels"] = make(n_train)
    np.savez(path, **arrays)
    return f"npz:{path}"


# A run of six milestones with the paper's shapes: LP rising, entropy low at init then falling, AMI rising.
EPOCHS = [0, 20, 40, 60, 80, 100]
LP = [0.10, 0.42, 0.55, 0.61, 0.66, 0.68]
ENTROPY = [3.1, 5.9, 5.4, 5.5, 5.0, 4.9]
AMI = [0.02, 0.30, 0.29, 0.41, 0.40, 0.52]


def write_results(path: Path, metrics: dict[str, list[float | None]], epochs: list[int | None] = EPOCHS,
                  per_seed: list[list[dict[str, float]]] | None = None) -> Path:
    """A results document written by sslmon's own writer (`sslmon score -f json`), one result per epoch."""
    from sslmon.io.runfile import to_json

    results = [Result(f"epoch_{e}.pt", None, {key: values[i] for key, values in metrics.items()}, epoch=e,
                      per_seed=per_seed[i] if per_seed else []) for i, e in enumerate(epochs)]
    path.write_text(to_json(Run({}, results), "lp_acc"))
    return path


def init_run(exclude_init: bool) -> Run:
    """An init milestone (epoch 0) and two trained ones, with lp_acc and its standard error."""
    results = [
        Result("init", None, {"rankme": 90.0, "l2_std": 0.01, "lp_acc": 0.70, "lp_acc_se": 0.0102}, epoch=0),
        Result("e1", None, {"rankme": 40.0, "l2_std": 0.05, "lp_acc": 0.8123, "lp_acc_se": 0.0061}, epoch=1),
        Result("e2", None, {"rankme": 50.0, "l2_std": 0.04, "lp_acc": 0.80, "lp_acc_se": 0.0063}, epoch=2),
    ]
    return Run(config={}, results=results, exclude_init=exclude_init)


def embed(model: nn.Module, images: Tensor) -> Tensor:
    """Embeddings (n, d) of ``images`` in eval mode."""
    with torch.no_grad():
        return model.eval()(images)


def pearson_by_hand(x: list[float], y: list[float]) -> tuple[float, float]:
    """r = cov(x, y) / (s_x s_y); two-sided p = 2 P(T > |t|), t = r sqrt((n-2)/(1-r^2)), n-2 dof."""
    x, y = np.asarray(x), np.asarray(y)
    n = len(x)
    cov = ((x - x.mean()) * (y - y.mean())).sum() / (n - 1)
    r = cov / (x.std(ddof=1) * y.std(ddof=1))
    t = r * math.sqrt((n - 2) / (1 - r**2))
    return r, 2 * stats.t.sf(abs(t), n - 2)


def z3_blobs(n: int, rng: np.random.Generator) -> np.ndarray:
    """A UMAP-like Z3: four tight clusters at the corners of a tetrahedron, 3 units apart."""
    centres = np.array([[0, 0, 0], [3, 0, 0], [1.5, 2.6, 0], [1.5, 0.9, 2.4]])
    return centres[rng.integers(0, 4, n)] + rng.normal(0, 0.4, (n, 3))


def serve_weights(folder: Path, base: str, obj: object, monkeypatch, hash_prefix: str | None = None) -> str:
    """Save ``obj`` into the served folder as squeezenet1_1-<sha256 prefix>.pth (the real hash unless
    ``hash_prefix``) and point torchvision's DEFAULT squeezenet1_1 weights at it; returns the file name."""
    blob = folder / "blob"
    torch.save(obj, blob)
    name = f"squeezenet1_1-{hash_prefix or hashlib.sha256(blob.read_bytes()).hexdigest()[:8]}.pth"
    blob.rename(folder / name)
    monkeypatch.setattr(torchvision.models.SqueezeNet1_1_Weights.DEFAULT.value, "url", f"{base}/{name}")
    return name


CHEAP_JSON = ["--metrics", "rankme,l2_std", "-q", "--format", "json", "--no-cache"]  # no UMAP, no cache


def error_lines(result) -> list[str]:
    """The ``error:`` lines of a CliRunner result, after checking it exited without a traceback or uncaught exception."""
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit), result.exception  # no uncaught exception inside the runner
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


# A run of five milestones for checkpoint selection: the best by LP is epoch 2 (0.80); by LP the order is 2 > 4 > 3 > 1 > 0.
SELECTION_EPOCHS = [0, 1, 2, 3, 4]
SELECTION_LP = [0.50, 0.70, 0.80, 0.75, 0.78]


def write_run(path: Path, metrics: dict[str, list], epochs: list = SELECTION_EPOCHS, per_seed: list | None = None) -> Path:
    """A results file of the selection run (SELECTION_EPOCHS by default)."""
    return write_results(path, metrics, epochs, per_seed)


def named(path: Path) -> NamedRun:
    """The run of a results file under its file stem, as `sslmon correlate` names it."""
    return NamedRun(path.stem, str(path), load_run(path))


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
