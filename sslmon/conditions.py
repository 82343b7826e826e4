"""``--fail-if`` conditions such as ``rankme<40`` or ``collapse`` (a flag of :mod:`sslmon.alarms`), judged on a run's
results; :func:`nothing_to_judge` refuses a gate that could only pass silently."""

from __future__ import annotations

from dataclasses import dataclass
import operator
import re
from typing import Callable, Sequence

from sslmon.alarms import FLAG_CODES, run_flags
from sslmon.metrics import METRICS
from sslmon.results import Result, Run
from sslmon.selection import INPUT

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


@dataclass(frozen=True)
class FlagCondition:
    """A flag code of :mod:`sslmon.alarms` (``collapse``, ``plateau``, ``noise``); holds when the result has that flag."""

    code: str

    def __str__(self) -> str:
        return self.code


Gate = Condition | FlagCondition


def parse_condition(text: str) -> Gate:
    """Parse ``METRIC OP NUMBER`` (OP one of < <= > >= == !=) or a flag code (``collapse``, ``plateau``,
    ``noise``); ValueError with the reason otherwise."""
    if text.strip() in FLAG_CODES:
        return FlagCondition(text.strip())
    match = _PATTERN.match(text)
    if not match:
        raise ValueError(f"'{text}' is not METRIC OP NUMBER (OP one of <, <=, >, >=, ==, !=), e.g. 'rankme<40', "
                         f"nor a flag ({', '.join(FLAG_CODES)})")
    metric, op, number = match.groups()
    if metric not in METRICS:
        raise ValueError(f"'{text}': unknown metric '{metric}'; valid: {', '.join(METRICS)}")
    return Condition(metric, op, float(number))


def judged_results(run: Run, which: str, rank_by: str) -> list[Result]:
    """The results a condition is checked on: ``latest`` (highest epoch, else the last input),
    ``best`` (the recommended result by ``rank_by``, :mod:`sslmon.recommend`; else rank 1), or ``each`` (all);
    ``latest`` and ``best`` once per training run (:meth:`~sslmon.results.Run.parts`)."""
    from sslmon.recommend import recommend

    if not run.results:
        return []
    if which == "each":
        return list(run.results)
    if len(run.parts()) > 1:
        return [r for part in run.parts() for r in judged_results(part, which, rank_by)]
    if which == "best":
        chosen = recommend(run, rank_by).result
        return [chosen] if chosen is not None else [] if rank_by == INPUT else run.ranked(rank_by)[:1]
    with_epoch = [r for r in run.results if r.epoch is not None]
    return [max(with_epoch, key=lambda r: r.epoch)] if with_epoch else [run.results[-1]]


def judge(run: Run, conditions: Sequence[Gate], which: str, rank_by: str) -> list[str]:
    """Messages for every condition that holds on a judged result; an undefined metric counts as holding
    (a gate must not pass on a value it could not compute). Flags are those of the result in ``run``."""
    messages = []
    flags = dict(zip(map(id, run.results), run_flags(run.results))) if any(isinstance(c, FlagCondition) for c in conditions) else {}
    for result in judged_results(run, which, rank_by):
        for cond in conditions:
            if isinstance(cond, FlagCondition):
                messages += [f"{result.name}: flagged {cond}: {f['message']}" for f in flags[id(result)] if f["code"] == cond.code]
                continue
            value = result.metrics.get(cond.metric)
            if value is None:
                why = result.errors.get(cond.metric, "not computed")
                messages.append(f"{result.name}: {cond.metric} is undefined ({why}), so '{cond}' cannot pass")
            elif _OPS[cond.op](value, cond.threshold):
                messages.append(f"{result.name}: {cond.metric} = {value:.6g} satisfies '{cond}'")
    return messages


def nothing_to_judge(run: Run, conditions: Sequence[Gate], which: str, rank_by: str) -> str | None:
    """Why the gates ``conditions`` would judge nothing on ``run`` (the run ``--fail-if`` sees: :meth:`Run.gated`),
    or None: no result to judge (e.g. the only one is the excluded init milestone), or a metric that the data
    leaves undefined on every judged result (a label-based metric without labels, LiDAR without views, a metric
    not computed). Such a gate would pass (or fail) without having looked at anything."""
    from sslmon.evaluation import NO_LABELS, NO_VIEWS

    if not conditions:
        return None
    judged = judged_results(run, which, rank_by)
    if not judged and which == "best" and rank_by == INPUT:
        return "--fail-if judges nothing: nothing is ranked, so there is no best (--rank-by KEY ranks)"
    if not judged:
        init = "the only result is the untrained (epoch 0) milestone, which is not judged (--include-init judges it)"
        return f"--fail-if judges nothing: {init if run.exclude_init else 'no result to judge'}"
    for cond in conditions:
        if isinstance(cond, FlagCondition):
            seedless = not any(v for r in judged for v in r.metrics_std.values())
            if cond.code != "collapse" and seedless:
                return f"--fail-if '{cond}' judges nothing: {cond} needs a spread over evaluation seeds (--seeds 2 or more)"
            continue
        whys = {r.errors.get(cond.metric, "not computed") for r in judged if r.metrics.get(cond.metric) is None}
        if len(whys) == 1 and sum(r.metrics.get(cond.metric) is None for r in judged) == len(judged):
            why = whys.pop()
            if why in (NO_LABELS, NO_VIEWS, "not computed"):
                return f"--fail-if '{cond}' judges nothing: {cond.metric} is undefined on this data ({why})"
    return None
