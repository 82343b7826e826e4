"""sslmon.executors (make_executor) and the local executor: results in order, exceptions in place."""

from __future__ import annotations

import sys

import pytest

from sslmon import SslmonError
from sslmon.executors import ExecutorError, make_executor


def _affine(item: int, shared: float) -> float:
    if item == 0:
        raise ZeroDivisionError(f"item {item}")
    return 10 / item + shared


def test_local_yields_in_order_with_exceptions_in_place():
    items = [4, 0, 2, 5]
    with make_executor("local") as executor:
        outcomes = list(executor.run(_affine, items, 0.5))
    assert [i for i, _ in outcomes] == [0, 1, 2, 3]
    assert isinstance(outcomes[1][1], ZeroDivisionError) and str(outcomes[1][1]) == "item 0"
    assert [r for i, r in outcomes if i != 1] == [10 / 4 + 0.5, 10 / 2 + 0.5, 10 / 5 + 0.5]


def test_local_keyboard_interrupt_propagates_after_what_finished():
    def fn(item: int, shared: None) -> int:
        if item == 2:
            raise KeyboardInterrupt
        return item

    got = []
    with pytest.raises(KeyboardInterrupt):
        for outcome in make_executor("local").run(fn, [0, 1, 2, 3], None):
            got.append(outcome)
    assert got == [(0, 0), (1, 1)]


def test_unknown_executor_and_missing_ray_are_one_line_errors(monkeypatch):
    with pytest.raises(ExecutorError, match="^dask: unknown executor"):
        make_executor("dask")
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets where it is not installed
    with pytest.raises(SslmonError) as info:
        make_executor("ray")
    assert "pip install 'sslmon[ray]'" in str(info.value) and "\n" not in str(info.value)
