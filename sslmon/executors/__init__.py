"""Executors: run one function over many items (one checkpoint each) and stream back each outcome as it finishes.

``make_executor("local")`` runs the items one after another in this process; ``make_executor("ray")`` makes each
item one Ray task (``pip install 'sslmon[ray]'``). Either way ``run(fn, items, shared)`` calls ``fn(item, shared)``
for every item and yields ``(index, result)`` outcomes, where ``result`` is the exception ``fn`` raised if it raised
one: one failing item never stops the others.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol, TypeVar

from sslmon.errors import SslmonError

T = TypeVar("T")
S = TypeVar("S")
R = TypeVar("R")

#: (index into the items, the value ``fn`` returned or the exception it raised)
Outcome = tuple[int, Any | BaseException]

EXECUTORS = ("local", "ray")


class ExecutorError(SslmonError):
    """An executor that cannot run: Ray missing or unreachable, a path workers cannot read, a worker that died."""


class Executor(Protocol):
    """Runs ``fn(item, shared)`` for each item and yields ``(index, result or exception)`` as each finishes.

    An exception raised by ``fn`` is yielded for its index, never raised. A KeyboardInterrupt while iterating
    cancels the outstanding work and propagates; what was already yielded stays with the caller. ``close()``
    releases what the executor started (a Ray instance); the executor is also a context manager that closes.
    """

    name: str

    def run(self, fn: Callable[[T, S], R], items: Sequence[T], shared: S) -> Iterator[tuple[int, R | Exception]]: ...

    def close(self) -> None: ...

    def __enter__(self) -> Executor: ...

    def __exit__(self, *exc: object) -> None: ...


def make_executor(name: str = "local", *, address: str | None = None, gpus_per_task: float | None = None,
                  cpus_per_task: float = 1, max_retries: int = 1) -> Executor:
    """The executor called ``name`` ("local" or "ray"); the keyword options apply to Ray only (see ``RayExecutor``)."""
    if name == "local":
        from sslmon.executors.local import LocalExecutor
        return LocalExecutor()
    if name == "ray":
        from sslmon.executors.ray import RayExecutor
        return RayExecutor(address=address, gpus_per_task=gpus_per_task, cpus_per_task=cpus_per_task, max_retries=max_retries)
    raise ExecutorError(f"{name}: unknown executor (choose from {', '.join(EXECUTORS)})")


__all__ = ["EXECUTORS", "Executor", "ExecutorError", "Outcome", "make_executor"]
