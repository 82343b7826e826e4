"""Executors: the local one (order, exceptions yielded) and Ray on a local 2-CPU instance (same values as computed
directly, the shared object pickled once, a raising task, a worker killed then retried or reported, Ctrl-C cancels,
paths workers cannot read). The Ray tests skip when ray is not installed."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import numpy as np
import pytest

from sslmon.executors import ExecutorError, make_executor
from test_executors_local import _affine

pytestmark = pytest.mark.slow  # every test here starts (or joins) a Ray instance: `make test-fast` leaves them out

# ---------------------------------------------------------------- Ray


def _outcomes(executor, fn, items, shared) -> dict:
    outcomes = list(executor.run(fn, items, shared))
    assert sorted(i for i, _ in outcomes) == list(range(len(items)))
    return dict(outcomes)


def test_ray_values_equal_the_direct_computation(ray_session):
    executor = make_executor("ray")
    assert executor.name == "ray" and executor.gpus_per_task == 0  # the instance has no GPU
    items = [7, 1, 3, 0, 9, 2]
    got = _outcomes(executor, _affine, items, 0.25)
    assert isinstance(got[3], ZeroDivisionError) and str(got[3]) == "item 0"
    assert {i: r for i, r in got.items() if i != 3} == {i: 10 / x + 0.25 for i, x in enumerate(items) if x != 0}
    executor.close()
    assert ray_session.is_initialized()  # it joined the fixture's instance, so it left it running


class Counted:
    """An array wrapper that counts how often the driver pickles it (``pickles``, a class attribute)."""

    pickles = 0

    def __init__(self, array: np.ndarray) -> None:
        self.array = array

    def __reduce__(self):
        Counted.pickles += 1
        return Counted, (self.array,)


def _digest(item: int, shared: Counted) -> tuple[int, str]:
    return item, hashlib.sha256(shared.array.tobytes()).hexdigest()


def test_ray_shared_object_is_shipped_once(ray_session):
    array = np.random.default_rng(0).standard_normal((1000, 512))  # 4 MB, above Ray's inline-argument size
    Counted.pickles = 0
    got = _outcomes(make_executor("ray"), _digest, list(range(6)), Counted(array))
    expected = hashlib.sha256(array.tobytes()).hexdigest()
    assert got == {i: (i, expected) for i in range(6)}
    assert Counted.pickles == 1


def _threads_after_numba_parallel(item: int, shared: None) -> tuple[int, int]:
    """(numba's, torch's thread count) after a parallel numba kernel ran: numba's OpenMP layer sets the OpenMP pool
    torch shares to numba's thread count."""
    import numba
    import torch

    @numba.njit(parallel=True)
    def total(x):
        s = 0.0
        for i in numba.prange(x.shape[0]):
            s += x[i]
        return s

    total(np.ones(1000))
    return numba.get_num_threads(), torch.get_num_threads()


def test_ray_task_threads_follow_cpus_per_task(ray_session):
    got = _outcomes(make_executor("ray", cpus_per_task=1), _threads_after_numba_parallel, [0], None)
    assert got == {0: (1, 1)}  # one CPU reserved: one thread for numba and torch, not one per core


def _die_once(item: int, folder: str) -> int:
    """Kills its own worker on item 1's first attempt (a marker file tells the retry), else returns ``3 * item``."""
    marker = Path(folder) / f"died_{item}"
    if item == 1 and not marker.exists():
        marker.touch()
        os._exit(1)
    return 3 * item


def test_ray_dead_worker_is_retried(ray_session, tmp_path):
    got = _outcomes(make_executor("ray", max_retries=1), _die_once, [0, 1, 2], str(tmp_path))
    assert got == {0: 0, 1: 3, 2: 6}
    assert (tmp_path / "died_1").exists()  # the first attempt did die


def test_ray_dead_worker_without_retries_is_reported(ray_session, tmp_path):
    got = _outcomes(make_executor("ray", max_retries=0), _die_once, [0, 1, 2], str(tmp_path))
    assert (got[0], got[2]) == (0, 6)
    assert isinstance(got[1], ExecutorError) and "died" in str(got[1]) and "\n" not in str(got[1])


def _block_unless_first(item: int, folder: str) -> int:
    """Item 0 returns at once; the others block until the file ``release`` appears in ``folder`` (an event the test
    never sends: a cancelled task never gets there), at most 600 s (a hang guard), then leave ``finished_N``."""
    release = Path(folder) / "release"
    deadline = time.monotonic() + 600
    while item and not release.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    if item:
        (Path(folder) / f"finished_{item}").touch()
    return item


def test_ray_keyboard_interrupt_cancels_outstanding_tasks(ray_session, tmp_path):
    executor = make_executor("ray")
    outcomes = executor.run(_block_unless_first, [0, 1, 2, 3], str(tmp_path))
    assert next(outcomes) == (0, 0)
    with pytest.raises(KeyboardInterrupt):
        outcomes.throw(KeyboardInterrupt)
    # the two CPUs are free again: were the blocked tasks still running, this would wait for them (until the hang
    # guard) and they would leave their finished_N files
    assert _outcomes(executor, _affine, [1, 2], 0.0) == {0: 10.0, 1: 5.0}
    assert list(tmp_path.iterdir()) == []


def test_ray_check_paths_names_the_first_unreadable_path(ray_session, tmp_path):
    readable = tmp_path / "epoch_0000.pt"
    readable.write_bytes(b"x")
    executor = make_executor("ray")
    executor.check_paths([readable])
    missing = tmp_path / "not_on_this_node.pt"
    with pytest.raises(ExecutorError) as info:
        executor.check_paths([readable, missing, tmp_path / "also_missing.pt"])
    assert str(info.value).startswith(f"{missing}: not readable by the Ray workers") and "\n" not in str(info.value)


def test_an_explicit_address_nobody_answers_is_one_error_at_once(tmp_path, capsys, monkeypatch):
    """Ray would retry a wrong HOST:PORT for minutes; sslmon checks the TCP port first (no Ray needed)."""
    import socket

    from helpers import SAMPLES, run_cli
    from sslmon.executors.ray import check_reachable

    with socket.socket() as listening:  # a port that accepts connections passes the check
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        check_reachable(f"127.0.0.1:{listening.getsockname()[1]}")
        check_reachable(f"ray://127.0.0.1:{listening.getsockname()[1]}")
    with socket.socket() as closed:  # a port just released: connection refused
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with pytest.raises(ExecutorError) as info:
        check_reachable(f"127.0.0.1:{port}")
    assert str(info.value).startswith(f"127.0.0.1:{port}: no Ray cluster answers there") and info.value.param == "ray_address"
    with pytest.raises(ExecutorError, match="not a Ray address"):
        check_reachable("localhost")
    code, _, err = run_cli(["score", str(SAMPLES / "epoch_0001.pt"), "--executor", "ray", "--ray-address", f"127.0.0.1:{port}",
                            "--limit", "100", "-q"], capsys, monkeypatch)
    assert code == 2 and err.strip() == f"error: 127.0.0.1:{port}: no Ray cluster answers there (connection refused after at most 5 s) [--ray-address]"
