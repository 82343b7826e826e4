"""Which result to keep, by the rule the evidence supports, and the evidence behind it (docs/metrics.md#the-default-ranking).

- A run's milestones (every result has an epoch): rank by epoch, newest first (:data:`~sslmon.selection.EPOCH`),
  and recommend the **last milestone**: in the repository's :data:`EVIDENCE_RUNS` training runs no label-free
  ranking had a lower mean regret than it (docs/results.md sections 2, 9 and 11; docs/selection.md), nor in the
  :data:`STUDY_RUNS` runs of issue 17's pre-registered study, on held-out data (docs/evidence/README.md, Q0).
- Different models (inputs without epochs: embedding files, torchvision models): no ranking (:data:`MODELS_DEFAULT`,
  input order) and no recommendation: in issue 17's study no label-free ranking beat a random pick among training
  runs or architectures (:data:`EVIDENCE_ACROSS`; docs/evidence/README.md, Q1 and Q4).
- ``--rank-by KEY`` (asked for): rank 1 by KEY.

A result flagged ``collapse`` (:mod:`sslmon.alarms`) is never recommended: the next one by the same rule is, and
the collapsed one is listed under ``excluded``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any, Sequence

from sslmon import __version__
from sslmon.alarms import Flag, run_flags
from sslmon.metrics import METRICS
from sslmon.results import SCHEMA_VERSION
from sslmon.selection import EPOCH, INPUT

if TYPE_CHECKING:
    from sslmon.results import Result, Run

MODELS_DEFAULT = INPUT  # the default of different models (compare, embedding files) and across runs: no ranking
EVIDENCE_RUNS = 12  # training runs with every milestone scored in docs/results/ (tests/test_recommend.py counts them)
STUDY_RUNS = 45  # runs of issue 17's pre-registered study in docs/evidence/runs/ (counted by the same test)
EVIDENCE_LAST = (f"no label-free ranking beat it on average over the {EVIDENCE_RUNS} training runs of docs/results.md "
                 f"(sections 2, 9, 11; docs/selection.md) nor on held-out data over the {STUDY_RUNS} runs of the "
                 "pre-registered study in docs/evidence")
RANK_HINT = "--rank-by KEY ranks by a metric"
NO_RANKING = "no label-free ranking beat a random pick among training runs or architectures in sslmon's study"
EVIDENCE_ACROSS = (f"docs/evidence/README.md, Q1 and Q4 ({STUDY_RUNS} runs): the rule chosen on half A of the digits "
                   "runs' test set did not beat a random pick on half B (regret 0.66 vs 0.98 points, 33 runs); on "
                   "Fashion-MNIST (9 runs) no rule beat it and H(Z3) did worse (2.70 vs 1.30); four architectures are "
                   "too few to say. --rank-by KEY ranks by a metric (the paper's Table II choice across 17 supervised "
                   "ImageNet models was H(Z3), r = -0.52 with probe accuracy on CIFAR-100)")
EVIDENCE_ASKED_RUN = f"as asked (--rank-by); over the {EVIDENCE_RUNS} training runs of docs/results.md no label-free ranking beat the last milestone"
EVIDENCE_ASKED_MODELS = "as asked (--rank-by); across architectures the paper found only H(Z3) significant (Table II)"


@dataclass
class Recommendation:
    """The recommended result (``name``/``path``/``epoch``; None when nothing can be recommended), the ``rule`` that
    chose it, the ``reason`` (why this one) and the ``evidence`` behind the rule; ``excluded``: results passed over,
    each ``{"name", "why"}``; ``run``: the training run (:attr:`~sslmon.results.Result.run`) it is for."""

    name: str | None
    path: str | None
    epoch: int | None
    rule: str
    reason: str
    evidence: str
    excluded: list[dict[str, str]] = field(default_factory=list)
    run: str | None = None  # the training run it was chosen in (Result.run)
    result: Result | None = field(default=None, repr=False, compare=False)  # the recommended record itself

    def to_dict(self) -> dict[str, Any]:
        """The JSON object (the fields above, without ``result``)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "result"}

    def line(self, named: bool = False) -> str:
        """The one line under the table: ``recommended: NAME, REASON; EVIDENCE`` (``recommended in RUN: ...`` with
        ``named``, when the table holds several runs); ``no recommendation: REASON`` when nothing is recommended."""
        where = f" in {self.run}" if named and self.run is not None else ""
        if self.name is None:
            how = f" (docs/evidence/README.md); {RANK_HINT}" if self.reason == NO_RANKING else ""
            return f"no recommendation{where}: {self.reason}{how}"
        return f"recommended{where}: {self.name}, {self.reason}; {self.evidence}"


def has_epochs(results: Sequence[Result]) -> bool:
    """Whether the results are milestones of a run: every one has an epoch and one is trained (several untrained
    networks, e.g. randomly initialised torchvision models, are different models)."""
    return bool(results) and all(r.epoch is not None for r in results) and any(not r.is_init for r in results)


