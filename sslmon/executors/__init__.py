"""Executors: where the encoders of a run are scored (stand-in until the Ray work lands)."""

from __future__ import annotations

from typing import Any, Callable, Iterator, Sequence


class LocalExecutor:
    name = "local"

    def run(self, fn: Callable[[Any, Any], Any], items: Sequence[Any], shared: Any) -> Iterator[tuple[int, Any]]:
        for i, item in enumerate(items):
            try:
                yield i, fn(item, shared)
            except Exception as exc:
                yield i, exc


def make_executor(name: str = "local", **kwargs: Any) -> LocalExecutor:
    return LocalExecutor()
