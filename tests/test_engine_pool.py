"""sslmon.engine.pool: the seeds' UMAP layouts in worker processes are bit for bit umap-learn's serial ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse

from sslmon.engine import pool
from sslmon.engine.jit import cache_dir
from sslmon.engine.layout import FuzzyGraph, fuzzy_graph, umap_layout
from sslmon.engine.neighbors import knn_graph

SEEDS = (0, 1, 2)
EPOCHS = 30


def _graph(X: np.ndarray):
    knn = knn_graph(X, 15)
    return knn, fuzzy_graph(knn)


def test_parallel_layouts_equal_umap_learn_and_the_serial_path(float_blobs):
    import umap

    knn, fuzzy = _graph(float_blobs)
    parallel = pool.layouts(float_blobs, fuzzy, SEEDS, EPOCHS, workers=2, jit_folder=cache_dir())
    assert list(parallel) == list(SEEDS)
    for seed in SEEDS:
        ref = umap.UMAP(n_components=3, n_neighbors=15, random_state=seed, n_epochs=EPOCHS,
                        precomputed_knn=(knn.indices, knn.distances, None)).fit_transform(float_blobs)
        assert np.array_equal(parallel[seed].get().astype(np.float32), ref)
        assert np.array_equal(parallel[seed].get(), umap_layout(float_blobs, fuzzy, seed, EPOCHS))
        assert parallel[seed].seconds > 0
    assert not np.array_equal(parallel[0].get(), parallel[1].get())  # each seed its own layout


def test_a_dead_worker_costs_only_time(float_blobs):
    _, fuzzy = _graph(float_blobs)
    first = pool.layouts(float_blobs, fuzzy, (0, 1), EPOCHS, workers=1, jit_folder=cache_dir())
    assert pool._workers
    for worker in pool._workers:
        worker.proc.kill()
        worker.proc.wait()
    again = pool.layouts(float_blobs, fuzzy, (0, 1), EPOCHS, workers=1, jit_folder=cache_dir())
    for seed in (0, 1):
        assert np.array_equal(first[seed].get(), again[seed].get())
    assert all(worker.alive() for worker in pool._workers)  # a new one replaced it


def test_an_error_in_a_worker_reaches_the_caller_as_in_the_serial_path():
    empty = FuzzyGraph(scipy.sparse.csr_matrix((60, 60), dtype=np.float32), 1.577, 0.895, 60)
    Z = np.zeros((60, 4), dtype=np.float32)
    with pytest.raises(Exception) as serial:
        umap_layout(Z, empty, 1, EPOCHS)
    out = pool.layouts(Z, empty, (0, 1), EPOCHS, workers=1, jit_folder=cache_dir())
    for seed in (0, 1):  # seed 0 laid out here, seed 1 in the worker
        with pytest.raises(type(serial.value)) as got:
            out[seed].get()
        assert str(got.value) == str(serial.value)


@pytest.mark.parametrize(("cpus", "n_seeds", "requested", "expected"),
                         [("2", 3, None, 1), ("1", 3, None, 0), ("4", 3, None, 2), ("8", 1, None, 0),
                          ("2", 3, 0, 0), ("2", 3, 5, 2), ("2", 2, 1, 1)])
def test_worker_count(monkeypatch, cpus, n_seeds, requested, expected):
    monkeypatch.setenv("NUMBA_NUM_THREADS", cpus)
    assert pool.cpu_budget() == int(cpus)
    assert pool.worker_count(n_seeds, requested) == expected


def test_evaluation_with_workers_equals_the_serial_evaluation(float_blobs):
    from sslmon.api import Options, cache_settings
    from sslmon.evaluation import EvalConfig, evaluate_embeddings

    y = np.repeat(np.arange(6), 700 // 6 + 1)[:700]
    metrics = ["ami_c1_c2", "silhouette_c1", "entropy_z3", "ami_c1_gt"]
    serial = EvalConfig(seeds=SEEDS, n_neighbors=15, umap_epochs=EPOCHS, layout_workers=0)
    parallel = EvalConfig(seeds=SEEDS, n_neighbors=15, umap_epochs=EPOCHS, layout_workers=2)
    a = evaluate_embeddings(float_blobs, y, config=serial, metrics=metrics)
    b = evaluate_embeddings(float_blobs, y, config=parallel, metrics=metrics)
    assert a.per_seed == b.per_seed and a.metrics == b.metrics and not a.errors
    assert np.array_equal(a.Z3, b.Z3) and np.array_equal(a.C1, b.C1)
    assert len({tuple(s.values()) for s in a.per_seed}) == 3  # the seeds differ, so the comparison has teeth
    assert serial.as_dict()["layout"] == "umap-learn"
    assert (serial.as_dict()["layout_workers"], parallel.as_dict()["layout_workers"]) == (0, 2)
    # same results, same cache key
    assert cache_settings(serial, Options(), "cpu") == cache_settings(parallel, Options(), "cpu")


def _pool_children(pid: int) -> list[int]:
    """Pids of the layout workers among ``pid``'s child processes (Linux /proc)."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        for child in (task / "children").read_text().split():
            cmdline = Path(f"/proc/{child}/cmdline")
            if cmdline.exists() and b"sslmon.engine.pool" in cmdline.read_bytes():
                found.append(int(child))
    return found


@pytest.mark.slow
@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="reads /proc")
def test_ctrl_c_during_the_layouts_exits_130_and_leaves_no_worker(tmp_path):
    """SIGINT to sslmon alone (not its process group) while its worker lays out a seed: exit 130, worker gone."""
    import signal
    import subprocess
    import time

    from sklearn.datasets import make_blobs

    from helpers import child_env, default_sigint, sslmon_command

    X, y = make_blobs(n_samples=4000, n_features=32, centers=8, random_state=0)
    np.savez(tmp_path / "emb.npz", embeddings=X.astype(np.float32), labels=y)
    proc = subprocess.Popen(sslmon_command("score", str(tmp_path / "emb.npz"), "--umap-epochs", "2000", "--no-cache",
                                           "-o", str(tmp_path / "out.json")),
                            env=child_env(NUMBA_NUM_THREADS="2"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=default_sigint)
    deadline = time.monotonic() + 300
    workers: list[int] = []
    while not workers and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
        workers = _pool_children(proc.pid)
    assert workers, "no layout worker was started"
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    time.sleep(0.5)
    for pid in workers:
        state = Path(f"/proc/{pid}/stat")
        assert not state.exists() or state.read_text().split()[2] == "Z"  # gone (or a zombie awaiting its reaper)


def test_workers_that_never_start_fall_back_to_the_serial_path(float_blobs, monkeypatch):
    """An interpreter that exits at once (/bin/false): the seeds are laid out here; after two such starts, no more."""
    _, fuzzy = _graph(float_blobs)
    serial = pool.layouts(float_blobs, fuzzy, (0, 1), EPOCHS, workers=0, jit_folder=cache_dir())
    pool.shutdown()
    monkeypatch.setattr(pool, "_failed_starts", 0)
    monkeypatch.setattr(pool.sys, "executable", "/bin/false")
    for expected_failures in (1, 2, 2):  # the third call starts no worker
        out = pool.layouts(float_blobs, fuzzy, (0, 1), EPOCHS, workers=1, jit_folder=cache_dir())
        assert all(np.array_equal(out[s].get(), serial[s].get()) for s in (0, 1))
        assert pool._failed_starts == expected_failures
    pool.shutdown()
