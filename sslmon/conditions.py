"""``--fail-if`` conditions such as ``rankme<40``, judged on a run's results."""

from __future__ import annotations

from dataclasses import dataclass
import operator
import re
from typing import Callable

from sslmon.metrics import METRICS
from sslmon.results import Result, Run

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le, ">=": operator.ge, "==": operator.eq, "!=": operator.ne, "<": operator.lt, ">": operator.gt,
}
_PATTERN = re.compile(r"^\s*([a-z0-9_]+)\s*(<=|>=|==|!=|<|>)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")


@dataclass(frozen=True)
class Condition:
    """``metric op threshold``; holds when the comparison is true."""

    metric: str
    op: str
    threshold: float

    def __str__(self) -> str:
        return f"{self.metric}{self.op}{self.threshold:g}"


def parse_condition(text: str) -> Condition:
    """Parse ``METRIC OP NUMBER`` (OP one of < <= > >= == !=); ValueError with the reason otherwise."""
    match = _PATTERN.match(text)
    if not match:
        raise ValueError(f"'{text}' is not METRIC OP NUMBER (OP one of <, <=, >, >=, ==, !=), e.g. 'rankme<40'")
    metric, op, number = match.groups()
    if metric not in METRICS:
        raise ValueError(f"'{text}': unknown metric '{metric}'; valid: {', '.join(METRICS)}")
    return Condition(metric, op, float(number))


def judged_results(run: Run, which: str, rank_by: str) -> list[Result]:
    """The results a condition is checked on: ``latest`` (highest epoch, else the last input),
    ``best`` (rank 1 by ``rank_by``), or ``each`` (all)."""
    if not run.results:
        return []
    if which == "each":
        return list(run.results)
    if which == "best":
        return run.ranked(rank_by)[:1]
    with_epoch = [r for r in run.results if r.epoch is not None]
    return [max(with_epoch, key=lambda r: r.epoch)] if with_epoch else [run.results[-1]]


def judge(run: Run, conditions: list[Condition], which: str, rank_by: str) -> list[str]:
    """Messages for every condition that holds on a judged result; an undefined metric counts as holding
    (a gate must not pass on a value it could not compute)."""
    messages = []
    for result in judged_results(run, which, rank_by):
        for cond in conditions:
            value = result.metrics.get(cond.metric)
            if value is None:
                why = result.errors.get(cond.metric, "not computed")
                messages.append(f"{result.name}: {cond.metric} is undefined ({why}), so '{cond}' cannot pass")
            elif _OPS[cond.op](value, cond.threshold):
                messages.append(f"{result.name}: {cond.metric} = {value:.6g} satisfies '{cond}'")
    return messages
