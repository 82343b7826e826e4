"""Fixtures shared by the test files (plain helpers are in helpers.py)."""

from __future__ import annotations

import http.server
import logging
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from helpers import AMI, ENTROPY, LP, run_cli, write_results, write_tiny_images, z3_blobs

TESTS = Path(__file__).resolve().parent


@pytest.fixture()
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A results cache of this test's own, ``tmp_path/cache`` (made when first written): ``SSLMON_CACHE_DIR`` points
    there, so the test neither reads nor writes the user's cache. Not autouse: the cache folder also holds numba's
    compiled kernels, and an empty one costs a child process ~30 s of compiling."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("SSLMON_CACHE_DIR", str(folder))
    return folder


@pytest.fixture()
def runner() -> CliRunner:
    """Typer's in-process runner for ``sslmon.cli.app`` (stdout and stderr apart)."""
    return CliRunner()


@pytest.fixture()
def cli(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> Callable[..., tuple[int, str, str]]:
    """``cli(*args)``: (exit code, stdout, stderr) of ``sslmon ARGS`` through the console-script entry point."""
    return lambda *args: run_cli(list(args), capsys, monkeypatch)


@pytest.fixture()
def tiny_data(tmp_path: Path) -> str:
    """``npz:PATH`` of 60 labelled 16x16 grayscale images (3 classes of different brightness) + 30 train images."""
    return write_tiny_images(tmp_path / "tiny.npz")


@pytest.fixture(scope="session")
def fmnist_npz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real data: 1000 Fashion-MNIST test images of the embedded dataset (stratified) as 784-d pixel 'embeddings',
    with their labels."""
    from sslmon.io.datasets import load_dataset

    ds = load_dataset(None, limit=1000, seed=0)
    path = tmp_path_factory.mktemp("emb") / "fmnist_pixels.npz"
    np.savez(path, embeddings=ds.images.reshape(len(ds.images), -1).numpy() / 255.0, labels=ds.labels)
    return path


@pytest.fixture(scope="session")
def float_blobs() -> np.ndarray:
    """700 points in 24-d, six Gaussian blobs (std 3), float32."""
    from sklearn.datasets import make_blobs

    X, _ = make_blobs(n_samples=700, n_features=24, centers=6, cluster_std=3.0, random_state=0)
    return X.astype(np.float32)


@pytest.fixture()
def torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty TORCH_HOME; torch.hub's directory is restored afterwards."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # restored by monkeypatch; then get_dir() follows TORCH_HOME
    assert Path(torch.hub.get_dir()) == tmp_path / "hub"
    return tmp_path


@pytest.fixture()
def weights_server(tmp_path: Path) -> Iterator[tuple[Path, str, list[str]]]:
    """A local HTTP server (127.0.0.1, ephemeral port) serving the files of a folder: (folder, base URL,
    the paths requested so far)."""
    folder = tmp_path / "served"
    folder.mkdir()
    requested: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, directory=str(folder), **kwargs)

        def do_GET(self) -> None:
            requested.append(self.path)
            super().do_GET()

        def log_message(self, *args) -> None:  # keep the test output clean
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield folder, f"http://127.0.0.1:{server.server_address[1]}", requested
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def ray_session():
    """A local Ray instance with 2 CPUs for the test module; executors made while it runs join it. The workers cannot
    import the modules of tests/ (not on their path), so their functions and classes are pickled by value. Skips
    without ray."""
    ray = pytest.importorskip("ray")
    for module in list(sys.modules.values()):
        if Path(getattr(module, "__file__", None) or "/").parent == TESTS:
            ray.cloudpickle.register_pickle_by_value(module)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    yield ray
    ray.shutdown()


@pytest.fixture()
def z3_dir(tmp_path: Path) -> Path:
    """Three Z3 files as `sslmon score --save-z3` writes them; epoch 20 has three planted far points."""
    from sslmon.io.z3file import write_z3

    rng = np.random.default_rng(0)
    folder = tmp_path / "z3"
    folder.mkdir()
    for epoch in (0, 20, 40):
        z3 = z3_blobs(300, rng)
        if epoch == 20:
            z3[:3] += [[40, 0, 0], [0, -35, 0], [0, 0, 50]]
        labels = rng.integers(0, 10, 300)
        write_z3(folder / f"epoch_{epoch:04d}.z3.npz", z3, epoch=epoch, c1=labels % 4, c2=labels % 8, labels=labels)
    return folder


@pytest.fixture()
def run_file(tmp_path: Path) -> Path:
    """simclr.json: the sample run of helpers (lp_acc, entropy_z3, ami_c1_c2 over six epochs, init at 0)."""
    return write_results(tmp_path / "simclr.json", {"lp_acc": LP, "entropy_z3": ENTROPY, "ami_c1_c2": AMI})


@pytest.fixture(scope="session")
def rgb_images() -> torch.Tensor:
    """Four random 3x32x32 float images in [0, 1] (seeded)."""
    return torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