def default_rank_by(results: Sequence[Result]) -> str:
    """The default ranking: epoch order for a run's milestones, else :data:`MODELS_DEFAULT`."""
    return EPOCH if has_epochs(results) else MODELS_DEFAULT


def _rule(rank_by: str, milestones: bool) -> tuple[str, str]:
    """(rule, evidence) of a ranking."""
    if rank_by == EPOCH:
        return "last milestone", EVIDENCE_LAST
    if rank_by == INPUT:
        return "no ranking (input order)", EVIDENCE_ACROSS
    spec = METRICS.get(rank_by)
    how = "best" if spec is None else f"{spec.better}" if spec.target is None else f"closest to {spec.target:g}"
    return f"rank 1 by {rank_by} ({how})", EVIDENCE_ASKED_RUN if milestones else EVIDENCE_ASKED_MODELS


def recommend_each(run: Run, rank_by: str, flags: Sequence[list[Flag]] | None = None) -> list[Recommendation]:
    """One :func:`recommend` per training run of ``run`` (:meth:`~sslmon.results.Run.parts`), in their order;
    ``flags``: :func:`~sslmon.alarms.run_flags` of all its results, computed when not given."""
    flags = run_flags(run.results) if flags is None else flags
    of = dict(zip(map(id, run.results), flags))
    return [recommend(part, rank_by, [of[id(r)] for r in part.results]) for part in run.parts()]


def recommend(run: Run, rank_by: str, flags: Sequence[list[Flag]] | None = None) -> Recommendation:
    """The recommendation for ``run`` ranked by ``rank_by`` (``flags``: :func:`~sslmon.alarms.run_flags` of its
    results, computed when not given): the first ranked result that is not flagged ``collapse``. ``run`` is one
    training run; :func:`recommend_each` gives one per run of a run holding several."""
    flags = run_flags(run.results) if flags is None else flags
    label = run.results[0].run if run.results else None
    where = {id(r): i for i, r in enumerate(run.results)}
    milestones = has_epochs(run.results)
    rule, evidence = _rule(rank_by, milestones)
    if rank_by == INPUT:
        return Recommendation(None, None, None, rule, NO_RANKING, evidence, [], label)
    excluded: list[dict[str, str]] = []
    for position, (result, key) in enumerate(run.ranking(rank_by)):
        if key is None:
            break  # unranked from here on
        collapse = next((f for f in flags[where[id(result)]] if f["code"] == "collapse"), None)
        if collapse is not None:
            excluded.append({"name": result.name, "why": f"collapse: {collapse['message']}"})
            continue
        return Recommendation(result.name, result.path, result.epoch, rule, _reason(result, rank_by, position, excluded),
                              evidence, excluded, label, result)
    why = "every ranked result is flagged collapse" if excluded else "no result could be ranked"
    if rank_by == EPOCH and run.exclude_init and any(r.is_init for r in run.results) and not excluded:
        why = "the only milestone is the untrained one (epoch 0), which is not ranked (--include-init ranks it)"
    return Recommendation(None, None, None, rule, why, evidence, excluded, label)


def _reason(result: Result, rank_by: str, position: int, excluded: list[dict[str, str]]) -> str:
    """Why ``result`` (at ``position`` in the ranking) is the one."""
    passed = f" ({', '.join(e['name'] for e in excluded)} flagged collapse)" if excluded else ""
    if rank_by == EPOCH:
        return ("the last milestone" if position == 0 else "the latest milestone not flagged collapse") + passed
    value = result.metrics.get(rank_by)
    shown = "" if value is None else f" = {value:.4g}"
    return (f"rank 1 by {rank_by}{shown}" if position == 0 else f"the best by {rank_by}{shown} not flagged collapse") + passed


def document(run: Run, rank_by: str) -> dict[str, Any]:
    """The JSON document of ``run``: version, config, results in rank order (each with ``rank``, ``flags`` and
    ``recommended``), failures, the ``recommendation`` (:func:`recommend_each`) and ``reference_values``.
    With several training runs (:meth:`~sslmon.results.Run.parts`) the results are grouped by run, each ranked 1..n within its run,
    ``recommendation`` is null and ``recommendations`` holds one per run."""
    flags = run_flags(run.results)
    choices = recommend_each(run, rank_by, flags)
    chosen = {id(c.result) for c in choices if c.result is not None}
    where = {id(r): i for i, r in enumerate(run.results)}
    records = []
    for result, rank in run.ranks(rank_by):
        record: dict[str, Any] = {"rank": rank}
        record.update(result.to_dict())
        record["flags"] = flags[where[id(result)]]
        record["recommended"] = id(result) in chosen
        records.append(record)
    doc = {
        "sslmon_version": __version__,
        "schema_version": SCHEMA_VERSION,
        "config": run.config,
        "results": records,
        "failures": [asdict(f) for f in run.failures],
        "recommendation": choices[0].to_dict() if len(choices) == 1 else None,
        "reference_values": run.reference_values,
    }
    if len(choices) > 1:
        doc["recommendations"] = [c.to_dict() for c in choices]
    return doc
