"""The Ray executor: each item is one Ray task, ``shared`` goes into the object store once, outcomes stream back as
tasks finish. Ray is imported only when this executor is made (``pip install 'sslmon[ray]'``).

Workers import ``fn`` by reference (its module must be importable on every node, so sslmon must be installed there)
and receive ``shared`` read-only (numpy arrays come zero-copy from the object store). Paths the tasks open must be
readable on every node: ``check_paths`` checks that before submission.
"""

from __future__ import annotations

import logging
import math
import os
import socket
from collections.abc import Callable, Iterator, Sequence
from types import ModuleType
from typing import Any, TypeVar

from sslmon.executors import ExecutorError

T = TypeVar("T")
S = TypeVar("S")
R = TypeVar("R")


class WorkerDiedError(ExecutorError):
    """The worker process (or its node) running a task died, and Ray's retries were spent."""


def _import_ray() -> ModuleType:
    try:
        import ray
    except ImportError as exc:
        raise ExecutorError(f"executor 'ray' needs the ray extra: pip install 'sslmon[ray]' ({exc})") from exc
    return ray


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


CONNECT_TIMEOUT_S = 5.0  # for the reachability check of an explicit cluster address


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """ExecutorError naming ``address`` (``host:port`` or ``ray://host:port``) when nothing accepts a TCP connection
    there within ``timeout`` seconds: Ray itself would keep retrying for minutes. ``auto`` is not checked."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ExecutorError(f"{address}: not a Ray address (give auto, HOST:PORT or ray://HOST:PORT)", param="ray_address")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ExecutorError(f"{address}: no Ray cluster answers there ({reason.lower()} after at most {timeout:g} s)",
                            param="ray_address") from None


def _call(fn: Callable[[T, S], R], item: T, shared: S) -> R:
    """The task body; Ray resolves ``fn`` and ``shared`` from their object refs before the call."""
    return fn(item, shared)


def _unreadable(paths: list[str]) -> tuple[str, list[str]]:
    """(this node's host name, the paths this worker cannot read)."""
    return socket.gethostname(), [p for p in paths if not os.access(p, os.R_OK)]


class RayExecutor:
    """``Executor`` on a Ray instance: ``address`` None starts a local one (or uses the one this process already
    initialised), ``"auto"`` joins the running cluster, anything else is the cluster's address.

    Each task reserves ``gpus_per_task`` GPUs (default: 1 when the cluster has GPUs, else 0) and ``cpus_per_task``
    CPUs; a task whose worker dies is resubmitted up to ``max_retries`` times, an exception raised by ``fn`` is not.
    """

    name = "ray"

    def __init__(self, *, address: str | None = None, gpus_per_task: float | None = None, cpus_per_task: float = 1,
                 max_retries: int = 1) -> None:
        self._ray = ray = _import_ray()
        self._started = not ray.is_initialized()
        if address not in (None, "auto"):
            check_reachable(address)
        if self._started:
            try:
                ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
            except Exception as exc:  # ConnectionError, RuntimeError, ValueError by address and version
                raise ExecutorError(f"{address or 'local Ray'}: cannot start or join Ray: {_first_line(exc)}") from exc
        if gpus_per_task is None:
            gpus_per_task = 1 if ray.cluster_resources().get("GPU", 0) > 0 else 0
        self.gpus_per_task, self.cpus_per_task, self.max_retries = gpus_per_task, cpus_per_task, max_retries
        # Ray sets OMP_NUM_THREADS to the task's CPUs, but numba's OpenMP layer (umap-learn's parallel kernels) resets
        # the OpenMP pool torch shares to NUMBA_NUM_THREADS, by default every core: cap it too, before numba loads.
        threads = str(max(1, math.floor(cpus_per_task)))
        options = {"num_gpus": gpus_per_task, "num_cpus": cpus_per_task, "max_retries": max_retries,
                   "runtime_env": {"env_vars": {"NUMBA_NUM_THREADS": threads}}}
        self._task = ray.remote(retry_exceptions=False, **options)(_call)
        self._probe = ray.remote(**options)(_unreadable)

    def check_paths(self, paths: Sequence[str | os.PathLike]) -> None:
        """Raise ExecutorError naming the first path a worker cannot read (one task, on a node like the tasks' own)."""
        host, unreadable = self._ray.get(self._probe.remote([os.fspath(p) for p in paths]))
        if unreadable:
            raise ExecutorError(f"{unreadable[0]}: not readable by the Ray workers on {host}; "
                                "inputs must lie on a filesystem every node can read")

    def run(self, fn: Callable[[T, S], R], items: Sequence[T], shared: S) -> Iterator[tuple[int, R | Exception]]:
        """``(index, result or exception)`` for each item as its task finishes; on KeyboardInterrupt (or when the
        caller stops iterating) the outstanding tasks are cancelled, their workers killed."""
        ray = self._ray
        fn_ref, shared_ref = ray.put(fn), ray.put(shared)
        index_of = {self._task.remote(fn_ref, item, shared_ref): i for i, item in enumerate(items)}
        pending = list(index_of)
        try:
            while pending:
                (ref,), pending = ray.wait(pending, num_returns=1)
                yield index_of[ref], self._outcome(ref)
        finally:
            self._cancel(pending)

    def _cancel(self, refs: list[Any], rounds: int = 4, wait_s: float = 0.5) -> None:
        """Force-cancel ``refs``; a task that was being dispatched when cancelled can slip through Ray's cancel, so
        the ones not finished (cancelled tasks finish with an error) are cancelled again, up to ``rounds`` times."""
        ray = self._ray
        for _ in range(rounds):
            for ref in refs:
                ray.cancel(ref, force=True)
            if not refs:
                return
            _, refs = ray.wait(refs, num_returns=len(refs), timeout=wait_s)

    def _outcome(self, ref: Any) -> Any:
        """The task's value, the exception ``fn`` raised (the remote traceback as its ``__cause__``), or an
        ExecutorError for a worker that died or another Ray failure."""
        errors = self._ray.exceptions
        try:
            return self._ray.get(ref)
        except errors.RayTaskError as err:
            cause = err.cause
            if isinstance(cause, errors.RayError):  # Ray's own: fn not importable on the worker, its exception not picklable
                return ExecutorError(f"task failed: {_first_line(cause)}")
            cause.__cause__ = err
            return cause
        except (errors.WorkerCrashedError, errors.NodeDiedError, errors.LocalRayletDiedError) as err:
            return WorkerDiedError(f"the Ray worker running this task died (process killed or node lost) and "
                                   f"{self.max_retries} retries were spent: {_first_line(err)}")
        except errors.RayError as err:
            return ExecutorError(f"Ray could not run this task: {_first_line(err)}")

    def close(self) -> None:
        """Shut Ray down if this executor started it."""
        if self._started:
            self._ray.shutdown()
            self._started = False

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
