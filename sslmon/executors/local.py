"""The default executor: the items one after another, in this process, in input order."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")
S = TypeVar("S")
R = TypeVar("R")


class LocalExecutor:
    """Sequential, in-process ``Executor``; ``shared`` is passed by reference, nothing is copied."""

    name = "local"

    def run(self, fn: Callable[[T, S], R], items: Sequence[T], shared: S) -> Iterator[tuple[int, R | Exception]]:
        """``(index, fn(item, shared))`` for each item in order; an ``Exception`` from ``fn`` is yielded in place of
        its result (a KeyboardInterrupt propagates)."""
        for index, item in enumerate(items):
            try:
                result: R | Exception = fn(item, shared)
            except Exception as exc:  # the caller reports it for this item
                result = exc
            yield index, result

    def close(self) -> None:
        """Nothing to release."""

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
